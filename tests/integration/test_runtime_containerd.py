"""The NVIDIA runtime in a REAL, private containerd, configured with the stand-in nvidia-ctk.

The test starts its own containerd (tests.support.containerd: config, root, state and
socket in a temporary directory; its CRI plugin serves only 127.0.0.1 and sets up no pod),
configures it through ``installer.runtime_toml``, restarts it through ``installer.criengine`` (no init system
here: it stops the daemon by pid and starts it again with its command line) and asks
containerd itself (``config dump``) what it reads. The shared dockerd's containerd
(/var/run/docker/containerd) and /run/containerd are never touched. CRI-O is not packaged
for Debian 12: it is covered by the unit tier only.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer import criengine, engine
from installer.errors import GpubundleError
from installer.hostpaths import HostPaths
from installer.runtime_config import rollback_runtime
from installer.runtime_toml import configure_toml_runtime
from tests.support.containerd import USER_KEYS, standin_ctk
from tests.support.containerd import private_containerd as started

pytestmark = [pytest.mark.integration, pytest.mark.root]


HOST = HostPaths.system()  # the machine: its /proc, its init scripts
INIT_SCRIPT = HOST.init_script("containerd")


@pytest.fixture
def private_containerd(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with started() as config:
        standin_ctk(config.parent / "bin")
        monkeypatch.setenv("PATH", f"{config.parent / 'bin'}:{os.environ['PATH']}")
        yield config


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
    outcome = criengine.restart(
        facts, config.parent / "log", init_script=INIT_SCRIPT, proc_dir=HOST.proc
    )
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
    again = criengine.restart(
        after, config.parent / "log", init_script=INIT_SCRIPT, proc_dir=HOST.proc
    )
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
