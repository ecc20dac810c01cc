"""A REAL, private containerd for integration tests: its config, root, state and socket in
a directory of its own (its CRI plugin serves only 127.0.0.1 and sets up no pod), started
directly, and stopped afterwards by the pid of the one reading its config file. The
shared dockerd's containerd (/var/run/docker/containerd) and /run/containerd are never
touched. Also the stand-in nvidia-ctk on a PATH directory, as install runs it.

The config file is written in the version asked for: 2 (containerd 1.x's; containerd 2.x
migrates it when loading it) or 3 (containerd 2.x's own, which 1.x refuses), each with
its version's name for the CRI runtime plugin (``criconfig.CONTAINERD_CRI``). What
containerd loads is read from ``containerd config dump``, parsed: 1.x dumps version 2,
2.x version 3 under its own plugin names and with single-quoted strings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import tomllib

from installer import criengine
from installer.doctor.criconfig import CONTAINERD_CRI, CriConfig, containerd_config
from installer.engines import daemon
from installer.hostpaths import HostPaths
from tests.support.standin_nvidia import STANDIN_BIN

HOST = HostPaths.system()  # the machine: its /proc, its init scripts

# The user's settings that nvidia-ctk must keep, as containerd loads them (user_settings).
USER_SETTINGS = {
    "disabled_plugins": ["io.containerd.snapshotter.v1.zfs"],
    "shim shutdown timeout": "4s",
    "runc SystemdCgroup": False,
}


def config_text(d: Path, version: int = 2) -> str:
    cri = CONTAINERD_CRI[version]
    return f"""# private containerd for a gpubundle test
version = {version}
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "{d}/containerd.sock"

[timeouts]
  "io.containerd.timeout.shim.shutdown" = "4s"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."{cri}".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  [plugins."{cri}".containerd.runtimes.runc.options]
    SystemdCgroup = false
"""


def dump(config: Path) -> dict[str, Any]:
    """What containerd loads from ``config`` (``containerd config dump``), parsed."""
    out = subprocess.run(
        ["containerd", "--config", str(config), "config", "dump"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return tomllib.loads(out)


def dump_version() -> int:
    """The config version this containerd dumps (its own): 2 for 1.x, 3 for 2.x."""
    with tempfile.TemporaryDirectory(prefix="gb-ctd-") as d:
        empty = Path(d) / "config.toml"
        empty.write_text("")
        return int(dump(empty)["version"])


def loaded_cri(doc: dict[str, Any]) -> CriConfig:
    """The CRI runtime part of a dump, read under the plugin name of the dump's version."""
    assert doc["version"] in (2, 3), f"containerd dumps config version {doc['version']}"
    return containerd_config(doc)


def user_settings(doc: dict[str, Any]) -> dict[str, Any]:
    """USER_SETTINGS' keys as a dump holds them (None where missing)."""
    runtimes = doc.get("plugins", {}).get(CONTAINERD_CRI[doc["version"]], {})
    runc = runtimes.get("containerd", {}).get("runtimes", {}).get("runc", {})
    return {
        "disabled_plugins": doc.get("disabled_plugins"),
        "shim shutdown timeout": doc.get("timeouts", {}).get("io.containerd.timeout.shim.shutdown"),
        "runc SystemdCgroup": runc.get("options", {}).get("SystemdCgroup"),
    }


def config_versions_read() -> list[int]:
    """The config file versions this machine's containerd reads: [2] for 1.6/1.7, [2, 3]
    for 2.x. Tests are parametrized with it at collection, so a version 3 file is not a
    skip on containerd 1.x (CI fails skips) but no test there; [2] without containerd,
    whose tests then skip (or fail in CI) for the missing part."""
    if shutil.which("containerd") is None:
        return [2]
    return list(range(2, dump_version() + 1))


def skip_unless_config_version_known(version: int) -> None:
    if version > dump_version():
        pytest.skip(f"this containerd (config version {dump_version()}) cannot read a "
                    f"version {version} config: containerd 2.x reads it")  # fmt: skip


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
def private_containerd(version: int = 2) -> Iterator[Path]:
    """A running private containerd; its config file (in its own directory under /tmp), of
    config ``version``."""
    skip_unless_private_containerd_can_run()
    skip_unless_config_version_known(version)
    # A short path: unix socket paths are limited to 107 bytes.
    d = Path(tempfile.mkdtemp(prefix="gb-ctd-", dir="/tmp"))
    config = d / "config.toml"
    config.write_text(config_text(d, version))
    first = daemon.start_detached(
        ["containerd", "--config", str(config)], d / "log", log_name="containerd.log"
    )
    try:
        yield config
    finally:
        stop_ours(config)
        daemon.stop_process(first.pid, 30, "containerd")
        shutil.rmtree(d, ignore_errors=True)
