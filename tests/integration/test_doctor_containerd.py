"""``gpubundle doctor`` on a host where install configured a REAL containerd, and that
containerd broken each way the doctor must see, each fix then shown to work.

The containerd is the test's own (tests.support.containerd: config, root, state and socket
under /tmp; the shared dockerd's containerd and /run/containerd are never touched),
configured, restarted and waited for through the containerd engine adapter exactly as
install's runtime and restart steps do, with the stand-in nvidia-ctk (whose
``--nvidia-runtime-path`` names a runtime binary in the test's directory: this host has
no /usr/bin/nvidia-container-runtime), and recorded in an install record under a private
root. The Docker CLI is pointed at a socket where nothing listens, so the shared dockerd
is never asked: the Docker checks must be skipped, not failed, because the record names
containerd. CRI-O is not packaged in Debian 12: its checks have unit tests only
(tests/unit/test_doctor_cri.py).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from installer import engines
from installer.cli import main
from installer.doctor import cri, run_doctor
from installer.doctor.checks import DoctorPaths
from installer.doctor.dockerfacts import process_start_time
from installer.engines import EngineAdapter, daemon
from installer.hostpaths import HostPaths
from installer.record import save_record
from tests.support.containerd import private_containerd, standin_ctk, stop_ours
from tests.support.records import base_record

pytestmark = [pytest.mark.integration, pytest.mark.root]

DOCKER_CHECKS = ("engine.installed", "engine.running", "engine.daemon-json",
                 "engine.nvidia-runtime", "engine.restarted", "engine.default-runtime")  # fmt: skip


@dataclass
class Host:
    config: Path
    root: Path
    runtime: Path  # the nvidia runtime's binary, as nvidia-ctk was told
    adapter: EngineAdapter

    def doctor(self) -> dict[str, Any]:
        return {f.check_id: f for f in run_doctor(DoctorPaths.on(HostPaths(self.root)))}

    def restart(self) -> None:
        facts = self.adapter.detect(HostPaths.system(), self.config)
        outcome = self.adapter.restart(facts, HostPaths.system())
        self.adapter.wait_ready(facts, outcome, 60)


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Host]:
    with private_containerd() as config:
        d = config.parent
        runtime = d / "nvidia-container-runtime"
        runtime.write_text('#!/bin/sh\nexec runc "$@"\n')
        runtime.chmod(0o755)
        standin_ctk(d / "bin", [f"--nvidia-runtime-path={runtime}"])
        monkeypatch.setenv("PATH", f"{d / 'bin'}:{os.environ['PATH']}")
        monkeypatch.setenv("DOCKER_HOST", f"unix://{d}/no-dockerd-here.sock")
        root = tmp_path / "root"
        # The record lives in the test root; the daemon is this machine's: its processes
        # are read where the host's /proc is.
        root.mkdir()
        (root / "proc").symlink_to("/proc")
        adapter = engines.adapter_for("containerd")
        # install's runtime step, then its restart step (installer/steps/runtime.py)
        change = adapter.configure(config, HostPaths(root).runtime_backups)
        this = Host(config, root, runtime, adapter)
        this.restart()
        record = base_record(
            runtime_change=change.as_dict(),
            steps_completed=("runtime", "restart"),
            finished_at="2025-01-01T00:01:00Z",
        )
        save_record(record, HostPaths(root).record)
        yield this
        adapter.undo(change)  # as uninstall does


def _status(found: dict[str, Any], prefix: str) -> dict[str, str]:
    return {cid: f.status for cid, f in found.items() if cid.startswith(prefix)}


def _until_after_start(config: Path) -> None:
    """Wait until the clock is past the daemon's start by more than the checks' slack."""
    pid = engines.adapter_for("containerd").detect(HostPaths.system(), config).pid
    started = process_start_time(Path("/proc"), pid)
    assert started is not None
    while time.time() < started + 3.5:
        time.sleep(0.2)


def test_doctor_json_on_an_installed_containerd(host: Host) -> None:
    begin = time.monotonic()
    result = CliRunner().invoke(main, ["doctor", "--json"], obj=HostPaths(host.root))
    seconds = time.monotonic() - begin
    document = json.loads(result.stdout)
    found = {f["check_id"]: f for f in document["findings"]}
    for cid in cri.check_ids(["containerd", "crio"]):
        assert cid in found, cid
    assert {cid: found[cid]["status"] for cid in cri.check_ids(["containerd"])} == {
        "containerd.installed": "ok",
        "containerd.running": "ok",
        "containerd.config": "ok",
        "containerd.nvidia-runtime": "ok",
        "containerd.runtime-binary": "ok",
        "containerd.restarted": "ok",
        "containerd.default-runtime": "ok",
        "containerd.cdi": "skipped",  # containerd 1.6 has no CDI; install does not ask for it
    }, json.dumps(found, indent=1)
    assert "`containerd --config" in " ".join(found["containerd.nvidia-runtime"]["evidence"])
    for cid in (*DOCKER_CHECKS, *cri.check_ids(["crio"])):
        assert found[cid]["status"] == "skipped", cid
        assert "the install record names containerd" in found[cid]["summary"], cid
    print(f"doctor --json: {seconds:.1f} s")


def test_doctor_collect_holds_the_recorded_config(host: Host, tmp_path: Path) -> None:
    """--collect: the containerd config the record names (here off the root: the test's
    own containerd), as the doctor read it."""
    target = tmp_path / "diag.tar.gz"
    argv = ["doctor", "--json", "--collect", str(target)]
    result = CliRunner().invoke(main, argv, obj=HostPaths(host.root))
    members = json.loads(result.stdout)["collected"]["members"]
    name = f"engines/{str(host.config).lstrip('/')}"
    assert name in members, members
    with tarfile.open(target) as tar:
        member = tar.extractfile(f"gpubundle-doctor/{name}")
        assert member is not None
        assert member.read().decode() == host.config.read_text()


def test_doctor_reports_each_break_with_a_fix_that_works(host: Host) -> None:
    assert set(_status(host.doctor(), "containerd.").values()) == {"ok", "skipped"}
    config, original = host.config, host.config.read_text()

    # 1. the nvidia runtime's tables removed by hand
    _until_after_start(config)
    kept, skipping = [], False
    for line in original.splitlines(keepends=True):
        if line.startswith("["):
            skipping = "runtimes.nvidia" in line
        if not skipping:
            kept.append(line)
    config.write_text("".join(kept))
    found = host.doctor()
    assert found["containerd.nvidia-runtime"].status == "failure"
    assert found["containerd.runtime-binary"].status == "skipped"
    assert found["containerd.restarted"].status == "warning"  # changed since its start
    configure = found["containerd.nvidia-runtime"].fix[0]
    assert configure == f"nvidia-ctk runtime configure --runtime=containerd --config={config}"
    assert found["containerd.nvidia-runtime"].fix[1].startswith("kill ")
    subprocess.run(shlex.split(configure), check=True, capture_output=True)  # the fix, as printed
    found = host.doctor()
    assert found["containerd.nvidia-runtime"].status == "ok"
    assert found["containerd.restarted"].status == "failure"  # not live until restarted
    host.restart()
    assert set(_status(host.doctor(), "containerd.").values()) == {"ok", "skipped"}

    # 2. a config version that puts the runtime where containerd does not read it
    _until_after_start(config)
    config.write_text(re.sub(r"(?m)^version = 2\n", "", config.read_text()))
    found = host.doctor()["containerd.nvidia-runtime"]
    assert found.status == "failure" and "does not read" in found.summary, found
    assert any('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]' in e
               for e in found.evidence)  # fmt: skip
    assert found.fix[0].startswith(f"sed -i '1i version = 2' {config}")
    subprocess.run(shlex.split(found.fix[0], comments=True), check=True)  # the fix, as printed
    host.restart()
    assert set(_status(host.doctor(), "containerd.").values()) == {"ok", "skipped"}

    # 3. the runtime's binary gone
    host.runtime.unlink()
    found = host.doctor()["containerd.runtime-binary"]
    assert found.status == "failure" and str(host.runtime) in found.summary
    assert "nvidia-container-toolkit-base_*.deb" in found.fix[0]
    host.runtime.write_text('#!/bin/sh\nexec runc "$@"\n')
    host.runtime.chmod(0o755)

    # 4. the config changed after the daemon started
    _until_after_start(config)
    with config.open("a") as handle:
        handle.write("# edited after the start\n")
    found = host.doctor()["containerd.restarted"]
    assert found.status == "failure" and "changed after containerd started" in found.summary
    pid = engines.adapter_for("containerd").detect(HostPaths.system(), config).pid
    assert found.fix == [
        f"kill {pid} && nohup containerd --config {config} >>/var/log/containerd.log 2>&1 &  "
        "# no init system runs containerd here"
    ]
    host.restart()
    assert host.doctor()["containerd.restarted"].status == "ok"

    # 5. containerd stopped
    stop_ours(config)
    found = host.doctor()
    assert found["containerd.running"].status == "failure"
    assert found["containerd.running"].fix[0].startswith(f"nohup containerd --config {config} ")
    assert found["containerd.restarted"].status == "skipped"
    daemon.start_detached(["containerd", "--config", str(config)], config.parent / "log",
                          log_name="containerd.log")  # fmt: skip
    host.adapter.wait_ready(
        host.adapter.detect(HostPaths.system(), config), daemon.RestartOutcome("direct", 0, ""), 60
    )
    assert set(_status(host.doctor(), "containerd.").values()) == {"ok", "skipped"}
