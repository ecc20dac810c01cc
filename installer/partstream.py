"""A bundle's compressed bytes as one stream, whether it is one file or parts listed in an index.

``open_source`` takes what the user named (a single ``.tar.zst``, a parts index,
or any part: its index is found beside it). For parts it checks the index's
signature and that every part is present with its listed size before any part
is read. ``BundleSource.reading`` then yields a file-like object: for parts a
``ChainedParts``, which reads the parts one after another (never joined on
disk) and hashes each as it goes. A part whose sha256 differs is found when it
has been read fully, or when decompression or verification fails; either way
the remaining parts are hashed too and every damaged part is named in one
``DamagedParts`` error, so only those need copying again.
"""

from __future__ import annotations

import hashlib
import sys
import tarfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from installer.errors import ExitCode, GpubundleError, VerificationError
from installer.filekind import regular_file_problem
from installer.parts import RECOPY_HINT, PartsIndex, absent_parts, index_beside, read_index
from installer.zstd_stream import ByteSource

_CHUNK = 1 << 20


class DamagedParts(VerificationError):
    """Parts whose bytes differ from the index; every one is named."""


class ChainedParts:
    """Read-only stream of the parts in index order, each hashed and checked as it ends."""

    def __init__(self, index: PartsIndex, directory: Path) -> None:
        self.name = index.bundle
        self._index = index
        self._directory = directory
        self._next = 0  # position in index.parts of the next part to open
        self._fh: BinaryIO | None = None
        self._left = 0  # bytes of the open part still to read
        self._digest = hashlib.sha256()
        self._whole = hashlib.sha256()
        self._size = 0
        self.damaged: list[str] = []

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._pull(size if size >= 0 else sys.maxsize)
        if self.damaged:
            self.raise_if_damaged()
        return data

    def _pull(self, want: int) -> bytes:
        chunks = []
        while want > 0 and self._open():
            assert self._fh is not None
            try:
                data = self._fh.read(min(want, self._left, _CHUNK))
            except OSError as exc:  # a bad sector on the stick is a damaged part too
                self._end_part(f"cannot be read: {exc.strerror or exc}")
                continue
            if not data:
                part = self._index.parts[self._next]
                self._end_part(
                    f"ends after {part.size - self._left} bytes, the index says {part.size}"
                )
                continue
            self._digest.update(data)
            self._whole.update(data)
            self._size += len(data)
            self._left -= len(data)
            want -= len(data)
            chunks.append(data)
            if not self._left:
                self._end_part()
        return b"".join(chunks)

    def _open(self) -> bool:
        """Whether a part is open to read from, opening the next one if needed."""
        while self._fh is None and self._next < len(self._index.parts):
            part = self._index.parts[self._next]
            try:
                self._fh = (self._directory / part.name).open("rb")
            except OSError as exc:
                self.damaged.append(f"{part.name}: cannot be read: {exc.strerror or exc}")
                self._next += 1
                continue
            self._left, self._digest = part.size, hashlib.sha256()
        return self._fh is not None

    def _end_part(self, problem: str = "") -> None:
        assert self._fh is not None
        self._fh.close()
        self._fh = None
        part = self._index.parts[self._next]
        self._next += 1
        if problem:
            self.damaged.append(f"{part.name}: {problem}")
        elif (got := self._digest.hexdigest()) != part.sha256:
            self.damaged.append(f"{part.name}: sha256 {got}, the index says {part.sha256}")

    def raise_if_damaged(self) -> None:
        """Hash every part not read yet; raise DamagedParts naming each damaged one."""
        while self._pull(_CHUNK):
            pass
        if self.damaged:
            raise DamagedParts(
                f"{len(self.damaged)} of {len(self._index.parts)} parts of {self.name} are damaged",
                hint=RECOPY_HINT,
                details=self.damaged,
            )

    def finish(self) -> None:
        """After a complete read: every part intact, and together the bundle the index names."""
        self.raise_if_damaged()
        if (self._size, self._whole.hexdigest()) != (self._index.size, self._index.sha256):
            raise VerificationError(
                f"the parts of {self.name} do not add up to the bundle the index names",
                hint="rebuild the bundle; its index was written wrongly",
                details=[f"{self._size} bytes, sha256 {self._whole.hexdigest()}; index says "
                         f"{self._index.size} bytes, sha256 {self._index.sha256}"],
            )  # fmt: skip

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


@dataclass(frozen=True)
class BundleSource:
    """What the user named: one bundle file (``index`` None) or a verified parts index."""

    path: Path
    index: PartsIndex | None = None

    @property
    def name(self) -> str:
        return self.index.bundle if self.index else self.path.name

    @property
    def sha256(self) -> str:
        """The whole bundle's sha256 from a split bundle's signed index; "" for one file."""
        return self.index.sha256 if self.index else ""

    @contextmanager
    def reading(self, *, complete: bool = True) -> Iterator[ByteSource]:
        """The compressed bytes as one stream.

        With ``complete`` the caller must have read to the end: the parts are then
        checked against the index. A verification failure inside the block first hashes
        the remaining parts and, if any part is damaged, becomes a DamagedParts naming
        them all.
        """
        if self.index is None:
            with self.path.open("rb") as fh:
                yield fh
            return
        chain = ChainedParts(self.index, self.path.parent)
        try:
            yield chain
            if complete:
                chain.finish()
        except DamagedParts:
            raise
        except (VerificationError, tarfile.TarError):
            chain.raise_if_damaged()
            raise
        finally:
            chain.close()


def check_bundle_path(path: Path) -> None:
    """Refuse a BUNDLE argument that is not a regular file (``/dev/zero``, a FIFO): usage error.

    Such a stream never ends, so it is refused before anything is read.
    """
    if problem := regular_file_problem(path):
        raise GpubundleError(
            f"BUNDLE {path} is {problem}",
            hint="name the bundle file (NAME.tar.zst) as copied from the build machine, or for a "
            "split bundle its NAME.parts.json or one of its parts",
            code=ExitCode.USAGE,
        )


def open_source(path: Path, trusted: Sequence[str]) -> BundleSource:
    """The bundle at ``path``; for parts, the index verified and every part present and sized."""
    index_path = index_beside(path)
    if index_path is None:
        return BundleSource(path)
    index = read_index(index_path, trusted)
    problems = absent_parts(index, index_path.parent)
    if problems:
        raise VerificationError(
            f"{len(problems)} of {len(index.parts)} parts of {index.bundle} are missing or "
            "incomplete; nothing was read",
            hint=RECOPY_HINT,
            details=problems,
        )
    return BundleSource(index_path, index)
