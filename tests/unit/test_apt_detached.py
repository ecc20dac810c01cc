"""apt run detached: its output in a log, its first error line in the message, and a
kill of gpubundle that leaves it running to its end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from installer.aptlocal import apt_failure, first_errors, run_apt
from installer.errors import GpubundleError
from installer.runner import run_detached

APT_OUTPUT = """\
Reading package lists...
Building dependency tree...
The following NEW packages will be installed:
  nvidia-container-toolkit
E: Failed to fetch file:/var/lib/gpubundle/bundles/x/repo/debs/a.deb  Hash Sum mismatch
   Hashes of expected file:
E: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?
"""

DPKG_OUTPUT = """\
Setting up nvidia-container-toolkit-base (1.20.1-1) ...
dpkg: error processing package nvidia-container-toolkit-base (--configure):
 installed nvidia-container-toolkit-base package post-installation script subprocess returned error exit status 1
E: Sub-process /usr/bin/dpkg returned an error code (1)
"""


def test_the_first_E_line_is_the_message_and_the_log_is_named() -> None:
    err = apt_failure("installing the packages", "apt-get", 100, APT_OUTPUT, Path("/l/apt.log"))
    assert err.message == (
        "installing the packages failed (apt-get exit code 100): E: Failed to fetch "
        "file:/var/lib/gpubundle/bundles/x/repo/debs/a.deb  Hash Sum mismatch"
    )
    assert err.details[-1] == "full output: /l/apt.log"
    assert "E: Unable to fetch some archives" in " ".join(err.details)


def test_dpkgs_own_error_comes_first_in_the_details() -> None:
    assert first_errors(DPKG_OUTPUT) == [
        "dpkg: error processing package nvidia-container-toolkit-base (--configure):",
        "E: Sub-process /usr/bin/dpkg returned an error code (1)",
    ]
    err = apt_failure("installing the packages", "apt-get", 100, DPKG_OUTPUT, None)
    assert err.message.endswith("E: Sub-process /usr/bin/dpkg returned an error code (1)")
    assert err.details[0].startswith("dpkg: error processing package")
    assert not any(d.startswith("full output") for d in err.details)


def test_output_without_an_error_line_keeps_the_plain_message() -> None:
    err = apt_failure("reading the index", "apt-get", 1, "something odd\n", None)
    assert err.message == "reading the index failed (apt-get exit code 1)"


def test_run_detached_writes_the_log_and_reports_lines_as_they_come(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "apt.log"
    log.parent.mkdir()
    log.write_text("an earlier run\n")
    seen: list[str] = []
    code, output = run_detached(
        ["sh", "-c", "echo one; echo two >&2; printf three; exit 3"], log, on_line=seen.append,
        poll_s=0.01,
    )  # fmt: skip
    assert code == 3
    assert output.splitlines() == ["one", "two", "three"]
    assert seen == ["one", "two", "three"]
    text = log.read_text()
    assert text.startswith("an earlier run\n+ sh -c ") and text.endswith("one\ntwo\nthree")


def test_run_apt_raises_with_the_log(tmp_path: Path) -> None:
    log = tmp_path / "apt.log"
    with pytest.raises(GpubundleError) as caught:
        run_apt(["sh", "-c", "echo 'E: broken'; exit 100"], "installing the packages", log)
    assert caught.value.message == "installing the packages failed (sh exit code 100): E: broken"
    assert caught.value.details[-1] == f"full output: {log}"


# A stand-in for the installer: runs a slow command detached, then waits for it. The
# command says it runs (argv[3]) before the caller is killed: a fixed sleep lost the race
# to a loaded machine, where the caller was killed before it had started the command.
INSTALLER = """
import sys
from pathlib import Path
from installer.runner import run_detached
run_detached(
    ["sh", "-c", "echo > " + sys.argv[3] + "; sleep 1; echo output after the kill; "
     "echo finished > " + sys.argv[2]],
    Path(sys.argv[1]),
)
"""


def test_a_killed_caller_leaves_the_detached_command_running_to_its_end(tmp_path: Path) -> None:
    """As a kill of the installer must leave apt and dpkg to finish: the caller's whole
    process group is killed (as Ctrl-C or a closed terminal signals it) and the command
    still writes output afterwards, which a pipe to the dead caller would not take."""
    marker, running = tmp_path / "marker", tmp_path / "running"
    caller = subprocess.Popen(
        [sys.executable, "-c", INSTALLER, str(tmp_path / "log"), str(marker), str(running)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not running.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert running.exists(), "the detached command never started"
    assert caller.poll() is None  # the caller still waits on it when it is killed
    os.killpg(caller.pid, signal.SIGKILL)
    caller.wait()
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "finished\n"
    assert (tmp_path / "log").read_text().endswith("output after the kill\n")
