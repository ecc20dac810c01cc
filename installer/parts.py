"""A bundle split into parts: the signed parts index, read and checked before any part is.

``gpubundle build --split-size`` writes ``NAME.tar.zst`` as ``NAME.tar.zst.part001``,
``.part002``, … and the index ``NAME.parts.json`` (with its detached signature
``NAME.parts.json.asc``) listing the whole bundle's size and sha256 and every
part's name, size and sha256. The index carries the signer's public key as key
material only, exactly as ``keys/signer.asc`` does in the bundle's head: gpgv
checks the signature with it and the signature is accepted only if its primary
fingerprint is one the user trusts. Only then are the index's fields read.

``installer.partstream`` reads the parts back as one stream.
See docs/bundle-format.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from installer import layout
from installer.errors import VerificationError
from installer.filekind import regular_file_problem
from installer.manifest import _Reader
from installer.openpgp import verify_detached_bytes
from installer.trust import BUNDLE_KEY_ADVICE, as_trust

RECOPY_HINT = "copy the parts named above again from the build machine, then run this again"
_INDEX_HINT = "copy NAME.parts.json and NAME.parts.json.asc again from the build machine"


@dataclass(frozen=True)
class PartEntry:
    name: str  # file name, beside the index
    size: int
    sha256: str


@dataclass(frozen=True)
class PartsIndex:
    format: int
    bundle: str  # the whole bundle's file name, e.g. NAME.tar.zst
    size: int  # of the whole bundle
    sha256: str  # of the whole bundle: what the install record keeps
    part_size: int  # the --split-size it was written with
    signer_fingerprint: str
    signer_key: str  # armoured public key: key material for gpgv, never trusted for being here
    parts: tuple[PartEntry, ...]

    def to_json(self) -> bytes:
        """Canonical bytes: sorted keys, one-space indent, trailing newline."""
        return (json.dumps(asdict(self), sort_keys=True, indent=1) + "\n").encode()


def _decode(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerificationError(f"{what} is not valid JSON: {exc}", hint=_INDEX_HINT) from exc


def signer_key_material(raw: bytes) -> bytes:
    """The index's ``signer_key``, read before the signature is checked: key bytes for gpgv only."""
    data = _decode(raw, "the parts index")
    key = data.get("signer_key") if isinstance(data, dict) else None
    return key.encode() if isinstance(key, str) else b""


def index_problems(index: PartsIndex) -> list[str]:
    """What is wrong with a decoded index, by field; empty when it describes a sound split."""
    problems = []
    if not index.bundle or index.bundle.startswith(".") or set(index.bundle) & {"/", "\\", "\0"}:
        problems.append(f"$.bundle: {index.bundle!r} is not a plain file name")
    if index.part_size <= 0:
        problems.append("$.part_size: must be positive")
    if not index.parts:
        problems.append("$.parts: empty")
    for number, part in enumerate(index.parts, start=1):
        where = f"$.parts[{number - 1}]"
        if part.name != layout.part_name(index.bundle, number):
            problems.append(
                f"{where}.name: {part.name!r}, expected {layout.part_name(index.bundle, number)!r}"
            )
        if not 0 < part.size <= max(index.part_size, 0):
            problems.append(f"{where}.size: {part.size} is not between 1 and part_size")
    if sum(part.size for part in index.parts) != index.size:
        problems.append("$.size: not the sum of the parts' sizes")
    return problems


def parse_index(raw: bytes) -> PartsIndex:
    """Decode and validate a (verified) index; raise VerificationError naming every bad field."""
    data = _decode(raw, "the parts index")
    r = _Reader()
    fmt = r.get(data, "format", int, "$")
    if fmt and fmt != layout.PARTS_FORMAT_VERSION:
        raise VerificationError(
            f"parts index format {fmt} is not supported (this installer reads format "
            f"{layout.PARTS_FORMAT_VERSION})",
            hint="use the installer written beside the parts by the same gpubundle build",
        )
    index = PartsIndex(
        format=fmt,
        bundle=r.get(data, "bundle", str, "$"),
        size=r.get(data, "size", int, "$"),
        sha256=r.sha256(data, "sha256", "$"),
        part_size=r.get(data, "part_size", int, "$"),
        signer_fingerprint=r.get(data, "signer_fingerprint", str, "$"),
        signer_key=r.get(data, "signer_key", str, "$"),
        parts=tuple(
            PartEntry(
                r.get(p, "name", str, at), r.get(p, "size", int, at), r.sha256(p, "sha256", at)
            )
            for at, p in r.items(data, "parts", "$")
        ),
    )
    problems = r.errors or index_problems(index)
    if problems:
        raise VerificationError(
            "the parts index does not match the parts index format",
            hint="the parts were not written by a compatible gpubundle build; rebuild them",
            details=problems,
        )
    return index


def read_index(index_path: Path, trusted: Sequence[str]) -> PartsIndex:
    """The index at ``index_path``, its signature checked against ``trusted`` first."""
    sig_path = index_path.with_name(index_path.name + layout.SIGNATURE_SUFFIX)
    if problem := regular_file_problem(index_path):
        raise VerificationError(f"the parts index {index_path} is {problem}", hint=_INDEX_HINT)
    if problem := regular_file_problem(sig_path):
        raise VerificationError(
            f"the parts index is unsigned: {sig_path.name} beside {index_path.name} is {problem}",
            hint=f"copy {sig_path.name} from the build machine too",
        )
    if index_path.stat().st_size > layout.MAX_PARTS_INDEX_BYTES:
        raise VerificationError(
            f"{index_path.name} is larger than a parts index may be "
            f"({layout.MAX_PARTS_INDEX_BYTES} bytes)",
            hint=_INDEX_HINT,
        )
    if sig_path.stat().st_size > layout.MAX_HEAD_MEMBER_BYTES:
        raise VerificationError(
            f"{sig_path.name} is larger than a signature may be "
            f"({layout.MAX_HEAD_MEMBER_BYTES} bytes)",
            hint=_INDEX_HINT,
        )
    raw = index_path.read_bytes()
    trust = as_trust(trusted)
    result = verify_detached_bytes(
        raw,
        sig_path.read_bytes(),
        trust.keyring([signer_key_material(raw)]),
        trust,
        f"parts index {index_path.name}",
        BUNDLE_KEY_ADVICE,
    )
    index = parse_index(raw)
    if index.signer_fingerprint != result.primary_fingerprint:
        raise VerificationError(
            "the parts index names a different signer than the key that signed it",
            hint=_INDEX_HINT,
            details=[
                f"index says {index.signer_fingerprint}",
                f"signed by {result.primary_fingerprint}",
            ],
        )
    return index


def index_beside(path: Path) -> Path | None:
    """The index for ``path`` when it is an index or a part; None for a single-file bundle."""
    if path.name.endswith(layout.PARTS_INDEX_SUFFIX):
        return path
    parsed = layout.parse_part_name(path.name)
    if parsed is None:
        return None
    index = path.with_name(layout.parts_index_name(parsed[0]))
    if problem := regular_file_problem(index):
        raise VerificationError(
            f"{path.name} is one part of a split bundle, but its index {index.name} "
            + ("is not beside it" if problem == "missing" else f"beside it is {problem}"),
            hint=f"copy {index.name} and {index.name}{layout.SIGNATURE_SUFFIX} from the build "
            "machine into the same directory as the parts",
        )
    return index


def absent_parts(index: PartsIndex, directory: Path) -> list[str]:
    """Parts that are missing or of the wrong size, checked before any part is read."""
    problems = []
    for part in index.parts:
        path = directory / part.name
        if problem := regular_file_problem(path):
            problems.append(f"{part.name}: {problem}")
        elif (size := path.stat().st_size) != part.size:
            problems.append(f"{part.name}: {size} bytes, the index says {part.size}")
    return problems
