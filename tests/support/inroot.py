"""Run the shipped installer inside a distro root with no network, as users run it.

The root is a debootstrap tree (``tests.support.roots.debootstrap_root``). The
bundle and ``gpubundle-installer.pyz`` are copied to /tmp/gpubundle inside it and
run as ``unshare -n chroot ROOT python3 /tmp/gpubundle/gpubundle-installer.pyz …``:
the root's own python3, its own dpkg and apt, and no network namespace to reach
anything with. /proc is mounted for the run (apt and dpkg want it) and unmounted
by ``proc_mounted``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DROP = "/tmp/gpubundle"
BUNDLE = f"{DROP}/bundle.tar.zst"
PYZ = f"{DROP}/gpubundle-installer.pyz"
CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}


def stage(root: Path, bundle: Path, pyz: Path) -> None:
    """Copy the bundle and the installer into the root, where ``gpubundle()`` runs them."""
    drop = root / DROP.lstrip("/")
    drop.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bundle, root / BUNDLE.lstrip("/"))
    shutil.copyfile(pyz, root / PYZ.lstrip("/"))


@contextmanager
def proc_mounted(root: Path) -> Iterator[Path]:
    """/proc mounted in ``root`` for the duration; unmounted (lazily) afterwards."""
    proc = root / "proc"
    proc.mkdir(exist_ok=True)
    if not proc.is_mount():
        subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
    try:
        yield root
    finally:
        if proc.is_mount():
            subprocess.run(["umount", "-l", str(proc)], check=False)


def gpubundle_argv(root: Path, *args: str) -> list[str]:
    return ["unshare", "-n", "chroot", str(root), "python3", PYZ, *args]


def gpubundle(
    root: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 900
) -> subprocess.CompletedProcess[str]:
    """``gpubundle ARGS`` run by the root's python3 from the shipped zipapp, offline."""
    return subprocess.run(
        gpubundle_argv(root, *args),
        env={**CHROOT_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def ok_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The ``--json`` document of a run that must have succeeded (else the run's output)."""
    assert proc.returncode == 0, (
        f"{' '.join(proc.args)} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}"
    )
    doc: dict[str, Any] = json.loads(proc.stdout)
    assert doc["ok"] is True, doc
    return doc
