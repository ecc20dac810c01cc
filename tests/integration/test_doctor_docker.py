"""Doctor against real conditions: a private dockerd (own socket, data-root, pidfile,
exec-root and daemon.json) that the tests stop, misconfigure and restart, so the
shared dockerd from scripts/services.sh is never touched."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer.doctor import run_doctor
from installer.doctor.checks import DoctorPaths, Finding
from installer.doctor.toolkit import check_config_toml, gather_toolkit
from installer.hostpaths import HostPaths
from tests.support.docker_env import require_registry
from tests.support.registry import BUSYBOX, CUDA_STANDIN, ensure_test_images

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.root]
HOST = HostPaths.system()  # the machine: its /proc, its dev, its dpkg database

RUN = Path("/run/gpubundle-test")


class PrivateDockerd:
    def __init__(self, base: Path, data_root: Path) -> None:
        self.base = base
        self.data_root = data_root
        self.daemon_json = base / "daemon.json"
        self.pidfile = base / "docker.pid"
        self.socket = base / "docker.sock"
        self.log = base / "dockerd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def argv(self) -> list[str]:
        return ["dockerd", "--host", self.host, "--data-root", str(self.data_root),
                "--exec-root", str(self.base / "exec"), "--pidfile", str(self.pidfile),
                "--config-file", str(self.daemon_json), "--bridge=none",
                "--iptables=false", "--ip6tables=false"]  # fmt: skip

    def start(self, wait: bool = True) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        if wait:
            self._wait_until(lambda: self.answers(), "dockerd did not answer")

    def answers(self) -> bool:
        env = {**os.environ, "DOCKER_HOST": self.host}
        return subprocess.run(["docker", "info"], env=env, capture_output=True,
                              check=False, timeout=20).returncode == 0  # fmt: skip

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc = None

    def exited(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def _wait_until(self, cond: object, message: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not cond():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise AssertionError(f"{message}; log:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.5)

    def paths(self, tmp_path: Path, images: tuple[str, ...] = ()) -> DoctorPaths:
        return DoctorPaths.on(HOST, daemon_json=self.daemon_json, docker_pidfile=self.pidfile,
                         docker_host=self.host, cdi_dirs=(tmp_path / "cdi",),
                         record=tmp_path / "state" / "install-record.json", images=images)  # fmt: skip


@pytest.fixture(scope="module")
def dockerd() -> Iterator[PrivateDockerd]:
    require_registry()
    if shutil.which("dockerd") is None:
        pytest.skip("dockerd is not installed")
    base = RUN / f"doctor-{os.getpid()}"
    base.mkdir(parents=True, exist_ok=True)
    data_root = Path("/var/tmp") / f"gpubundle-test-doctor-{os.getpid()}"
    daemon = PrivateDockerd(base, data_root)
    daemon.daemon_json.write_text("{}\n")
    daemon.start()
    env = {**os.environ, "DOCKER_HOST": daemon.host}
    for ref in ensure_test_images():
        subprocess.run(["docker", "pull", "-q", ref], env=env, check=True, capture_output=True)
    try:
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(data_root, ignore_errors=True)


def restart(d: PrivateDockerd, config: dict[str, object], wait: bool = True) -> None:
    d.stop()
    d.daemon_json.write_text(json.dumps(config))
    time.sleep(2.5)  # the restart check compares whole-second times
    d.start(wait=wait)


def finding(findings: list[Finding], check_id: str) -> Finding:
    return next(f for f in findings if f.check_id == check_id)


def test_missing_runtime_entry(dockerd: PrivateDockerd, tmp_path: Path) -> None:
    restart(dockerd, {})
    f = finding(run_doctor(dockerd.paths(tmp_path)), "engine.nvidia-runtime")
    assert f.status == "failure"
    assert f.summary == "nvidia runtime is not registered with Docker"
    assert f.fix[0] == "nvidia-ctk runtime configure --runtime=docker"
    assert "'runc'" in f.evidence[1]


def test_runtime_added_but_not_restarted(dockerd: PrivateDockerd, tmp_path: Path) -> None:
    restart(dockerd, {})
    time.sleep(2.5)
    nvidia = {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}
    dockerd.daemon_json.write_text(json.dumps(nvidia))
    findings = run_doctor(dockerd.paths(tmp_path))
    runtime = finding(findings, "engine.nvidia-runtime")
    assert runtime.status == "failure"
    assert "running daemon has not loaded it" in runtime.summary
    assert runtime.fix[0].startswith("systemctl restart docker")
    restarted = finding(findings, "engine.restarted")
    assert restarted.status == "warning"
    assert "changed after dockerd started" in restarted.summary


def test_stale_default_runtime_stops_dockerd(dockerd: PrivateDockerd, tmp_path: Path) -> None:
    restart(dockerd, {"default-runtime": "nvidia"}, wait=False)
    dockerd._wait_until(dockerd.exited, "dockerd started with an undefined default-runtime")
    findings = run_doctor(dockerd.paths(tmp_path))
    default = finding(findings, "engine.default-runtime")
    assert default.status == "failure"
    assert "not defined: dockerd will not start" in default.summary
    assert default.fix[0] == f'remove "default-runtime" from {dockerd.daemon_json}'
    assert finding(findings, "engine.running").status == "failure"
    restart(dockerd, {})
    assert finding(run_doctor(dockerd.paths(tmp_path)), "engine.default-runtime").status == "ok"


def test_stopped_dockerd(dockerd: PrivateDockerd, tmp_path: Path) -> None:
    dockerd.stop()
    try:
        f = finding(run_doctor(dockerd.paths(tmp_path)), "engine.running")
        assert f.status == "failure"
        assert f.summary == "the Docker daemon does not answer"
        assert f.fix[0].startswith("systemctl start docker")
    finally:
        dockerd.start()


def test_cdi_enabled_without_spec(dockerd: PrivateDockerd, tmp_path: Path) -> None:
    restart(dockerd, {"features": {"cdi": True}})
    (tmp_path / "cdi").mkdir()
    findings = run_doctor(dockerd.paths(tmp_path))
    f = finding(findings, "engine.cdi")
    assert f.status == "warning"
    major = int(finding(findings, "engine.installed").summary.split()[-1].split(".")[0])
    if major < 25:
        assert "has no CDI support" in f.summary
        assert f.fix[0].startswith("docker run --gpus all")
    else:
        assert "no NVIDIA CDI spec exists" in f.summary
        assert f.fix[0] == "nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"


def test_image_without_glibc(dockerd: PrivateDockerd, tmp_path: Path) -> None:
    restart(dockerd, {})
    findings = run_doctor(dockerd.paths(tmp_path, images=(BUSYBOX.ref, CUDA_STANDIN.ref)))
    static = finding(findings, f"images.nvidia-smi[{BUSYBOX.ref}]")
    assert static.status == "failure"
    assert "has no glibc" in static.summary
    assert finding(findings, f"images.nvidia-smi[{CUDA_STANDIN.ref}]").status == "ok"
    cuda = finding(findings, f"images.cuda[{CUDA_STANDIN.ref}]")
    assert cuda.status == ("skipped" if not Path("/dev/nvidiactl").exists() else cuda.status)


def test_config_toml_world_writable(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[nvidia-container-cli]\n")
    os.chown(config, 0, 0)
    os.chmod(config, 0o666)
    f = check_config_toml(gather_toolkit(DoctorPaths.on(HOST, config_toml=config)))
    assert f.status == "failure"
    assert f.summary == f"{config} is world-writable"
    assert f.fix == [f"chown root:root {config} && chmod 0644 {config}"]


def test_gpu_checks_skip_without_gpu(dockerd: PrivateDockerd, tmp_path: Path) -> None:
    if Path("/dev/nvidiactl").exists():
        pytest.skip("this host has an NVIDIA GPU; the gpu-marked tests cover it")
    findings = run_doctor(dockerd.paths(tmp_path))
    assert finding(findings, "driver.loaded").status == "failure"
    assert finding(findings, "driver.gpus").summary == "no NVIDIA driver is loaded"
    assert finding(findings, "gpu.memory").status == "skipped"
