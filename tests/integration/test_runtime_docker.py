"""The NVIDIA runtime in the real dockerd, configured with the stand-in nvidia-ctk.

These tests restart the shared dockerd that scripts/services.sh started (it has no
init system here, so engine.restart_engine stops and starts dockerd itself, with its
own arguments and environment). The module fixture snapshots /etc/docker/daemon.json
and puts it back, restarting once more, whatever happens. The runtime and restart steps
run as install runs them (``installsteps.StepRunner`` through the Docker engine
adapter), with the record and backups kept in the test's directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer import containers, engine, engines, installsteps, runtime_intent
from installer.errors import GpubundleError
from installer.hostpaths import HostPaths
from installer.installplan import RESTART, RUNTIME, InstallPlan, Step
from installer.steps import runtime as runtime_steps
from tests.support.docker_env import require_docker
from tests.support.records import SHA, base_record
from tests.support.standin_nvidia import STANDIN_BIN
from tests.support.steps import step_runner

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.root]

LOG_DIR = Path("/var/log/gpubundle-ci")  # where scripts/services.sh logs dockerd too
USER_SETTINGS = {
    "log-driver": "json-file",
    "log-opts": {"max-size": "10m"},
    "features": {"buildkit": True},
    "registry-mirrors": ["http://127.0.0.1:5999/"],  # only used for Docker Hub pulls: none here
}
INVALID_KEY = "gpubundle-test-no-such-directive"


def _restart() -> None:
    host = HostPaths.system()
    facts = engine.detect_engine(host)
    engine.wait_until_ready(
        90,
        engine.restart_engine(
            facts, LOG_DIR, sysv_script=host.docker_sysv_script, proc_dir=host.proc
        ),
    )


@pytest.fixture(scope="module")
def daemon_json() -> Iterator[Path]:
    require_docker()
    facts = engine.detect_engine(HostPaths.system())
    if facts.systemd or not facts.pid:
        pytest.skip(f"needs the directly started dockerd of scripts/services.sh (facts: {facts})")
    path = facts.daemon_json
    before = path.read_bytes() if path.exists() else None
    try:
        yield path
    finally:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(before)
        _restart()


def _install_standin(bindir: Path, *, corrupt: bool = False) -> None:
    """The test world's stand-in nvidia-ctk on PATH; ``corrupt`` adds a key dockerd refuses."""
    bindir.mkdir(exist_ok=True)
    real = bindir / "nvidia_ctk_standin.py"
    real.write_text((STANDIN_BIN / "nvidia_ctk.py").read_text().replace("@VERSION@", "1.17.8"))
    wrapper = bindir / "nvidia-ctk"
    extra = ""
    if corrupt:
        extra = (
            "import json\n"
            "p = [a.split('=', 1)[1] for a in sys.argv[1:] if a.startswith('--config=')][0]\n"
            f"c = json.load(open(p)); c[{INVALID_KEY!r}] = True\n"
            "open(p, 'w').write(json.dumps(c))\n"
        )
    wrapper.write_text(
        f"#!{sys.executable}\nimport subprocess, sys\n"
        f"rc = subprocess.call([{sys.executable!r}, {str(real)!r}, *sys.argv[1:]])\n"
        f"{extra}sys.exit(rc)\n"
    )
    wrapper.chmod(0o755)


def _docker_info(field: str) -> object:
    out = subprocess.run(["docker", "info", "--format", f"{{{{json .{field}}}}}"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return json.loads(out)


@pytest.fixture
def steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> installsteps.StepRunner:
    """Install's step runner for --runtime docker; record and backups under tmp, and the
    dockerd it starts logging where scripts/services.sh's does. The root's /proc, /etc
    and /var/run are the machine's: the shared dockerd, its daemon.json, its init script."""
    root = tmp_path / "host"
    HostPaths(root).log_dir.parent.mkdir(parents=True)
    HostPaths(root).log_dir.symlink_to(LOG_DIR)
    for shared in ("/proc", "/etc", "/var/run"):
        HostPaths(root).under(shared).symlink_to(shared)
    monkeypatch.setattr(installsteps, "installed_versions", lambda *a, **k: {})
    return step_runner(root)


def test_configure_keeps_user_settings_and_docker_lists_nvidia(
    daemon_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    steps: installsteps.StepRunner,
) -> None:  # fmt: skip
    _install_standin(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    daemon_json.parent.mkdir(parents=True, exist_ok=True)
    daemon_json.write_text(json.dumps(USER_SETTINGS, indent=2))
    facts = engine.detect_engine(HostPaths.system())

    record, detail = runtime_steps.configure(steps.ctx, base_record())
    assert detail == f"{steps.ctx.host.docker_daemon_json} updated"  # daemon_json, in the root
    record, detail = runtime_steps.restart(steps.ctx, record)
    assert "; Docker " in detail and detail.endswith(" answers")

    written = json.loads(daemon_json.read_text())
    for key, value in USER_SETTINGS.items():
        assert written[key] == value
    assert written["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert "nvidia" in engine.docker_runtimes()
    assert _docker_info("LoggingDriver") == "json-file"
    assert (
        engine.detect_engine(HostPaths.system()).argv == facts.argv
    )  # started again the way it ran
    # Running the step again changes nothing (no restart follows a step already done).
    pid = engine.detect_engine(HostPaths.system()).pid
    again, detail = runtime_steps.configure(steps.ctx, record)
    assert detail == f"{steps.ctx.host.docker_daemon_json} already configured"
    assert (
        again.runtime_change == record.runtime_change
        and engine.detect_engine(HostPaths.system()).pid == pid
    )
    change = runtime_intent.runtime_change(record.runtime_change or {})
    engines.adapter_for("docker").undo(change)
    assert json.loads(daemon_json.read_text()) == USER_SETTINGS


def test_restart_failure_restores_the_backup_and_docker_comes_back(
    daemon_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    steps: installsteps.StepRunner,
) -> None:  # fmt: skip
    _install_standin(tmp_path / "bin", corrupt=True)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    user = json.dumps(USER_SETTINGS, indent=2).encode()
    daemon_json.write_bytes(user)
    facts = engine.detect_engine(HostPaths.system())
    env_before = engine.process_environ(facts.pid, HostPaths.system().proc)
    plan = InstallPlan(
        SHA, "1.17.8", {}, (Step(RUNTIME, "runtime", ()), Step(RESTART, "restart", ()))
    )

    with pytest.raises(GpubundleError) as err:
        steps.run(plan)  # the restart fails; install rolls the runtime step back

    assert err.value.message.startswith("install failed after configuring the container runtime")
    notes = err.value.details
    assert "the container runtime configuration was restored and the engine restarted" in notes
    assert any(INVALID_KEY in line for line in notes), notes
    assert daemon_json.read_bytes() == user
    assert engine.ping()
    assert "nvidia" not in engine.docker_runtimes()
    after = engine.detect_engine(
        HostPaths.system()
    )  # back with its own arguments and environment, not ours
    assert after.argv == facts.argv
    assert engine.process_environ(after.pid, HostPaths.system().proc) == env_before


def test_load_images_from_a_docker_save_archive(tmp_path: Path, test_images: list[str]) -> None:
    ref = test_images[0]
    subprocess.run(["docker", "pull", "-q", ref], check=True, capture_output=True)
    archive = tmp_path / "images.tar"
    subprocess.run(["docker", "save", "-o", str(archive), ref], check=True, capture_output=True)

    class Count:
        done = 0

        def advance(self, amount: int) -> None:
            self.done += amount

    progress = Count()
    assert ref in containers.load_images(archive, progress)
    assert progress.done == archive.stat().st_size


def test_gpu_proof_reports_failure_plainly_without_a_gpu(test_images: list[str]) -> None:
    if Path("/dev/nvidiactl").exists():
        pytest.skip("a real NVIDIA driver is present; test_gpu_host covers it")
    ref = test_images[-1]  # the CUDA stand-in image
    subprocess.run(["docker", "pull", "-q", ref], check=True, capture_output=True)
    support = containers.docker_support(containers.docker_info())  # Docker 20.10 here: no CDI
    result = containers.prove_gpus(ref, ["GPU-00000000-0000-0000-0000-000000000000"], support)
    assert not result.ok
    attempt = result.attempts[0]
    assert attempt.name == "gpus-all" and attempt.required
    assert attempt.exit_code != 0 and attempt.seen_uuids == ()
    assert attempt.error.startswith("the container did not run:")
    json.dumps(result.as_dict())
