"""``gpubundle build --split-size``: the bundle as numbered parts of at most SIZE bytes, and an index.

``parse_size`` is pure. ``PartWriter`` is the packer's file-like sink: it cuts
the compressed stream into ``NAME.tar.zst.part001``, ``.part002``, … while
hashing each part and the whole. ``write_split`` writes the parts into a
staging directory beside the output, then the signed index (``installer.parts``
is its model) and moves everything into place, the index last, removing what an
earlier build of the same name left there. The whole bundle is never on disk.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from installer import layout
from installer.errors import GpubundleError
from installer.parts import PartEntry, PartsIndex

MIN_SPLIT_SIZE = 1 << 20
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"(?P<number>[0-9]+)(?P<unit>[KMGT]?)(?:I?B)?")


def parse_size(text: str) -> int:
    """Bytes in ``text``: a number with an optional binary unit, K/M/G/T = KiB/MiB/GiB/TiB.

    ``4G``, ``4000M``, ``50MiB`` and ``1048576`` are accepted; raises ValueError
    for anything else or for less than MIN_SPLIT_SIZE.
    """
    match = _SIZE.fullmatch(text.strip().upper())
    if match is None:
        raise ValueError(f"{text!r} is not a size (e.g. 4G, 4000M, 50M, 1048576)")
    size = int(match["number"]) * _UNITS[match["unit"]]
    if size < MIN_SPLIT_SIZE:
        raise ValueError(f"{text!r} is less than the smallest part size, 1M ({MIN_SPLIT_SIZE})")
    return size


class PartWriter:
    """A write-only sink that fills ``part_size``-byte part files in ``directory``, in order."""

    def __init__(self, directory: Path, bundle_name: str, part_size: int) -> None:
        if part_size <= 0:
            raise ValueError("part_size must be positive")
        self._directory, self._bundle, self._part_size = directory, bundle_name, part_size
        self._fh: BinaryIO | None = None
        self._digest = hashlib.sha256()
        self._in_part = 0
        self.whole = hashlib.sha256()
        self.size = 0
        self.parts: list[PartEntry] = []

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data).cast("B")
        total = len(view)
        while view:
            if self._fh is None:
                name = layout.part_name(self._bundle, len(self.parts) + 1)
                self._fh = (self._directory / name).open("xb")
                self._digest, self._in_part = hashlib.sha256(), 0
            chunk = view[: self._part_size - self._in_part]
            self._fh.write(chunk)
            self._digest.update(chunk)
            self.whole.update(chunk)
            self._in_part += len(chunk)
            self.size += len(chunk)
            view = view[len(chunk) :]
            if self._in_part == self._part_size:
                self._end_part()
        return total

    def _end_part(self) -> None:
        assert self._fh is not None
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        name = layout.part_name(self._bundle, len(self.parts) + 1)
        self.parts.append(PartEntry(name, self._in_part, self._digest.hexdigest()))

    def finish(self) -> tuple[PartEntry, ...]:
        """Close the last part; the parts written, in order."""
        if self._fh is not None:
            self._end_part()
        return tuple(self.parts)

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


@dataclass(frozen=True)
class SplitResult:
    index: Path
    signature: Path
    parts: tuple[Path, ...]
    size: int  # of the whole bundle
    sha256: str  # of the whole bundle


def stale_outputs(output: Path) -> list[Path]:
    """What an earlier build named ``output`` left beside it: the file itself, parts, index."""
    index = output.with_name(layout.parts_index_name(output.name))
    found = [output, index, index.with_name(index.name + layout.SIGNATURE_SUFFIX)]
    found += [
        path
        for path in output.parent.glob(f"{glob.escape(output.name)}{layout.PART_SUFFIX}*")
        if (parsed := layout.parse_part_name(path.name)) and parsed[0] == output.name
    ]
    return [path for path in found if path.is_file()]


def write_split(
    output: Path,
    part_size: int,
    produce: Callable[[PartWriter], None],
    *,
    signer_key: bytes,
    fingerprint: str,
    sign: Callable[[bytes], bytes],
) -> SplitResult:
    """Parts of ``output`` as ``produce`` writes them, and their index signed with ``sign``."""
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.split-", dir=output.parent))
    try:
        writer = PartWriter(staging, output.name, part_size)
        try:
            produce(writer)
            entries = writer.finish()
        finally:
            writer.abort()
        index = PartsIndex(
            format=layout.PARTS_FORMAT_VERSION,
            bundle=output.name,
            size=writer.size,
            sha256=writer.whole.hexdigest(),
            part_size=part_size,
            signer_fingerprint=fingerprint,
            signer_key=signer_key.decode(),
            parts=entries,
        )
        raw = index.to_json()
        index_path = output.with_name(layout.parts_index_name(output.name))
        sig_path = index_path.with_name(index_path.name + layout.SIGNATURE_SUFFIX)
        (staging / sig_path.name).write_bytes(sign(raw))
        (staging / index_path.name).write_bytes(raw)
        for path in stale_outputs(output):
            path.unlink()
        names = [entry.name for entry in entries] + [sig_path.name, index_path.name]
        for name in names:  # the index last: a complete index means complete parts
            (staging / name).replace(output.parent / name)
    except OSError as exc:
        raise GpubundleError(
            f"cannot write the parts of {output}: {exc.strerror or exc}",
            hint="check free space and permissions where the bundle is written",
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return SplitResult(
        index=index_path,
        signature=sig_path,
        parts=tuple(output.parent / entry.name for entry in entries),
        size=index.size,
        sha256=index.sha256,
    )
