"""The install's runtime step for containerd: write-ahead record with the file's kind,
the configured file, a killed run's pending change undone, and uninstall from the record.

nvidia-ctk is the test world's stand-in (tests/support/runtimeconfigs.py), Python 3.11+.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from installer import runtime_intent, runtime_toml
from installer.hostpaths import HostPaths
from installer.installplan import RUNTIME
from installer.record import InstallRecord
from installer.steps import runtime as runtime_steps
from installer.uninstallplan import HostNow, plan_uninstall
from tests.support.records import base_record
from tests.support.runtimeconfigs import CONTAINERD_V2, install_standin_ctk
from tests.support.steps import step_runner

pytest.importorskip("tomllib", reason="the stand-in nvidia-ctk needs Python 3.11+")


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """containerd's config.toml under the test host's root (``HostPaths.cri_config``)."""
    path = HostPaths(tmp_path / "host").cri_config("containerd")
    path.parent.mkdir(parents=True)
    path.write_text(CONTAINERD_V2)
    install_standin_ctk(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/nonexistent:{Path(sys.executable).parent}")
    return path


BACKUPS = "/var/backups/gpubundle/20260101T000000Z"


def configure(config: Path, record: InstallRecord) -> tuple[InstallRecord, str]:
    """The runtime step's body for --runtime containerd, the host's paths under tmp."""
    ctx = step_runner(root(config), runtime="containerd").ctx
    return runtime_steps.configure(ctx, record)


def root(config: Path) -> Path:
    return config.parents[2]  # ROOT/etc/containerd/config.toml


def test_runtime_step_records_the_toml_change(config: Path) -> None:
    record, detail = configure(config, base_record())
    change = record.runtime_change or {}
    assert change["kind"] == "containerd-toml" and change["path"] == str(config)
    assert detail == f"{config} updated"
    assert runtime_toml.is_configured_text("containerd", config.read_text())
    assert Path(change["backup_path"]).read_text() == CONTAINERD_V2
    # uninstall from this record restores the original and restarts containerd
    host = HostNow(
        daemon_json=config.read_bytes(),
        daemon_backup=Path(change["backup_path"]).read_bytes(),
        engine_running=True,
    )
    plan = plan_uninstall(record, host, backup_dir=BACKUPS)
    assert [a.kind for a in plan.actions][:2] == ["write-config", "restart-engine"]


def test_killed_run_pending_change_is_undone_then_redone(config: Path) -> None:
    intent = runtime_intent.intended_runtime_change(
        config, HostPaths(root(config)).runtime_backups, "containerd-toml"
    )
    assert intent is not None and intent["kind"] == "containerd-toml"
    config.write_text("half written by a killed nvidia-ctk [")
    killed: InstallRecord = base_record(runtime_change=intent, in_progress=RUNTIME)
    record, _ = configure(config, killed)
    assert not record.runtime_pending
    assert (record.runtime_change or {})["sha256_before"] == intent["sha256_before"]
    assert "oom_score = -500" in config.read_text()
    assert (
        runtime_intent.intended_runtime_change(
            config, HostPaths(root(config)).runtime_backups, "containerd-toml"
        )
        is None
    )
