"""Install record check: gpubundle's record of what it changed is whole, rebuilt, or lost.

A damaged record is read as ``installer.record`` rebuilds it (mirror, packages ledger);
the doctor says which fields were lost and the way back, and uses what survived (the
images install loaded) for its other checks. It never fails because of the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from installer.doctor.checks import Finding, failure, ok, warning
from installer.errors import GpubundleError
from installer.hostpaths import HostPaths
from installer.record import InstallRecord, RecordDamage, damaged_record_error, read_record

CHECK_ID = "install-record"


@dataclass(frozen=True)
class RecordFacts:
    path: str
    record: InstallRecord | None = None
    damage: RecordDamage | None = None
    unreadable: str = ""  # why the record could not be read at all (permissions, newer format)


def gather_record(path: Path, host: HostPaths) -> RecordFacts:
    """The record at ``path`` on ``host`` (whose apt source and keyrings a damaged record's
    rebuilt file list names)."""
    try:
        read = read_record(path, host)
    except GpubundleError as err:
        return RecordFacts(str(path), unreadable=err.message)
    return RecordFacts(str(path), read.record, read.damage)


def check_record(facts: RecordFacts) -> Finding:
    if facts.unreadable:
        return failure(CHECK_ID, facts.unreadable, fix=["ls -l " + str(Path(facts.path).parent)])
    if facts.damage is not None and facts.damage.lost:
        err = damaged_record_error(facts.damage)
        return failure(CHECK_ID, err.message, list(err.details), [err.hint])
    if facts.damage is not None:
        return warning(
            CHECK_ID,
            f"{facts.path} was damaged; gpubundle rebuilt it whole from what survived",
            facts.damage.lines(),
            ["run install again with the same bundle (or uninstall): either rewrites it"],
        )
    if facts.record is None:
        return ok(CHECK_ID, f"no install record ({facts.path}): gpubundle installed nothing here")
    return ok(CHECK_ID, f"{facts.path} is whole")
