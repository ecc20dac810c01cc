"""Hold dpkg inside a test root at a known point of its work, to kill it there.

Two holds, neither touching the packages under test (nor their maintainer scripts):

- ``unpack``: a ``dpkg-deb`` wrapper first on the root's PATH (/usr/sbin). dpkg marks a
  package half-installed in its journal, then reads the package's files from
  ``dpkg-deb --fsys-tarfile``; armed for a package, the wrapper waits before handing
  them over, so dpkg waits mid-unpack.
- ``configure``: a watcher package installed in the root with a file trigger on
  /usr/bin (``interest``: the packages that ship files there wait for it). dpkg runs the
  watcher's ``postinst triggered`` in the middle of the configure run (the watcher
  half-configured, the toolkit's packages awaiting it, all journaled); armed, it waits.

``arm(root, phase, package)`` sets a hold, ``wait_held`` waits until dpkg is held there,
``release`` lets it go on. ``kill_root(root)`` SIGKILLs every process whose root
directory is ``root``, the whole process tree of a run there: a power cut.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.support.inroot import in_root

DIR = "/tmp/gpubundle-test-dpkg"  # inside the root
WRAPPER = "/usr/sbin/dpkg-deb"  # before /usr/bin on the root's PATH
WATCHER = "gpubundle-test-trigger-watcher"

WRAPPER_SCRIPT = f"""#!/bin/sh
# gpubundle tests: hold dpkg before it gets the files of the package named in hold-unpack.
hold={DIR}/hold-unpack
if [ "$1" = --fsys-tarfile ] && [ -e "$hold" ]; then
  case "${{2##*/}}" in
    "$(cat "$hold")"_*)
      touch {DIR}/held-unpack
      while [ -e "$hold" ]; do sleep 0.1; done ;;
  esac
fi
exec /usr/bin/dpkg-deb "$@"
"""

WATCHER_POSTINST = f"""#!/bin/sh
# gpubundle tests: hold dpkg while it processes this package's trigger, when armed.
if [ "$1" = triggered ] && [ -e {DIR}/hold-configure ]; then
  touch {DIR}/held-configure
  while [ -e {DIR}/hold-configure ]; do sleep 0.1; done
fi
exit 0
"""


def _in(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def install_holds(root: Path) -> None:
    """The wrapper and the watcher package, unarmed (they change nothing then)."""
    _in(root, DIR).mkdir(parents=True, exist_ok=True)
    wrapper = _in(root, WRAPPER)
    wrapper.write_text(WRAPPER_SCRIPT)
    wrapper.chmod(0o755)
    tree = _in(root, f"/tmp/{WATCHER}")
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN/control").write_text(
        f"Package: {WATCHER}\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: gpubundle tests <tests@example.invalid>\n"
        "Description: holds dpkg in its trigger, for gpubundle's tests\n"
    )
    (tree / "DEBIAN/triggers").write_text("interest /usr/bin\n")
    postinst = tree / "DEBIAN/postinst"
    postinst.write_text(WATCHER_POSTINST)
    postinst.chmod(0o755)
    deb = f"/tmp/{WATCHER}.deb"
    in_root(root, "dpkg-deb", "--root-owner-group", "--build", f"/tmp/{WATCHER}", deb)
    in_root(root, "dpkg", "-i", deb)


def arm(root: Path, phase: str, package: str = "") -> None:
    """Hold the next dpkg: ``unpack`` of ``package``, or ``configure`` at the trigger."""
    _in(root, f"{DIR}/held-{phase}").unlink(missing_ok=True)
    _in(root, f"{DIR}/hold-{phase}").write_text(package)


def wait_held(
    root: Path, phase: str, run: subprocess.Popen[Any] | None = None, timeout_s: float = 120
) -> None:
    """Until dpkg is held at ``phase``; fails at once if ``run`` (what started it) ended."""
    held = _in(root, f"{DIR}/held-{phase}")
    deadline = time.monotonic() + timeout_s
    while not held.exists():
        if run is not None and run.poll() is not None:
            out, err = run.communicate()
            raise AssertionError(f"it ended ({run.returncode}) before dpkg was held:\n{err}\n{out}")
        if time.monotonic() > deadline:
            raise AssertionError(f"dpkg in {root} was not held at {phase} in {timeout_s} s")
        time.sleep(0.05)


def release(root: Path, phase: str) -> None:
    _in(root, f"{DIR}/hold-{phase}").unlink(missing_ok=True)


def root_processes(root: Path) -> list[int]:
    """Processes whose root directory is ``root`` (chrooted there), zombies left out."""
    target = str(root.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "root") != target:
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            found.append(int(entry.name))
    return found


def kill_root(root: Path, timeout_s: float = 30) -> list[int]:
    """SIGKILL everything running in ``root`` (a power cut); returns the pids killed."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout_s
    while pids := root_processes(root):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append(pid)
        if time.monotonic() > deadline:
            raise AssertionError(f"processes in {root} survived SIGKILL: {pids}")
        time.sleep(0.05)
    return killed
