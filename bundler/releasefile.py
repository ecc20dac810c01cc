"""Release/InRelease contents: fields, per-file hashes, freshness, and index checks (pure).

Parse only what a signature check returned (``SignatureResult.signed_data``).
Only SHA256 and SHA512 are trusted for index files; a Release may list either
or both (NVIDIA's lists SHA512 only). ``Date`` and ``Valid-Until`` are
optional: NVIDIA's Release has a 2018 ``Date`` and no ``Valid-Until``, and is
accepted; a ``Valid-Until`` in the past is refused as apt refuses it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

from installer.errors import VerificationError

STRONG_HASHES = ("SHA512", "SHA256")  # strongest first; MD5Sum and SHA1 are ignored


@dataclass(frozen=True)
class IndexEntry:
    """What the Release promises about one file below it."""

    path: str
    size: int
    hashes: Mapping[str, str] = field(default_factory=dict)  # "SHA256"/"SHA512" -> hex

    def strongest(self) -> tuple[str, str]:
        return next((name, self.hashes[name]) for name in STRONG_HASHES if name in self.hashes)


@dataclass(frozen=True)
class ReleaseFile:
    fields: Mapping[str, str]  # single-line fields, e.g. "Suite", "Codename", "Date"
    files: Mapping[str, IndexEntry]  # path relative to the Release's directory -> entry

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)

    @property
    def date(self) -> datetime | None:
        return _parse_date(self.get("Date"))

    @property
    def valid_until(self) -> datetime | None:
        return _parse_date(self.get("Valid-Until"))


def _parse_date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_release(content: bytes, what: str) -> ReleaseFile:
    """Fields and the SHA256/SHA512 file lists of a verified Release text."""
    fields: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    current: list[str] | None = None
    for number, line in enumerate(content.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        if line[0] in " \t":
            if current is None:
                raise _malformed(what, f"line {number}: continuation line without a field")
            current.append(line.strip())
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _malformed(what, f"line {number}: {line[:60]!r} is not 'Field: value'")
        # A field with an empty first line is a list (SHA256:, MD5Sum:, ...); continuation
        # lines of other fields (a long Description) are read and ignored.
        current = lists.setdefault(name, []) if not value.strip() else []
        fields.setdefault(name, value.strip())
    entries: dict[str, dict[str, str]] = {}
    sizes: dict[str, int] = {}
    for algo in STRONG_HASHES:
        for item in lists.get(algo, []):
            parts = item.split()
            if len(parts) != 3 or not parts[1].isdigit():
                raise _malformed(what, f"{algo} entry {item[:80]!r} is not 'hash size path'")
            digest, size, path = parts[0].lower(), int(parts[1]), parts[2]
            if sizes.setdefault(path, size) != size:
                raise _malformed(what, f"{path} is listed with two different sizes")
            entries.setdefault(path, {})[algo] = digest
    if not entries:
        raise _malformed(what, "it lists no SHA256 or SHA512 file hashes")
    files = {path: IndexEntry(path, sizes[path], hashes) for path, hashes in entries.items()}
    return ReleaseFile({k: v for k, v in fields.items() if k not in lists}, files)


def _malformed(what: str, reason: str) -> VerificationError:
    return VerificationError(
        f"{what} is not a valid Release file: {reason}",
        hint="the repository or mirror serves broken metadata; try another mirror with --mirror",
    )


def check_fresh(release: ReleaseFile, now: datetime, what: str) -> None:
    """Refuse a Release whose Valid-Until has passed; a Release without one is always fresh."""
    until = release.valid_until
    if until is not None and until < now:
        raise VerificationError(
            f"{what} expired on {until.isoformat()} (Valid-Until); it is {now.isoformat()} now",
            hint="the mirror is stale or replaying old metadata: use an up-to-date mirror "
            "(--mirror ID=URL), and check this machine's clock",
        )


def check_suite(release: ReleaseFile, suite: str, what: str) -> None:
    """Refuse a Release that names another suite than the one asked for (a substituted file)."""
    names = {release.get("Suite"), release.get("Codename")} - {""}
    if names and suite not in names:
        raise VerificationError(
            f"{what} describes suite {' / '.join(sorted(names))}, not {suite}",
            hint="the mirror serves another release under this path; check the mirror URL",
        )


def file_digests(path: Path, algorithms: tuple[str, ...]) -> tuple[int, dict[str, str]]:
    """Size and hex digests of a file, read once in chunks."""
    hashers = {name: hashlib.new(name.lower()) for name in algorithms}
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            size += len(chunk)
            for hasher in hashers.values():
                hasher.update(chunk)
    return size, {name: h.hexdigest() for name, h in hashers.items()}


def check_file(entry: IndexEntry, path: Path, what: str) -> None:
    """Compare a fetched file's size and every strong hash with its Release entry."""
    size, digests = file_digests(path, tuple(entry.hashes))
    problems = [f"size: expected {entry.size}, got {size}"] if size != entry.size else []
    problems += [
        f"{name}: expected {entry.hashes[name]}, got {digest}"
        for name, digest in digests.items()
        if digest != entry.hashes[name]
    ]
    if problems:
        raise VerificationError(
            f"{what}: {entry.path} does not match the signed Release",
            hint="the mirror is being updated or serves altered files; retry in a few minutes or "
            "use another mirror with --mirror ID=URL",
            details=problems,
        )
