"""The stand-in NVIDIA repository as the integration tests see it once it is served on
loopback (``ServedStandin``; the session fixture ``standin_repo`` in
tests/integration/conftest.py serves it), and the stock python3 versions of the test roots
that one shipped installer covers (``ROOT_PYTHONS``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support.standin_nvidia import StandinRepo
from tests.support.testkeys import TestKey


@dataclass(frozen=True)
class ServedStandin:
    """The stand-in NVIDIA repository, served on loopback for this session."""

    repo: StandinRepo
    base_url: str  # serves repo.root: <base_url>/stable/deb/<arch>/...
    url: str  # the flat source: deb [signed-by=…] <url> /
    key: TestKey
    keyring: Path  # the public key, binary (dearmored), for signed-by= / gpgv

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint

    @property
    def armored_key(self) -> bytes:
        return self.key.public_armored

    def sources_line(self) -> str:
        return f"deb [signed-by={self.keyring}] {self.url} /"


ROOT_PYTHONS = ("3.8", "3.9", "3.10", "3.11")  # stock python3 of the test roots: ubuntu20.04,
# debian11, ubuntu22.04, debian12
