"""The deterministic, streaming bundle writer: tar members straight into multi-threaded zstd.

The tar stream is written here, header by header, rather than by ``tarfile``
so that every byte is fixed by the inputs: head members first in
``layout.HEAD_MEMBERS`` order, then the other members sorted by path; no
directory entries; owner 0:0 with empty names; mode 0644; one mtime (the
bundle's ``source_date_epoch``); PAX headers only where ustar cannot hold a
long name or a size of 8 GiB or more. zstd runs in multi-threaded mode with
at least one worker and a fixed job size, so its output is the same for any
number of workers.

Nothing is held in memory beyond a chunk: files are read in 1 MiB pieces and
the compressed stream goes through a file-like sink (``pack_into``): one file
written as ``OUTPUT.part`` and renamed when complete (``write_bundle``), or
numbered parts for ``--split-size`` (``bundler.split``).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, cast

import zstandard

from installer import layout
from installer.errors import GpubundleError
from installer.manifest import FileEntry

CHUNK = 1 << 20
DEFAULT_LEVEL = 10
# zstd's multi-threaded job size: fixed, so the output does not depend on the worker
# count; 8 MiB keeps each worker near 40 MB at level 10 (zstd's default is 4 windows).
JOB_SIZE = 8 << 20
DEFAULT_MAX_WORKERS = 4  # with threads=0: about 200 MB of RSS at most
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE

ProgressFn = Callable[[int], None]


def hash_file(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of ``path``, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def file_entries(members: Sequence[tuple[str, Path]]) -> tuple[FileEntry, ...]:
    """The manifest's ``files`` list for ``members``, sorted by path as the bundle stores them."""
    entries = []
    for name, path in sorted(members):
        size, sha256 = hash_file(path)
        entries.append(FileEntry(name, size, sha256))
    return tuple(entries)


def check_member_name(name: str) -> None:
    """Refuse a bundle path that the installer would refuse: not relative, not normalized."""
    pure = PurePosixPath(name)
    if (
        not name
        or pure.is_absolute()
        or str(pure) != name
        or any(part in ("", ".", "..") for part in pure.parts)
        or "\\" in name
        or "\0" in name
    ):
        raise GpubundleError(
            f"cannot pack {name!r}: bundle paths are normalized relative POSIX paths",
            hint="this is a bug in the caller of write_bundle; report it",
        )


def tar_header(name: str, size: int, mtime: int) -> bytes:
    """The (PAX) header block(s) of a regular file member."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")


class HashingSink:
    """A file-like sink that writes to ``fh`` and hashes what passes through."""

    def __init__(self, fh: object) -> None:
        self._fh = fh
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        written: int = self._fh.write(data)  # type: ignore[attr-defined]
        return written


class _TarWriter:
    def __init__(self, out: zstandard.ZstdCompressionWriter, mtime: int, progress: ProgressFn):
        self._out = out
        self._mtime = mtime
        self._progress = progress
        self.offset = 0

    def _write(self, data: bytes | memoryview) -> None:
        self._out.write(data)
        self.offset += len(data)

    def _pad(self, size: int) -> None:
        remainder = size % _BLOCK
        if remainder:
            self._write(b"\0" * (_BLOCK - remainder))

    def add_bytes(self, name: str, data: bytes) -> None:
        self._write(tar_header(name, len(data), self._mtime))
        self._write(data)
        self._pad(len(data))

    def add_file(self, name: str, path: Path) -> None:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            self._write(tar_header(name, size, self._mtime))
            left = size
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while left:
                n = fh.readinto(view[: min(CHUNK, left)])
                if not n:
                    break
                self._write(view[:n])
                left -= n
                self._progress(n)
            if left or fh.read(1):
                raise GpubundleError(
                    f"{path} changed size while it was being packed",
                    hint="make sure nothing writes to the build's work directory, then rebuild",
                )
        self._pad(size)

    def finish(self) -> None:
        self._write(b"\0" * (2 * _BLOCK))
        self._pad_record()

    def _pad_record(self) -> None:
        remainder = self.offset % _RECORD
        if remainder:
            self._write(b"\0" * (_RECORD - remainder))


def _ordered(
    head: Mapping[str, bytes], members: Sequence[tuple[str, Path]]
) -> list[tuple[str, Path]]:
    if set(head) != set(layout.HEAD_MEMBERS):
        raise GpubundleError(
            f"bundle head must be exactly {', '.join(layout.HEAD_MEMBERS)}; got {', '.join(head)}",
            hint="this is a bug in the caller of write_bundle; report it",
        )
    ordered = sorted(members)
    names = [name for name, _ in ordered]
    for name in names:
        check_member_name(name)
    clashes = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(head)))
    if clashes:
        raise GpubundleError(
            f"cannot pack the same path twice: {', '.join(clashes)}",
            hint="this is a bug in the caller of write_bundle; report it",
        )
    return ordered


def pack_into(
    sink: object,
    head: Mapping[str, bytes],
    members: Sequence[tuple[str, Path]],
    *,
    mtime: int,
    threads: int = 0,
    level: int = DEFAULT_LEVEL,
    progress: ProgressFn | None = None,
) -> None:
    """Write the compressed bundle into ``sink`` (anything with ``write(bytes)``).

    ``head`` maps each of ``layout.HEAD_MEMBERS`` to its bytes; ``members`` are
    (bundle path, file) pairs, written sorted by path. ``threads`` is the
    number of zstd workers (0: one per CPU, at most DEFAULT_MAX_WORKERS); ``progress`` is called
    with the number of member bytes (not head bytes) written so far. Same inputs, same bytes.
    """
    ordered = _ordered(head, members)
    workers = threads if threads > 0 else max(1, min(os.cpu_count() or 1, DEFAULT_MAX_WORKERS))
    params = zstandard.ZstdCompressionParameters.from_level(
        level, threads=workers, job_size=JOB_SIZE, write_checksum=1
    )
    compressor = zstandard.ZstdCompressor(compression_params=params)
    report = progress or (lambda _n: None)
    writer = compressor.stream_writer(cast("IO[bytes]", sink), write_size=CHUNK, closefd=False)
    with writer as zout:
        tar = _TarWriter(zout, mtime, report)
        for name in layout.HEAD_MEMBERS:
            tar.add_bytes(name, head[name])
        for name, path in ordered:
            tar.add_file(name, path)
        tar.finish()


def write_bundle(
    output: Path,
    head: Mapping[str, bytes],
    members: Sequence[tuple[str, Path]],
    *,
    mtime: int,
    threads: int = 0,
    level: int = DEFAULT_LEVEL,
    progress: ProgressFn | None = None,
) -> str:
    """Write the bundle to ``output`` (via ``output.part``) and return its sha256.

    The arguments after ``output`` are ``pack_into``'s.
    """
    _ordered(head, members)  # a caller's mistake fails before a file is created
    part = output.with_name(output.name + ".part")
    try:
        with part.open("wb") as fh:
            sink = HashingSink(fh)
            pack_into(
                sink, head, members, mtime=mtime, threads=threads, level=level, progress=progress
            )
            fh.flush()
            os.fsync(fh.fileno())
        part.replace(output)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise GpubundleError(
            f"cannot write {output}: {exc.strerror or exc}",
            hint="check free space and permissions where the bundle is written",
        ) from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return sink.sha256.hexdigest()
