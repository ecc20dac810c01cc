"""The NVIDIA runtime in a REAL, private containerd, configured with the stand-in nvidia-ctk.

The test starts its own containerd (config, root, state and socket in a temporary
directory; its CRI plugin serves only 127.0.0.1 and sets up no pod), configures it through
``installer.runtime_toml``, restarts it through ``installer.criengine`` (no init system
here: it stops the daemon by pid and starts it again with its command line) and asks
containerd itself (``config dump``) what it reads. The shared dockerd's containerd
(/var/run/docker/containerd) and /run/containerd are never touched. CRI-O is not packaged
for Debian 12: it is covered by the unit tier only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer import criengine, engine
from installer.engines import daemon
from installer.errors import GpubundleError
from installer.hostpaths import HostPaths
from installer.runtime_config import rollback_runtime
from installer.runtime_toml import configure_toml_runtime
from tests.support.standin_nvidia import STANDIN_BIN

pytestmark = [pytest.mark.integration, pytest.mark.root]

HOST = HostPaths.system()  # the machine: its /proc, its init scripts
INIT_SCRIPT = HOST.init_script("containerd")
USER_KEYS = (
    'disabled_plugins = ["io.containerd.snapshotter.v1.zfs"]',
    '"io.containerd.timeout.shim.shutdown" = "4s"',
    "SystemdCgroup = false",
)


def _config(d: Path) -> str:
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


@pytest.fixture
def private_containerd(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root to run containerd")
    for tool in ("containerd", "ctr"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (it comes with docker.io)")
    if engine.is_systemd() or INIT_SCRIPT.exists():
        pytest.skip("an init system manages containerd here; a restart would hit the host's")
    # A short path: unix socket paths are limited to 107 bytes.
    d = Path(tempfile.mkdtemp(prefix="gb-ctd-", dir="/tmp"))
    config = d / "config.toml"
    config.write_text(_config(d))
    bindir = d / "bin"
    bindir.mkdir()
    real = bindir / "standin.py"
    real.write_text((STANDIN_BIN / "nvidia_ctk.py").read_text().replace("@VERSION@", "1.17.8"))
    (bindir / "nvidia-ctk").write_text(
        f"#!{sys.executable}\nimport subprocess, sys\n"
        f"sys.exit(subprocess.call([{sys.executable!r}, {str(real)!r}, *sys.argv[1:]]))\n"
    )
    (bindir / "nvidia-ctk").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    first = daemon.start_detached(
        ["containerd", "--config", str(config)], d / "log", log_name="containerd.log"
    )
    try:
        yield config
    finally:
        for _ in range(3):  # ours only: found by its own config file
            pid, _argv = criengine.find_daemon(
                "containerd", config, HOST.proc, HOST.cri_config("containerd")
            )
            if not pid:
                break
            daemon.stop_process(pid, 30, "containerd")
        daemon.stop_process(first.pid, 30, "containerd")
        shutil.rmtree(d, ignore_errors=True)


def _dump(config: Path) -> str:
    return subprocess.run(
        ["containerd", "--config", str(config), "config", "dump"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def test_configure_restart_and_rollback(private_containerd: Path) -> None:
    config = private_containerd
    original = config.read_bytes()
    facts = criengine.detect("containerd", HOST, config)
    assert facts.socket == str(config.parent / "containerd.sock")
    facts = criengine.detect("containerd", HOST, config)
    version = criengine.wait_until_ready(facts, engine.RestartOutcome("direct", 0, ""), 30)
    facts = criengine.detect("containerd", HOST, config)
    assert facts.running and facts.pid and version

    change = configure_toml_runtime("containerd", config, config.parent / "backup")
    outcome = criengine.restart(facts, config.parent / "log", init_script=INIT_SCRIPT)
    assert outcome.method == "direct" and outcome.pid != facts.pid
    assert criengine.wait_until_ready(facts, outcome, 60)

    dump = _dump(config)
    assert '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]' in dump
    assert 'BinaryName = "/usr/bin/nvidia-container-runtime"' in dump
    for key in USER_KEYS:
        assert key in dump, key
    after = criengine.detect("containerd", HOST, config)
    assert after.pid == outcome.pid and after.argv == facts.argv  # started the way it ran

    rollback_runtime(change)
    assert config.read_bytes() == original
    again = criengine.restart(after, config.parent / "log", init_script=INIT_SCRIPT)
    assert criengine.wait_until_ready(after, again, 60)
    assert "runtimes.nvidia]" not in _dump(config)


def test_a_config_containerd_would_not_load_it_from_is_refused_and_restored(
    private_containerd: Path,
) -> None:
    config = private_containerd
    text = config.read_text().replace(
        'disabled_plugins = ["io.containerd.snapshotter.v1.zfs"]',
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    )
    config.write_text(text)
    with pytest.raises(GpubundleError, match="did not configure") as caught:
        configure_toml_runtime("containerd", config, config.parent / "backup")
    assert "disabled_plugins" in " ".join(caught.value.details)
    assert config.read_text() == text
