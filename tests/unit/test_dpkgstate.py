"""dpkg's state read from files: status stanzas, the journal over them, lock holders."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from installer.dpkgstate import (
    DpkgFacts,
    journal_entries,
    lock_holders,
    parse_proc_locks,
    parse_status,
    read_dpkg_facts,
)
from installer.hostpaths import HostPaths

PROC = HostPaths.system().proc  # the real one: its locks are this test's
STATUS = """\
Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u4
Description: GNU C Library
 continuation line: Status: deinstall ok config-files

Package: nvidia-container-toolkit-base
Status: hold ok installed
Architecture: amd64
Version: 1.17.8-1

Package: old-tool
Status: deinstall ok config-files
Architecture: amd64
Version: 0.9

Package: half
Status: install reinstreq half-installed
Architecture: amd64
Version: 2.0
"""


def test_status_stanzas_give_selection_flag_and_state() -> None:
    packages = parse_status(STATUS)
    assert packages["libc6"].installed and not packages["libc6"].interrupted
    base = packages["nvidia-container-toolkit-base"]
    assert (base.want, base.state, base.version) == ("hold", "installed", "1.17.8-1")
    assert not packages["old-tool"].installed and not packages["old-tool"].interrupted
    assert packages["half"].interrupted and packages["half"].flag == "reinstreq"
    assert packages["half"].describe() == "half 2.0 (half-installed)"


def test_the_journal_is_applied_over_the_status_file_in_dpkg_order(tmp_path: Path) -> None:
    (tmp_path / "status").write_text(STATUS)
    updates = tmp_path / "updates"
    updates.mkdir()
    (updates / "0000").write_text(
        "Package: libc6\nStatus: install ok unpacked\nArchitecture: amd64\nVersion: 2.36-9\n"
    )
    (updates / "0001").write_text(
        "Package: libc6\nStatus: install ok half-configured\nArchitecture: amd64\nVersion: 2.36-9\n"
    )
    (updates / "tmp.i").write_text("Package: libc6\nStatus: install ok installed\n")
    assert [p.name for p in journal_entries(updates)] == ["0000", "0001"]
    facts = read_dpkg_facts(tmp_path, proc=tmp_path / "no-proc")
    assert facts.journal == ("0000", "0001")
    assert facts.packages["libc6"].state == "half-configured"
    assert {p.name for p in facts.interrupted} == {"libc6", "half"}
    assert facts.needs_recovery
    assert set(facts.held()) == {"nvidia-container-toolkit-base"}
    assert facts.installed_version("nvidia-container-toolkit-base") == "1.17.8-1"
    assert facts.installed_version("libc6") is None


def test_a_clean_database_needs_no_recovery(tmp_path: Path) -> None:
    (tmp_path / "status").write_text(STATUS.split("\n\nPackage: half")[0] + "\n")
    (tmp_path / "updates").mkdir()
    facts = read_dpkg_facts(tmp_path, proc=tmp_path / "no-proc")
    assert not facts.needs_recovery and facts.journal == () and facts.lock_holders == ()
    assert not DpkgFacts().needs_recovery


def test_proc_locks_lines_are_parsed_and_waiters_left_out() -> None:
    text = (
        "1: POSIX  ADVISORY  WRITE 4242 fd:01:1234 0 EOF\n"
        "1: -> POSIX  ADVISORY  WRITE 4343 fd:01:1234 0 EOF\n"
        "2: OFDLCK ADVISORY  READ  -1 08:10:99 0 EOF\n"
        "garbage\n"
    )
    assert parse_proc_locks(text) == [(4242, 0xFD, 1, 1234), (-1, 8, 16, 99)]


def test_the_holder_of_a_real_lock_is_named_with_its_command_line(tmp_path: Path) -> None:
    lock = tmp_path / "lock-frontend"
    lock.touch()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        found = lock_holders([lock, tmp_path / "missing"], PROC)
        assert [h.pid for h in found] == [holder.pid]
        assert "python" in found[0].command and str(lock) in found[0].command
        assert found[0].describe().startswith(f"pid {holder.pid} (")
    finally:
        holder.kill()
        holder.wait()
    assert lock_holders([lock], PROC) == []


# Holds an fcntl write lock on argv[1] (as apt and dpkg lock theirs) until killed.
HOLD = """
import fcntl, sys, time
f = open(sys.argv[1], "w")
fcntl.lockf(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


def test_our_own_lock_is_seen_too(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    with lock.open("w") as handle:
        fcntl.lockf(handle, fcntl.LOCK_EX)
        assert [h.pid for h in lock_holders([lock], PROC)] == [os.getpid()]
    assert lock_holders([lock], PROC) == []


def test_install_waits_for_dpkgs_lock_and_says_who_holds_it(tmp_path: Path) -> None:
    """A holder that lets go in time: waited for, told once; one that does not: reported."""
    from installer.hostinfo import dpkg_facts_after_lock

    (tmp_path / "status").write_text(STATUS)
    lock = tmp_path / "lock"
    lock.touch()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD.replace("60", "0.5"), str(lock)],
        stdout=subprocess.PIPE,
        text=True,
    )
    told: list[str] = []
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    facts = dpkg_facts_after_lock(
        30,
        lambda hs: told.extend(h.describe() for h in hs),
        tmp_path,
        PROC,
        poll_s=0.05,
        other_locks=(),
    )
    holder.wait()
    assert facts.lock_holders == () and len(told) == 1 and f"pid {holder.pid}" in told[0]

    # apt-get update's lists lock counts too; still held at the end: reported.
    with (tmp_path / "lists-lock").open("w") as handle:
        fcntl.lockf(handle, fcntl.LOCK_EX)
        facts = dpkg_facts_after_lock(
            0.2,
            lambda hs: None,
            tmp_path,
            PROC,
            poll_s=0.05,
            other_locks=[tmp_path / "lists-lock"],
        )
    assert [h.pid for h in facts.lock_holders] == [os.getpid()]
