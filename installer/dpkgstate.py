"""dpkg's own state as data: its status database, its journal, its locks.

What ``dpkg --audit`` and apt's "dpkg was interrupted" look at, read straight from
the files so that preflight can decide before anything runs: the status file
(``/var/lib/dpkg/status``) overlaid with the journal dpkg writes ahead of it
(``/var/lib/dpkg/updates/NNNN``, folded in at the end of every dpkg run, so a
non-empty journal means a dpkg run was cut short), and who holds dpkg's locks
(from ``/proc/locks``). Parsers are pure; every reader takes its path (``HostPaths``'
``dpkg_admin_dir`` and ``proc`` on a host).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# apt holds lock-frontend for its whole run, dpkg holds lock while it acts.
LOCK_NAMES = ("lock-frontend", "lock")
# dpkg's package states that mean a run did not finish (dpkg --audit reports them).
INTERRUPTED_STATES = (
    "half-installed",
    "unpacked",
    "half-configured",
    "triggers-awaited",
    "triggers-pending",
)


@dataclass(frozen=True)
class DpkgPackage:
    name: str
    arch: str
    version: str
    want: str  # selection: install | hold | deinstall | purge | unknown
    flag: str  # ok | reinstreq
    state: str  # not-installed | config-files | half-installed | unpacked | ... | installed

    @property
    def interrupted(self) -> bool:
        return self.state in INTERRUPTED_STATES or self.flag == "reinstreq"

    @property
    def installed(self) -> bool:
        return self.state == "installed" and self.flag == "ok"

    def describe(self) -> str:
        return f"{self.name} {self.version} ({self.state})".replace(" ()", "")


@dataclass(frozen=True)
class LockHolder:
    pid: int
    command: str  # its command line, "" if unknown

    def describe(self) -> str:
        return f"pid {self.pid}" + (f" ({self.command})" if self.command else "")


@dataclass(frozen=True)
class DpkgFacts:
    """dpkg's view of the host: every package (journal applied), the journal, lock holders."""

    packages: Mapping[str, DpkgPackage] = field(default_factory=dict)
    journal: tuple[str, ...] = ()  # file names under updates/: a dpkg run was cut short
    lock_holders: tuple[LockHolder, ...] = ()

    @property
    def interrupted(self) -> tuple[DpkgPackage, ...]:
        return tuple(p for p in self.packages.values() if p.interrupted)

    @property
    def needs_recovery(self) -> bool:
        return bool(self.journal or self.interrupted)

    def held(self) -> dict[str, DpkgPackage]:
        return {n: p for n, p in self.packages.items() if p.want == "hold"}

    def installed_version(self, name: str) -> str | None:
        pkg = self.packages.get(name)
        return pkg.version if pkg is not None and pkg.installed else None


def _stanzas(text: str) -> Iterable[dict[str, str]]:
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line[0].isspace() and ": " in line:
                key, value = line.split(": ", 1)
                fields[key] = value.strip()
            elif line and not line[0].isspace() and line.endswith(":"):
                fields[line[:-1]] = ""
        if "Package" in fields:
            yield fields


def parse_status(text: str) -> dict[str, DpkgPackage]:
    """{name: package} of a status file's (or journal entry's) stanzas, one per package name.

    Multi-arch duplicates keep the last stanza; gpubundle installs one architecture.
    """
    found: dict[str, DpkgPackage] = {}
    for fields in _stanzas(text):
        words = fields.get("Status", "unknown ok not-installed").split()
        want, flag, state = (words + ["unknown", "ok", "not-installed"][len(words) :])[:3]
        name = fields["Package"]
        found[name] = DpkgPackage(
            name, fields.get("Architecture", ""), fields.get("Version", ""), want, flag, state
        )
    return found


def journal_entries(updates_dir: Path) -> list[Path]:
    """dpkg's pending journal files, in the order dpkg applies them (names are all digits;
    ``tmp.i`` is a half-written entry dpkg itself ignores)."""
    try:
        names = [p for p in updates_dir.iterdir() if p.name.isdigit()]
    except FileNotFoundError:
        return []
    return sorted(names, key=lambda p: int(p.name))


def parse_proc_locks(text: str) -> list[tuple[int, int, int, int]]:
    """(pid, major, minor, inode) of every lock held (waiters, "->" lines, are left out).

    A line reads ``1: POSIX  ADVISORY  WRITE 1234 08:01:56789 0 EOF``: device numbers in
    hex, the inode in decimal; an open-file-description lock shows pid -1.
    """
    held = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 6 or words[1] == "->":
            continue
        try:
            pid = int(words[4])
            major, minor, inode = words[5].split(":")
            held.append((pid, int(major, 16), int(minor, 16), int(inode)))
        except ValueError:
            continue
    return held


def lock_holders(lock_files: Iterable[Path], proc: Path) -> list[LockHolder]:
    """Processes holding a lock on any of ``lock_files``, with their command lines."""
    try:
        locks = parse_proc_locks((proc / "locks").read_text())
    except OSError:
        return []
    wanted = set()
    for path in lock_files:
        try:
            st = path.stat()
        except OSError:
            continue
        wanted.add((os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
    holders: dict[int, LockHolder] = {}
    for pid, major, minor, inode in locks:
        if (major, minor, inode) in wanted and pid > 0 and pid not in holders:
            holders[pid] = LockHolder(pid, command_line(proc / str(pid) / "cmdline"))
    return [holders[pid] for pid in sorted(holders)]


def command_line(cmdline: Path) -> str:
    try:
        return " ".join(cmdline.read_bytes().decode(errors="replace").split("\0")).strip()
    except OSError:
        return ""


def read_dpkg_facts(admin_dir: Path, proc: Path, other_locks: Iterable[Path] = ()) -> DpkgFacts:
    """The status file with the journal applied on top, as dpkg itself reads them; lock
    holders of dpkg's locks and of ``other_locks`` (apt's, e.g. its lists lock)."""
    try:
        status = (admin_dir / "status").read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        status = ""
    packages = parse_status(status)
    journal = journal_entries(admin_dir / "updates")
    for entry in journal:
        try:
            packages.update(parse_status(entry.read_text(encoding="utf-8", errors="replace")))
        except OSError:
            continue
    return DpkgFacts(
        packages=dict(sorted(packages.items())),
        journal=tuple(p.name for p in journal),
        lock_holders=tuple(
            lock_holders([*(admin_dir / n for n in LOCK_NAMES), *other_locks], proc)
        ),
    )
