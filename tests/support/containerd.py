"""A REAL, private containerd for integration tests: its config, root, state and socket in
a directory of its own (its CRI plugin serves only 127.0.0.1 and sets up no pod), started
directly, and stopped afterwards by the pid of the one reading its config file. The
shared dockerd's containerd (/var/run/docker/containerd) and /run/containerd are never
touched. Also the stand-in nvidia-ctk on a PATH directory, as install runs it."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from installer import criengine
from installer.engines import daemon
from installer.hostpaths import HostPaths
from tests.support.standin_nvidia import STANDIN_BIN

HOST = HostPaths.system()  # the machine: its /proc, its init scripts

# Keys of the user's that nvidia-ctk must keep (as containerd's `config dump` shows them).
USER_KEYS = (
    'disabled_plugins = ["io.containerd.snapshotter.v1.zfs"]',
    '"io.containerd.timeout.shim.shutdown" = "4s"',
    "SystemdCgroup = false",
)


def config_text(d: Path) -> str:
    return f"""# private containerd for a gpubundle test
version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "{d}/containerd.sock"

[timeouts]
  "io.containerd.timeout.shim.shutdown" = "4s"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = false
"""


def skip_unless_private_containerd_can_run() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to run containerd")
    for tool in ("containerd", "ctr"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (it comes with docker.io)")
    if daemon.is_systemd(HOST.proc / "1" / "comm") or HOST.init_script("containerd").exists():
        pytest.skip("an init system manages containerd here; a restart would hit the host's")


def standin_ctk(bindir: Path, extra_args: Sequence[str] = ()) -> None:
    """``nvidia-ctk`` in ``bindir``: the stand-in, run with ``extra_args`` after the caller's
    (``--nvidia-runtime-path=PATH``, say: the real flag for where the runtime binary is)."""
    bindir.mkdir(exist_ok=True)
    real = bindir / "standin.py"
    real.write_text((STANDIN_BIN / "nvidia_ctk.py").read_text().replace("@VERSION@", "1.17.8"))
    (bindir / "nvidia-ctk").write_text(
        f"#!{sys.executable}\nimport subprocess, sys\n"
        f"sys.exit(subprocess.call([{sys.executable!r}, {str(real)!r}, *sys.argv[1:], "
        f"*{list(extra_args)!r}]))\n"
    )
    (bindir / "nvidia-ctk").chmod(0o755)


def stop_ours(config: Path) -> None:
    """Every containerd reading ``config`` (ours only: found by its own config file)."""
    for _ in range(3):
        pid, _argv = criengine.find_daemon(
            "containerd", config, HOST.proc, HOST.cri_config("containerd")
        )
        if not pid:
            return
        daemon.stop_process(pid, 30, "containerd")


@contextmanager
def private_containerd() -> Iterator[Path]:
    """A running private containerd; its config file (in its own directory under /tmp)."""
    skip_unless_private_containerd_can_run()
    # A short path: unix socket paths are limited to 107 bytes.
    d = Path(tempfile.mkdtemp(prefix="gb-ctd-", dir="/tmp"))
    config = d / "config.toml"
    config.write_text(config_text(d))
    first = daemon.start_detached(
        ["containerd", "--config", str(config)], d / "log", log_name="containerd.log"
    )
    try:
        yield config
    finally:
        stop_ours(config)
        daemon.stop_process(first.pid, 30, "containerd")
        shutil.rmtree(d, ignore_errors=True)
