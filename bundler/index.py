"""A Packages index, parsed lazily: only stanzas the resolver asks about are decoded.

Opening an index scans the raw bytes once for ``Package:`` lines (one regex
pass, no copies) and keeps each stanza's byte offset under its name. Fields of
a stanza are parsed when a record is first requested; ``Provides`` is scanned
once, on the first question about a virtual name. This keeps a cold
resolution over the whole Ubuntu archive (hundreds of thousands of stanzas)
to a fraction of a second of parsing.
"""

from __future__ import annotations

import bisect
import functools
import marshal
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A literal "\n" prefix instead of MULTILINE "^" keeps these scans several times faster;
# the first stanza of a file, which no newline precedes, is matched separately.
_PACKAGE_LINE = re.compile(rb"\nPackage:[ \t]*([^\s]+)")
_FIRST_PACKAGE_LINE = re.compile(rb"Package:[ \t]*([^\s]+)")
_PROVIDES_FIELD = re.compile(rb"\nProvides:[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)")
_RELATION = re.compile(
    r"""^\s*(?P<name>[^\s:(\[<]+)(?::(?P<arch>[^\s(\[<]+))?\s*
        (?:\(\s*(?P<op><<|<=|>=|>>|=|<|>)\s*(?P<version>[^\s)<>=][^\s)]*)\s*\))?\s*
        (?:\[(?P<archs>[^\]]*)\])?\s*
        (?P<profiles>(?:<[^>]*>\s*)*)$""",
    re.VERBOSE,
)
_OBSOLETE_OPS = {"<": "<=", ">": ">="}


@dataclass(frozen=True)
class Relation:
    """One alternative of a dependency: ``name[:arch_qualifier] [(op version)]``."""

    name: str
    arch_qualifier: str = ""  # "", "any", "native" or an architecture name
    op: str = ""  # "", "<<", "<=", "=", ">=", ">>"
    version: str = ""

    def __str__(self) -> str:
        text = f"{self.name}:{self.arch_qualifier}" if self.arch_qualifier else self.name
        return f"{text} ({self.op} {self.version})" if self.op else text


Relations = tuple[tuple[Relation, ...], ...]  # an AND of OR-groups


@dataclass(frozen=True)
class PackageRecord:
    """One binary package version as an index (or dpkg's status file) describes it."""

    name: str
    version: str
    architecture: str
    multi_arch: str  # "no", "same", "foreign" or "allowed"
    essential: bool
    priority: str
    depends: Relations
    pre_depends: Relations
    provides: tuple[Relation, ...]
    breaks: Relations
    conflicts: Relations
    filename: str
    size: int
    sha256: str  # "" when the index lists only SHA512
    sha512: str
    source_id: str
    base_url: str
    important: bool = False  # "Important: yes" / "Protected: yes"

    @property
    def url(self) -> str:
        filename = self.filename[2:] if self.filename.startswith("./") else self.filename
        return f"{self.base_url.rstrip('/')}/{filename}"


def _arch_matches(restrictions: str, arch: str) -> bool:
    """apt's reading of ``[amd64 arm64]`` / ``[!i386]`` (linux-ARCH wildcards included)."""
    terms = restrictions.split()
    negated = [t[1:] for t in terms if t.startswith("!")]
    if negated:
        return not any(_arch_term_matches(t, arch) for t in negated)
    return any(_arch_term_matches(t, arch) for t in terms)


def _arch_term_matches(term: str, arch: str) -> bool:
    return term in (arch, "any", f"linux-{arch}", f"any-{arch}", "linux-any")


def _profiles_match(profiles: str) -> bool:
    """True if ``<a !b> <c>`` holds with no build profile active (binary indices)."""
    formulas = re.findall(r"<([^>]*)>", profiles)
    if not formulas:
        return True
    return any(all(term.startswith("!") for term in f.split()) for f in formulas)


@functools.lru_cache(maxsize=65536)
def parse_relations(text: str, arch: str = "amd64") -> Relations:
    """Parse a dependency field into an AND of OR-groups, as apt reads a binary index.

    Alternatives restricted away by ``[arch]`` or ``<profile>`` are dropped (an
    OR-group left empty disappears); obsolete ``<``/``>`` become ``<=``/``>=``.
    """
    groups: list[tuple[Relation, ...]] = []
    for group_text in text.split(","):
        if not group_text.strip():
            continue
        alternatives: list[Relation] = []
        for alt in group_text.split("|"):
            match = _RELATION.match(alt)
            if match is None:
                raise ValueError(f"malformed relation {alt.strip()!r} in {text!r}")
            if match["archs"] is not None and not _arch_matches(match["archs"], arch):
                continue
            if not _profiles_match(match["profiles"]):
                continue
            op = match["op"] or ""
            alternatives.append(
                Relation(
                    name=match["name"],
                    arch_qualifier=match["arch"] or "",
                    op=_OBSOLETE_OPS.get(op, op),
                    version=match["version"] or "",
                )
            )
        if alternatives:
            groups.append(tuple(alternatives))
    return tuple(groups)


def parse_fields(stanza: str) -> dict[str, str]:
    """A deb822 stanza as {field: value}; continuation lines are joined with newlines."""
    fields: dict[str, str] = {}
    key = ""
    for line in stanza.split("\n"):
        if not line:
            continue
        if line[0] in " \t":
            if key:
                fields[key] += "\n" + line.strip()
            continue
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def record_from_fields(
    fields: dict[str, str], source_id: str, base_url: str, arch: str
) -> PackageRecord:
    """Build a PackageRecord from parsed fields; raises ValueError for a broken stanza."""

    def rel(name: str) -> Relations:
        return parse_relations(fields[name], arch) if name in fields else ()

    provides = tuple(r for group in rel("Provides") for r in group)
    try:
        return PackageRecord(
            name=fields["Package"],
            version=fields["Version"],
            architecture=fields.get("Architecture", arch),
            multi_arch=fields.get("Multi-Arch", "no").lower(),
            essential=fields.get("Essential", "no").lower() == "yes",
            priority=fields.get("Priority", ""),
            depends=rel("Depends"),
            pre_depends=rel("Pre-Depends"),
            provides=provides,
            breaks=rel("Breaks"),
            conflicts=rel("Conflicts"),
            filename=fields.get("Filename", ""),
            size=int(fields.get("Size", "0") or 0),
            sha256=fields.get("SHA256", ""),
            sha512=fields.get("SHA512", ""),
            source_id=source_id,
            base_url=base_url,
            important=(
                fields.get("Important", "no").lower() == "yes"
                or fields.get("Protected", "no").lower() == "yes"
            ),
        )
    except KeyError as exc:
        raise ValueError(f"stanza without a {exc.args[0]} field") from None


_OFFSETS_SUFFIX = ".offsets"
_OFFSETS_FORMAT = 1
Offsets = tuple[list[int], dict[bytes, list[int]]]


def _scan_packages(data: bytes) -> Offsets:
    """Every stanza's start, and the starts of each package name's stanzas, in file order."""
    starts: list[int] = []
    by_name: dict[bytes, list[int]] = {}
    first = _FIRST_PACKAGE_LINE.match(data)
    matches = _PACKAGE_LINE.finditer(data)
    for match, start in (
        *(((first, 0),) if first else ()),
        *((m, m.start() + 1) for m in matches),
    ):
        starts.append(start)
        offsets = by_name.get(match.group(1))
        if offsets is None:
            by_name[match.group(1)] = [start]
        else:
            offsets.append(start)
    return starts, by_name


def _file_stamp(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return (info.st_size, info.st_mtime_ns, info.st_ino)


def _load_sidecar(sidecar: Path, stamp: tuple[int, int, int]) -> tuple[Any, ...] | None:
    try:
        loaded = marshal.loads(sidecar.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(loaded, tuple) or len(loaded) != 5 or loaded[:2] != (_OFFSETS_FORMAT, stamp):
        return None
    return loaded


def _write_offsets(
    sidecar: Path,
    stamp: tuple[int, int, int],
    starts: list[int],
    by_name: dict[bytes, list[int]],
    provides: dict[str, list[int]],
) -> None:
    """Best effort: a cache that cannot be written only costs the next run a rescan."""
    tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}")
    try:
        tmp.write_bytes(marshal.dumps((_OFFSETS_FORMAT, stamp, starts, by_name, provides)))
        os.replace(tmp, sidecar)
    except OSError:
        tmp.unlink(missing_ok=True)


class PackageIndex:
    """The binary packages of one ``Packages`` file, for one architecture.

    ``arch`` is the native architecture: stanzas of other architectures than
    it, ``all`` and ``extra_archs`` are ignored.
    """

    def __init__(
        self,
        source_id: str,
        base_url: str,
        packages_bytes: bytes,
        arch: str,
        extra_archs: tuple[str, ...] = (),
        *,
        offsets: tuple[list[int], dict[bytes, list[int]]] | None = None,
    ) -> None:
        self.source_id = source_id
        self.base_url = base_url
        self.arch = arch
        self._archs = {arch, "all", *extra_archs}
        self._data = packages_bytes
        self._starts, self._by_name = offsets or _scan_packages(packages_bytes)
        self._records: dict[int, PackageRecord | None] = {}
        self._provides: dict[str, list[int]] | None = None

    @classmethod
    def from_file(
        cls,
        source_id: str,
        base_url: str,
        path: Path,
        arch: str,
        extra_archs: tuple[str, ...] = (),
    ) -> PackageIndex:
        """The index of a verified Packages file, its stanza offsets cached beside it.

        Scanning a large index for its stanzas costs more than apt's whole warm run;
        the offsets depend only on the file's bytes, so they are kept in
        ``PATH.offsets`` and reused while the file's size and mtime are unchanged.
        """
        data = path.read_bytes()
        sidecar = path.with_name(path.name + _OFFSETS_SUFFIX)
        stamp = _file_stamp(path)
        loaded = _load_sidecar(sidecar, stamp)
        if loaded is not None:
            index = cls(source_id, base_url, data, arch, extra_archs, offsets=loaded[2:4])
            index._provides = loaded[4]
            return index
        index = cls(source_id, base_url, data, arch, extra_archs)
        index._provides = index._scan_provides()
        _write_offsets(sidecar, stamp, index._starts, index._by_name, index._provides)
        return index

    def __len__(self) -> int:
        return len(self._starts)

    def names(self) -> Iterator[str]:
        return (name.decode() for name in self._by_name)

    def first_offset(self, name: str) -> int | None:
        """Byte offset of the first stanza named ``name`` (apt's creation order proxy)."""
        offsets = self._by_name.get(name.encode())
        return offsets[0] if offsets else None

    def _record_at(self, start: int) -> PackageRecord | None:
        if start in self._records:
            return self._records[start]
        pos = bisect.bisect_right(self._starts, start)
        end = self._starts[pos] if pos < len(self._starts) else len(self._data)
        text = self._data[start:end].decode("utf-8", errors="replace")
        try:
            record: PackageRecord | None = record_from_fields(
                parse_fields(text), self.source_id, self.base_url, self.arch
            )
        except ValueError as exc:
            raise ValueError(f"{self.source_id}: byte {start}: {exc}") from None
        if record is not None and record.architecture not in self._archs:
            record = None
        self._records[start] = record
        return record

    def versions(self, name: str) -> list[PackageRecord]:
        """Every usable version of the real package ``name`` in this index, in file order."""
        found = (self._record_at(s) for s in self._by_name.get(name.encode(), ()))
        return [r for r in found if r is not None]

    def providers(self, name: str) -> list[PackageRecord]:
        """Every record whose Provides names ``name``."""
        if self._provides is None:
            self._provides = self._scan_provides()
        found = (self._record_at(s) for s in self._provides.get(name, ()))
        return [r for r in found if r is not None and any(p.name == name for p in r.provides)]

    def _scan_provides(self) -> dict[str, list[int]]:
        provides: dict[str, list[int]] = {}
        for match in _PROVIDES_FIELD.finditer(self._data):
            start = self._starts[bisect.bisect_right(self._starts, match.start() + 1) - 1]
            for item in match.group(1).decode().replace("|", ",").split(","):
                token = item.split("(")[0].split("[")[0].strip().split(":")[0]
                if token:
                    provides.setdefault(token, []).append(start)
        return provides

    def records(self) -> Iterator[PackageRecord]:
        """Every usable record (parses the whole index: for tests and small indices)."""
        for start in self._starts:
            record = self._record_at(start)
            if record is not None:
                yield record
