"""What the installer uses that Python 3.8 (the oldest python3 it runs on) lacks.

The installer runs on the target's own python3, 3.8 on Ubuntu 20.04 and 3.9 on
Debian 11 (docs/installing.md); ruff and mypy check installer/ for 3.8
(scripts/typecheck-py38) and tests/integration/test_oldpython_roots.py runs it there.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Protocol


def removeprefix(text: str, prefix: str) -> str:
    """``str.removeprefix`` (3.9+)."""
    return text[len(prefix) :] if prefix and text.startswith(prefix) else text


def removesuffix(text: str, suffix: str) -> str:
    """``str.removesuffix`` (3.9+)."""
    return text[: -len(suffix)] if suffix and text.endswith(suffix) else text


class Checksum(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


def checksum(name: str, data: bytes = b"") -> Checksum:
    """A hash object for ``name`` (md5, sha1) used as a checksum, not for security: on 3.9+
    ``usedforsecurity=False`` keeps it working on FIPS hosts; 3.8 has no such flag."""
    if sys.version_info >= (3, 9):
        return hashlib.new(name, data, usedforsecurity=False)
    return hashlib.new(name, data)
