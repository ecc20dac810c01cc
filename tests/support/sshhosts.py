"""Real hosts reachable over SSH, made of debootstrap roots: one network namespace each.

``ssh_fleet(specs, workdir)`` yields a ``Fleet`` of ``SshHost``: each a fresh copy of
the ``distro`` root with python3, gpgv and openssh-server (``SSH_INCLUDE``), in a network
namespace of its own joined to this machine by a veth pair (this side 10.B.N.1/30, the
host 10.B.N.2/30; no route anywhere else), running the root's own ``/usr/sbin/sshd``
inside it (``ip netns exec NS chroot ROOT sshd -D``) with the fleet's client key in
``/root/.ssh/authorized_keys``. Only the controller (this machine) reaches a host, and a
host reaches nothing: an air-gapped host as Ansible sees one.

Everything is undone on exit, after a failure too: the processes in each namespace
(found with ``ip netns pids``: only what this helper started lives there) are killed,
the namespace and its veth deleted, /proc unmounted. ``Fleet.inventory()`` writes an
Ansible inventory (YAML) for the fleet.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.rootfiles import INCLUDE
from tests.support.roots import debootstrap_root

SSH_INCLUDE = (*INCLUDE, "openssh-server", "openssh-sftp-server")
SSHD_OPTIONS = ("UsePAM=no", "PasswordAuthentication=no", "PermitRootLogin=prohibit-password",
                "KbdInteractiveAuthentication=no", "UseDNS=no")  # fmt: skip
SSH_OPTIONS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"


@dataclass(frozen=True)
class SshHost:
    name: str  # the inventory name
    distro: str
    root: Path
    address: str
    netns: str


@dataclass(frozen=True)
class Fleet:
    hosts: tuple[SshHost, ...]
    key: Path  # the client's private key

    def host(self, name: str) -> SshHost:
        return next(h for h in self.hosts if h.name == name)

    def inventory(
        self, path: Path, group: str, hostvars: Mapping[str, Mapping[str, Any]], **groupvars: Any
    ) -> Path:
        """An Ansible YAML inventory (JSON is YAML) of the fleet in ``group``."""
        hosts = {
            h.name: {
                "ansible_host": h.address,
                "ansible_user": "root",
                "ansible_python_interpreter": "/usr/bin/python3",
                "ansible_ssh_private_key_file": str(self.key),
                "ansible_ssh_common_args": SSH_OPTIONS,
                "ansible_ssh_pipelining": True,
                **hostvars.get(h.name, {}),
            }
            for h in self.hosts
        }
        doc = {"all": {"children": {group: {"hosts": hosts, "vars": groupvars}}}}
        path.write_text(json.dumps(doc, indent=1) + "\n")
        return path


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def subnet_octet() -> int:
    """The second octet of this run's 10.B.N.0/30 links, from the pid: runs side by side
    (other sessions on one machine) rarely share one, and the addresses are checked free."""
    used = _ip("-o", "-4", "addr").stdout
    for offset in range(50):
        octet = 200 + (os.getpid() + offset) % 50
        if f" 10.{octet}." not in used:
            return octet
    raise RuntimeError("no free 10.200-249.x.x range for the fleet's links")


def client_key(workdir: Path) -> Path:
    key = workdir / "id_ed25519"
    if not key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gpubundle-fleet", "-f", str(key)],
            check=True,
        )  # fmt: skip
    return key


def authorize(root: Path, public_key: str) -> None:
    ssh_dir = root / "root" / ".ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(public_key)
    (ssh_dir / "authorized_keys").chmod(0o600)
    (root / "run" / "sshd").mkdir(mode=0o755, parents=True, exist_ok=True)


def wait_for_port(address: str, port: int = 22, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=1) as conn:
                if conn.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def _kill_namespace(netns: str) -> None:
    """SIGKILL every process in ``netns`` (sshd and its sessions: started here), then wait."""
    for _ in range(50):
        pids = [int(p) for p in _ip("netns", "pids", netns, check=False).stdout.split()]
        if not pids:
            return
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


@contextmanager
def _host(
    name: str, distro: str, root: Path, index: int, octet: int, prefix: str, public_key: str,
    log: Path,
) -> Iterator[SshHost]:  # fmt: skip
    netns, here, there = f"{prefix}-{index}", f"{prefix}h{index}", f"{prefix}t{index}"
    address = f"10.{octet}.{index}.2"
    authorize(root, public_key)
    proc_dir = root / "proc"
    sshd: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(["mount", "-t", "proc", "proc", str(proc_dir)], check=True)
        _ip("netns", "add", netns)
        _ip("link", "add", here, "type", "veth", "peer", "name", there)
        _ip("link", "set", there, "netns", netns)
        _ip("addr", "add", f"10.{octet}.{index}.1/30", "dev", here)
        _ip("link", "set", here, "up")
        for args in (("addr", "add", f"{address}/30", "dev", there), ("link", "set", there, "up"),
                     ("link", "set", "lo", "up")):  # fmt: skip
            _ip("netns", "exec", netns, "ip", *args)
        argv = ["ip", "netns", "exec", netns, "chroot", str(root), "/usr/sbin/sshd", "-D", "-e",
                "-o", f"ListenAddress={address}"]  # fmt: skip
        for option in SSHD_OPTIONS:
            argv += ["-o", option]
        with log.open("ab") as out:
            sshd = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
            )  # fmt: skip
        wait_for_port(address)
        yield SshHost(name, distro, root, address, netns)
    finally:
        if sshd is not None:
            sshd.kill()
            sshd.wait(timeout=10)
        _kill_namespace(netns)
        _ip("netns", "del", netns, check=False)
        _ip("link", "del", here, check=False)  # gone with the namespace's end; to be sure
        if proc_dir.is_mount():
            subprocess.run(["umount", "-l", str(proc_dir)], check=False)


def unpack_roots(specs: Sequence[tuple[str, str]], workdir: Path) -> dict[str, Path]:
    """{name: a fresh root of its distro with SSH_INCLUDE} under ``workdir/hosts``."""
    return {
        name: debootstrap_root(distro, "minbase", SSH_INCLUDE, dest=workdir / "hosts" / name)
        for name, distro in specs
    }


@contextmanager
def ssh_fleet(
    specs: Sequence[tuple[str, str]], roots: Mapping[str, Path], workdir: Path
) -> Iterator[Fleet]:
    """The hosts named in ``specs`` ((name, distro) pairs), on ``roots``, up over SSH."""
    key = client_key(workdir)
    public = key.with_name(key.name + ".pub").read_text()
    octet, prefix = subnet_octet(), f"gbf{os.getpid() % 10000}"
    with ExitStack() as stack:
        hosts = tuple(
            stack.enter_context(
                _host(
                    name,
                    distro,
                    roots[name],
                    i,
                    octet,
                    prefix,
                    public,
                    workdir / f"sshd-{name}.log",
                )
            )
            for i, (name, distro) in enumerate(specs, start=1)
        )
        yield Fleet(hosts, key)
