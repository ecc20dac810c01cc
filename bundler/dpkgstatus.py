"""dpkg's status database (/var/lib/dpkg/status) as the resolver's ``installed`` map.

Like apt, a package counts as installed (has a current version) in every
state except ``not-installed`` and ``config-files``; the half states
(``unpacked``, ``half-configured``, ``half-installed``, ``triggers-awaited``,
``triggers-pending``) are kept and reported so callers can warn about them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bundler.index import PackageRecord, parse_fields, record_from_fields
from installer.errors import GpubundleError

STATUS_PATH = Path("/var/lib/dpkg/status")
_NOT_INSTALLED = frozenset({"not-installed", "config-files"})
HALF_STATES = frozenset(
    {"unpacked", "half-configured", "half-installed", "triggers-awaited", "triggers-pending"}
)


@dataclass(frozen=True)
class InstalledPackage:
    record: PackageRecord  # source_id "dpkg-status", no filename or hashes
    want: str  # install, hold, deinstall, purge, unknown
    state: str  # installed or one of HALF_STATES

    @property
    def is_half_installed(self) -> bool:
        return self.state in HALF_STATES


def parse_status(text: str, arch: str) -> dict[str, InstalledPackage]:
    """Installed packages by name from the text of a dpkg status file."""
    installed: dict[str, InstalledPackage] = {}
    for number, stanza in enumerate(text.split("\n\n")):
        if not stanza.strip():
            continue
        fields = parse_fields(stanza)
        status = fields.get("Status", "").split()
        if len(status) != 3:
            raise ValueError(f"stanza {number + 1}: malformed Status {fields.get('Status')!r}")
        want, _flag, state = status
        if state in _NOT_INSTALLED:
            continue
        record = record_from_fields(fields, "dpkg-status", "", arch)
        if record.architecture not in (arch, "all"):
            continue  # a foreign-architecture package: not the native one's name
        installed[record.name] = InstalledPackage(record=record, want=want, state=state)
    return installed


def read_status(path: Path, arch: str) -> dict[str, InstalledPackage]:
    """Parse the dpkg status file at ``path``; a missing file means nothing is installed."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise GpubundleError(
            f"cannot read dpkg status {path}: {exc.strerror}",
            hint="run as a user that can read the dpkg database",
        ) from exc
    if text.lstrip().startswith("{"):
        raise GpubundleError(
            f"{path} is a JSON document (`gpubundle status --json`?), not a dpkg status file: "
            "it names only gpubundle's packages, not everything the host has",
            hint="copy the host's /var/lib/dpkg/status out and pass that file (docs/lifecycle.md)",
        )
    try:
        return parse_status(text, arch)
    except ValueError as exc:
        raise GpubundleError(
            f"{path} is not a valid dpkg status file: {exc}",
            hint="repair it with dpkg --configure -a, or pass another status file",
        ) from exc


def installed_records(packages: dict[str, InstalledPackage]) -> dict[str, PackageRecord]:
    """The ``installed`` argument of bundler.resolver.resolve."""
    return {name: pkg.record for name, pkg in packages.items()}
