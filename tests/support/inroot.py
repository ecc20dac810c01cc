"""Run the shipped installer inside a distro root with no network, as users run it.

The root is a debootstrap tree (``tests.support.roots.debootstrap_root``). The
bundle and ``gpubundle-installer.pyz`` are copied to /tmp/gpubundle inside it and
run as ``unshare -n chroot ROOT python3 /tmp/gpubundle/gpubundle-installer.pyz …``:
the root's own python3, its own dpkg and apt, and no network namespace to reach
anything with. /proc is mounted for the run (apt and dpkg want it) and unmounted
by ``proc_mounted``. ``prime_apt`` makes a fresh debootstrap root look like a host
where apt has run before, so that its apt state can be compared byte for byte.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.roots import QEMU_ENV

DROP = "/tmp/gpubundle"
BUNDLE = f"{DROP}/bundle.tar.zst"
PYZ = f"{DROP}/gpubundle-installer.pyz"
# QEMU_ENV: how qemu-user runs a foreign-arch root's programs (tests/support/roots.py).
CHROOT_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
    **QEMU_ENV,
}


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


def in_root(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``argv`` run inside ``root`` offline (``unshare -n chroot``); fails the test if it fails."""
    proc = subprocess.run(
        ["unshare", "-n", "chroot", str(root), *argv],
        env=CHROOT_ENV,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, f"{' '.join(argv)} in {root}: {proc.stderr}\n{proc.stdout}"
    return proc


def prime_apt(root: Path, auto: str = "gpgv") -> None:
    """The root as on a host where apt has run: ``apt-get update`` done once (its lock,
    ``auxfiles/`` and ``partial/`` in /var/lib/apt/lists, as debootstrap leaves none) and an
    extended_states that marks ``auto`` as auto-installed. Offline: no source is read."""
    empty = root / DROP.lstrip("/") / "no-sources.list"
    empty.parent.mkdir(parents=True, exist_ok=True)
    empty.write_text("")
    in_root(
        root, "apt-get", "update", "-q", "-o", f"Dir::Etc::sourcelist={DROP}/no-sources.list",
        "-o", f"Dir::Etc::sourceparts={DROP}/no-sources.d",
    )  # fmt: skip
    in_root(root, "apt-mark", "auto", auto)
    assert f"Package: {auto}\n" in (root / "var/lib/apt/extended_states").read_text()


def gpubundle_argv(root: Path, *args: str) -> list[str]:
    return ["unshare", "-n", "chroot", str(root), "python3", PYZ, *args]


def gpubundle(
    root: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 900
) -> subprocess.CompletedProcess[str]:
    """``gpubundle ARGS`` run by the root's python3 from the shipped zipapp, offline."""
    return _run(gpubundle_argv(root, *args), env, timeout)


def gpubundle_sh(
    root: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 900
) -> subprocess.CompletedProcess[str]:
    """``sh gpubundle-installer.pyz ARGS`` inside the root, offline: the README's command,
    which runs the root's python3 when it is 3.8+ (with gpgv), else the one the pyz carries."""
    return _run(["unshare", "-n", "chroot", str(root), "sh", PYZ, *args], env, timeout)


def _run(
    argv: list[str], env: dict[str, str] | None, timeout: int
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
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
