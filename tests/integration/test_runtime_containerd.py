"""The NVIDIA runtime in a REAL, private containerd, configured with the stand-in nvidia-ctk.

The test starts its own containerd (tests.support.containerd: config, root, state and
socket in a temporary directory; its CRI plugin serves only 127.0.0.1 and sets up no pod),
configures it through ``installer.runtime_toml``, restarts it through ``installer.criengine`` (no init system
here: it stops the daemon by pid and starts it again with its command line) and asks
containerd itself (``config dump``) what it reads. The shared dockerd's containerd
(/var/run/docker/containerd) and /run/containerd are never touched. CRI-O is not packaged
for Debian 12: it is covered by the unit tier only.

Both containerd generations: 1.6/1.7 (Debian 12) read config version 2, with the CRI
runtimes under ``"io.containerd.grpc.v1.cri"``; 2.x (Ubuntu 24.04) reads version 2 by
migrating it and its own version 3, with them under ``"io.containerd.cri.v1.runtime"``,
and dumps version 3. nvidia-ctk writes the runtime in the table of the file's own
version; each test asserts what containerd loads under the name that containerd uses.
The version 3 file runs on containerd 2.x only (1.x refuses it): the fixture's versions
are those this machine's containerd reads (``config_versions_read``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer import criengine, engine
from installer.doctor.criconfig import CONTAINERD_CRI
from installer.errors import GpubundleError
from installer.hostpaths import HostPaths
from installer.runtime_config import rollback_runtime
from installer.runtime_toml import configure_toml_runtime
from tests.support.containerd import (
    USER_SETTINGS,
    config_versions_read,
    dump,
    dump_version,
    loaded_cri,
    skip_unless_private_containerd_can_run,
    standin_ctk,
    user_settings,
)
from tests.support.containerd import private_containerd as started

pytestmark = [pytest.mark.integration, pytest.mark.root]


HOST = HostPaths.system()  # the machine: its /proc, its init scripts
INIT_SCRIPT = HOST.init_script("containerd")


@pytest.fixture(params=config_versions_read(), ids=lambda v: f"config-v{v}")
def private_containerd(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Path]:
    with started(request.param) as config:
        standin_ctk(config.parent / "bin")
        monkeypatch.setenv("PATH", f"{config.parent / 'bin'}:{os.environ['PATH']}")
        yield config


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

    loaded = dump(config)
    cri = loaded_cri(loaded)
    assert cri.table == f'plugins."{CONTAINERD_CRI[dump_version()]}".containerd.runtimes'
    assert cri.nvidia and cri.binary == "/usr/bin/nvidia-container-runtime", cri
    assert user_settings(loaded) == USER_SETTINGS
    after = criengine.detect("containerd", HOST, config)
    assert after.pid == outcome.pid and after.argv == facts.argv  # started the way it ran

    rollback_runtime(change)
    assert config.read_bytes() == original
    again = criengine.restart(
        after, config.parent / "log", init_script=INIT_SCRIPT, proc_dir=HOST.proc
    )
    assert criengine.wait_until_ready(after, again, 60)
    restored = dump(config)
    assert not loaded_cri(restored).nvidia and user_settings(restored) == USER_SETTINGS


def test_a_config_containerd_would_not_load_it_from_is_refused_and_restored(
    private_containerd: Path,
) -> None:
    """The CRI runtime plugin switched off: 1.x's "io.containerd.grpc.v1.cri" (runtimes
    and service in one), 2.x's "io.containerd.cri.v1.runtime" (where the runtimes are)."""
    config = private_containerd
    text = config.read_text().replace(
        'disabled_plugins = ["io.containerd.snapshotter.v1.zfs"]',
        f'disabled_plugins = ["{CONTAINERD_CRI[dump_version()]}"]',
    )
    config.write_text(text)
    with pytest.raises(GpubundleError, match="did not configure") as caught:
        configure_toml_runtime("containerd", config, config.parent / "backup")
    assert "disabled_plugins" in " ".join(caught.value.details)
    assert config.read_text() == text


def test_no_config_file_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No config.toml (containerd's defaults): nvidia-ctk writes one of its own version,
    which this containerd loads; rollback removes it again."""
    skip_unless_private_containerd_can_run()
    standin_ctk(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    config = tmp_path / "etc" / "config.toml"
    config.parent.mkdir()
    change = configure_toml_runtime("containerd", config, tmp_path / "backup")
    cri = loaded_cri(dump(config))
    assert cri.table == f'plugins."{CONTAINERD_CRI[dump_version()]}".containerd.runtimes'
    assert cri.nvidia and cri.binary == "/usr/bin/nvidia-container-runtime", cri
    rollback_runtime(change)
    assert not config.exists()
