"""Writing a host file so readers see the old content or the new, never half (tmp, fsync, rename).

A crash or a kill mid-write leaves at most a uniquely named temporary file
beside the target, which the next write does not trip over.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` (mode ``mode``) atomically and durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json_atomic(path: Path, document: Any, mode: int = 0o644) -> None:
    """``document`` as indented, key-sorted JSON, written with :func:`write_atomically`."""
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    write_atomically(path, text.encode(), mode)
