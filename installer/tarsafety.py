"""Checks on tar members before a byte of them is written anywhere.

Pure: looks only at ``tarfile.TarInfo`` headers and the manifest's sizes. A
bundle member must be a regular file (a directory entry is tolerated and
never materialised with its own mode) whose name is a normalized relative
POSIX path, seen once, with exactly the size the manifest states; and the
archive as a whole may not expand beyond what the manifest declares plus a
little slack for the head members. Anything else (links, devices, fifos,
absolute paths, ``..``, duplicates) is refused.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from installer.errors import VerificationError

HEAD_SLACK = 3 * 64 * 1024 * 1024  # the head members: bounded by layout.MAX_HEAD_MEMBER_BYTES
MAX_NAME = 4096
MAX_META_HEADER = 1 << 20  # PAX / GNU long-name headers are read into memory whole
_META_TYPES = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)

_TYPE_NAMES = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a fifo",
    tarfile.CONTTYPE: "a contiguous file",
}


def name_problem(name: str) -> str:
    """Why ``name`` is not an acceptable member path, or ''."""
    if not name:
        return "empty name"
    if len(name) > MAX_NAME or "\0" in name or "\\" in name:
        return "unacceptable characters or length in name"
    if name.startswith("/"):
        return "absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "path escapes with '..'"
    if any(part in ("", ".") for part in parts) or str(PurePosixPath(name)) != name:
        return "path is not normalized"
    return ""


def type_problem(info: tarfile.TarInfo) -> str:
    """Why ``info``'s type is refused, or '' for a regular file or directory."""
    if info.isreg() and info.type != tarfile.CONTTYPE:
        return ""
    if info.isdir():
        return ""
    kind = _TYPE_NAMES.get(info.type, f"an entry of tar type {info.type!r}")
    target = f" -> {info.linkname}" if info.issym() or info.islnk() else ""
    return f"is {kind}{target}; bundles hold regular files only"


@dataclass
class TarGuard:
    """Tracks one archive's members; ``check`` returns the problems of the next one."""

    limit: int  # the most bytes all members together may expand to
    seen: set[str] = field(default_factory=set)
    total: int = 0

    @classmethod
    def for_sizes(cls, declared: int) -> TarGuard:
        return cls(limit=declared + HEAD_SLACK)

    def check(self, info: tarfile.TarInfo, expected_size: int | None) -> list[str]:
        """Problems with ``info`` (each starting with its name); empty when it may be read.

        ``expected_size`` is the manifest's size, None when the manifest does
        not list the member (the caller reports it as extra).
        """
        name = info.name
        problems = []
        if reason := name_problem(name):
            problems.append(f"{name!r}: {reason}")
        if reason := type_problem(info):
            problems.append(f"{name!r}: {reason}")
        if name in self.seen:
            problems.append(f"{name!r}: appears more than once")
        self.seen.add(name)
        if info.isreg() and expected_size is not None and info.size != expected_size:
            problems.append(f"{name}: size {info.size}, manifest says {expected_size}")
        return problems

    def consume(self, size: int) -> None:
        """Count ``size`` more expanded bytes; raise when the archive grows past its bound."""
        self.total += size
        if self.total > self.limit:
            raise VerificationError(
                f"the archive expands beyond the {self.limit} bytes its manifest declares",
                hint="the bundle was altered to exhaust disk or memory; do not use it",
            )


class BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses oversized PAX/GNU meta headers before tarfile reads them whole."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> BoundedTarInfo:
        assert tarfile_.fileobj is not None
        buf = tarfile_.fileobj.read(tarfile.BLOCKSIZE)
        obj = cls.frombuf(buf, tarfile_.encoding or "utf-8", tarfile_.errors or "surrogateescape")
        obj.offset = tarfile_.fileobj.tell() - tarfile.BLOCKSIZE
        if obj.type in _META_TYPES and obj.size > MAX_META_HEADER:
            raise tarfile.HeaderError(
                f"{obj.name!r}: {obj.size}-byte extended header (limit {MAX_META_HEADER})"
            )
        processed: BoundedTarInfo = obj._proc_member(tarfile_)  # type: ignore[attr-defined]
        return processed
