"""A clean developer workstation in a debootstrap root, entered with chroot and the network.

``WORKSTATION_INCLUDE`` is what such a workstation has beyond minbase: python3, git, sudo
and ca-certificates (Ubuntu 24.04 desktop and server installs have them all; none of
them is something the README tells the user to install). ``prepare`` makes the root look
like an installed system of that release: its standard apt sources (Ubuntu: main,
restricted, universe and multiverse, for the release, -updates, -backports and -security),
this machine's DNS and local CA certificates (the site's network, as on any workstation
here), a hostname that resolves, and a user ``dev`` (uid 1000) in the sudo group who may
sudo without a password (the test stands in for the person typing it). apt answers yes
to its prompts (``APT::Get::Assume-Yes``: the person typing "y") and keeps what it
downloads, so that a cache bound on /var/cache/apt/archives serves the next run.

``entered`` mounts /proc, /sys and /dev (recursive binds made slaves, so that nothing
unmounted inside reaches this machine) and yields ``Mounts`` to bind cache directories
of this machine into the root with; afterwards it
stops every process whose root is the workstation, unmounts everything under it and
checks that nothing is left mounted (so that removing the root can never reach into a
bound cache). ``as_user`` runs a shell command as ``dev`` in a fresh login shell, the way
a person types it into a new terminal (``su - dev``: ~/.profile's PATH, $HOME, no
environment of this process).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.support.mounts import mounts_under

WORKSTATION_INCLUDE = ("ca-certificates", "git", "python3", "sudo")
USER = "dev"
UID = 1000
HOME = f"/home/{USER}"

# The sources file the Ubuntu 24.04 installer writes (security from the main archive here).
UBUNTU_SOURCES = """\
Types: deb
URIs: http://archive.ubuntu.com/ubuntu/
Suites: {codename} {codename}-updates {codename}-backports {codename}-security
Components: main restricted universe multiverse
Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg
"""
APT_CONF = """\
// Written by tests/support/workstation.py: the person at the keyboard says yes, and the
// downloaded .debs stay in /var/cache/apt/archives (a cache bound from the test machine).
APT::Get::Assume-Yes "true";
Binary::apt::APT::Keep-Downloaded-Packages "true";
"""
LOCAL_CAS = Path("/usr/local/share/ca-certificates")


def _chroot(root: Path, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chroot", str(root), *argv],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=True,
    )


def prepare(root: Path, codename: str) -> None:
    """Make the Ubuntu root ``root`` an installed workstation (see the module docstring);
    before ``entered`` (what it runs in the root needs no /proc), so that the user's home
    is made by useradd before anything is bound under it."""
    sources = root / "etc/apt/sources.list"
    sources.unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/ubuntu.sources").write_text(
        UBUNTU_SOURCES.format(codename=codename)
    )
    (root / "etc/apt/apt.conf.d/90workstation-test").write_text(APT_CONF)
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    hostname = os.uname().nodename
    (root / "etc/hostname").write_text(f"{hostname}\n")
    with (root / "etc/hosts").open("a") as hosts:
        hosts.write(f"127.0.0.1 localhost\n127.0.1.1 {hostname}\n")
    cas = list(LOCAL_CAS.glob("*.crt")) if LOCAL_CAS.is_dir() else []
    for ca in cas:
        shutil.copyfile(ca, root / "usr/local/share/ca-certificates" / ca.name)
    if cas:
        _chroot(root, "update-ca-certificates")
    _chroot(root, "useradd", "--create-home", "--shell", "/bin/bash", "--uid", str(UID),
            "--groups", "sudo", USER)  # fmt: skip
    sudoers = root / "etc/sudoers.d" / USER
    sudoers.write_text(f"{USER} ALL=(ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)


def processes_in(root: Path) -> list[int]:
    """Ids of the processes whose root directory is ``root`` (started in the workstation)."""
    target = str(root.resolve())
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "root") == target:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _stop_processes(root: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = processes_in(root)
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        for _ in range(50):
            if not processes_in(root):
                return
            time.sleep(0.1)


class Mounts:
    """The mounts made in a workstation root, unmounted by ``entered`` at its end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.points: list[Path] = []

    def mount(self, *argv: str, where: Path) -> None:
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", *argv, str(where)], check=True)
        self.points.append(where)

    def bind(self, source: Path, inside: str) -> None:
        """``source`` on this machine at ``inside`` (absolute) in the root."""
        self.mount("--bind", str(source.resolve()), where=self.root / inside.lstrip("/"))


@contextmanager
def entered(root: Path) -> Iterator[Mounts]:
    """/proc, /sys and /dev mounted in ``root`` for the duration, and whatever is bound with
    the ``Mounts`` yielded; every process in the root stopped and all unmounted afterwards,
    and checked to be."""
    mounts = Mounts(root)
    try:
        mounts.mount("-t", "proc", "proc", where=root / "proc")
        for name in ("sys", "dev"):
            mounts.mount("--rbind", f"/{name}", where=root / name)
            subprocess.run(["mount", "--make-rslave", str(root / name)], check=True)
        yield mounts
    finally:
        _stop_processes(root)
        for where in reversed(mounts.points):
            subprocess.run(["umount", "-R", "-l", str(where)], check=False)
        left = mounts_under(root)
        if left:
            raise AssertionError(f"still mounted under {root}: {left}; remove nothing there")


def remove(root: Path) -> None:
    """Delete the workstation root, only once nothing is mounted under it."""
    left = mounts_under(root)
    if left:
        raise AssertionError(f"still mounted under {root}: {left}; not removing it")
    shutil.rmtree(root)


def as_user(
    root: Path, command: str, cwd: str = HOME, env: Mapping[str, str] = {}, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    """``command`` typed by ``dev`` into a new terminal in ``cwd`` (``env`` exported first):
    stdout and stderr as one stream, in the order a person sees them. Never raises on a
    non-zero exit."""
    exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in env.items())
    script = f"{exports}cd {shlex.quote(cwd)} && {command}"
    return subprocess.run(
        ["chroot", str(root), "su", "-", USER, "-c", script],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "TERM": "dumb"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
