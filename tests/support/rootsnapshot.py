"""A root filesystem's package and apt state, captured as data to compare before and after.

``capture(root)`` reads, without running anything inside the root:

- ``packages``: every stanza of ROOT/var/lib/dpkg/status as {name: (version, status)}
  (the selection, e.g. ``install ok installed`` or ``deinstall ok config-files``);
- ``sources``: ROOT/etc/apt/sources.list and sources.list.d/*, {path: sha256};
- ``keyrings``: ROOT/usr/share/keyrings and ROOT/etc/apt/keyrings, {path: sha256};
- ``gpubundle``: everything under gpubundle's own paths (state, logs, trust, lock),
  {path: "dir" | sha256 | "-> target"};
- ``apt``: apt's own state that an install of packages from a new source touches:
  everything under ROOT/var/lib/apt/lists (the list files of every source, ``partial/``)
  and ROOT/var/lib/apt/extended_states (which packages apt installed as dependencies),
  same digests.

``differences(before, after)`` lists what changed, one readable line each, so an
assertion message says exactly what an uninstall left behind.

``listing(root)`` is the whole root instead: every path with its type, permission
bits, owner, link target and content hash, but for ``LISTING_SKIPPED`` (mount points,
logs, apt's and ldconfig's caches, dpkg's ``*-old`` copies, the lock file: each says
why); ``listing_differences(before, after, ignored)`` compares two of them.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from installer import layout

SOURCE_PATHS = ("etc/apt/sources.list", "etc/apt/sources.list.d")
KEYRING_DIRS = ("usr/share/keyrings", "etc/apt/keyrings")
GPUBUNDLE_PATHS = (layout.STATE_DIR, layout.LOG_DIR, "/etc/gpubundle", layout.LOCK_FILE)
APT_STATE_PATHS = ("var/lib/apt/lists", "var/lib/apt/extended_states")


@dataclass(frozen=True)
class RootState:
    packages: Mapping[str, tuple[str, str]]
    sources: Mapping[str, str]
    keyrings: Mapping[str, str]
    gpubundle: Mapping[str, str]
    apt: Mapping[str, str]

    def without(self, prefixes: Iterable[str], dirs: Iterable[str] = ()) -> RootState:
        """This state without gpubundle paths at or under ``prefixes``, and without the
        directories ``dirs`` themselves (their contents still count): kept by design."""
        kept = tuple(p.rstrip("/") for p in prefixes)
        bare = set(dirs)

        def dropped(path: str) -> bool:
            if path in bare and self.gpubundle[path] == "dir":
                return True
            return any(path == p or path.startswith(p + "/") for p in kept)

        return RootState(
            self.packages,
            self.sources,
            self.keyrings,
            {p: v for p, v in self.gpubundle.items() if not dropped(p)},
            self.apt,
        )


def parse_dpkg_status(text: str) -> dict[str, tuple[str, str]]:
    """{package: (version, status)} of a dpkg status file's text (one architecture per root)."""
    found: dict[str, tuple[str, str]] = {}
    for stanza in text.split("\n\n"):
        values: dict[str, str] = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ": " in line:
                name, value = line.split(": ", 1)
                values[name] = value
        if "Package" not in values:
            continue
        found[values["Package"]] = (values.get("Version", ""), values.get("Status", ""))
    return found


def _digest(path: Path) -> str:
    if path.is_symlink():
        return "-> " + os.readlink(path)
    if path.is_dir():
        return "dir"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path, rel: str) -> dict[str, str]:
    """{absolute path in the root: digest} of ``rel`` and everything under it, if it exists."""
    top = root / rel.lstrip("/")
    if not os.path.lexists(top):
        return {}
    found = {"/" + rel.lstrip("/"): _digest(top)}
    if top.is_dir() and not top.is_symlink():
        for dirpath, dirnames, filenames in os.walk(top):
            for name in (*dirnames, *filenames):
                path = Path(dirpath) / name
                found["/" + path.relative_to(root).as_posix()] = _digest(path)
    return found


def _trees(root: Path, rels: Iterable[str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for rel in rels:
        merged.update(tree(root, rel))
    return dict(sorted(merged.items()))


def capture(root: Path) -> RootState:
    status = (root / "var/lib/dpkg/status").read_text(encoding="utf-8", errors="replace")
    return RootState(
        packages=parse_dpkg_status(status),
        sources=_trees(root, SOURCE_PATHS),
        keyrings=_trees(root, KEYRING_DIRS),
        gpubundle=_trees(root, GPUBUNDLE_PATHS),
        apt=_trees(root, APT_STATE_PATHS),
    )


def _mapping_changes(
    what: str, before: Mapping[str, object], after: Mapping[str, object]
) -> list[str]:
    lines = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old != new:
            lines.append(f"{what} {key}: {old if old is not None else 'absent'} -> "
                         f"{new if new is not None else 'absent'}")  # fmt: skip
    return lines


def differences(before: RootState, after: RootState) -> list[str]:
    """What changed from ``before`` to ``after``, one line per package or path."""
    lines: list[str] = []
    for f in fields(RootState):
        lines += _mapping_changes(f.name, getattr(before, f.name), getattr(after, f.name))
    return lines


# --- the whole root as a listing ------------------------------------------------------

# Left out of a whole-root listing: mount points of the test harness, and what every
# apt or dpkg run rewrites whatever it does, kept by design. Each with why:
LISTING_SKIPPED = (
    "/proc",  # mounted for the run (kernel state)
    "/sys",
    "/dev",
    "/tmp",  # the test's drop of the bundle and the installer
    "/var/log",  # logs: dpkg.log, apt's history, gpubundle's own install reports
    "/var/cache/apt",  # apt's caches: pkgcache.bin, srcpkgcache.bin, archives/partial
    "/var/cache/ldconfig/aux-cache",  # ldconfig's cache of file stat data, rewritten each run
    "/var/lib/dpkg/status-old",  # dpkg's copy of the status before its last run
    "/var/lib/dpkg/diversions-old",
    "/var/lib/dpkg/statoverride-old",
    layout.LOCK_FILE,  # a lock file outlives its holders (see test_uninstall_roots.py)
)


@dataclass(frozen=True)
class Entry:
    """One path of a root: its type, permissions, owner and what it holds."""

    kind: str  # file | dir | link | other
    mode: int  # the permission bits (stat.S_IMODE)
    uid: int
    gid: int
    target: str = ""  # a link's target, else ""
    sha256: str = ""  # a file's content digest, else ""

    def __str__(self) -> str:
        what = {"link": f" -> {self.target}", "file": f" sha256 {self.sha256[:12]}"}
        return f"{self.kind} {self.mode:04o} {self.uid}:{self.gid}{what.get(self.kind, '')}"


def _entry(path: Path) -> Entry:
    st = os.lstat(path)
    mode, owner = stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
    if stat.S_ISLNK(st.st_mode):
        return Entry("link", mode, *owner, target=os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return Entry("dir", mode, *owner)
    if stat.S_ISREG(st.st_mode):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return Entry("file", mode, *owner, sha256=digest.hexdigest())
    return Entry("other", mode, *owner)


def listing(root: Path, skipped: Iterable[str] = LISTING_SKIPPED) -> dict[str, Entry]:
    """{absolute path in the root: Entry} of every path of ``root`` but ``skipped`` ones
    (a skipped directory is left out with everything under it). Nothing is followed."""
    skip = {s.rstrip("/") for s in skipped}
    found: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = "/" + os.path.relpath(dirpath, root).removeprefix(".").lstrip("/")
        base = rel.rstrip("/")
        kept = [d for d in dirnames if f"{base}/{d}" not in skip]
        dirnames[:] = kept
        for name in (*kept, *filenames):
            path = f"{base}/{name}"
            if path not in skip:
                found[path] = _entry(Path(dirpath) / name)
    return found


def listing_differences(
    before: Mapping[str, Entry], after: Mapping[str, Entry], ignored: Iterable[str] = ()
) -> list[str]:
    """What changed between two listings, one line per path, except at or under ``ignored``."""
    prefixes = tuple(p.rstrip("/") for p in ignored)

    def wanted(path: str) -> bool:
        return not any(path == p or path.startswith(p + "/") for p in prefixes)

    lines = []
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        if old != new and wanted(path):
            lines.append(f"{path}: {old or 'absent'} -> {new or 'absent'}")
    return lines
