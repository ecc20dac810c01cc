"""Engine checks on facts built from fixture files, plus the real readers they come from."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from installer.doctor.dockerfacts import (
    DaemonJson,
    DockerFacts,
    process_start_time,
    read_cdi_specs,
    read_daemon_json,
)
from installer.doctor.engine import (
    check_cdi,
    check_cdi_nvidia_smi,
    check_daemon_json,
    check_default_runtime,
    check_installed,
    check_nvidia_runtime,
    check_restarted,
    check_running,
)

INFO = {"ServerVersion": "27.5.1", "Runtimes": {"runc": {}, "io.containerd.runc.v2": {}}}
NVIDIA = {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}


def facts(tmp_path: Path, daemon: dict | None = None, **kw: object) -> DockerFacts:  # type: ignore[type-arg]
    path = tmp_path / "daemon.json"
    if daemon is not None:
        path.write_text(json.dumps(daemon))
    base: dict[str, object] = {
        "source": "docker.io",
        "cli": "/usr/bin/docker",
        "info": INFO,
        "daemon_json": read_daemon_json(path),
    }
    base.update(kw)
    return DockerFacts(**base)  # type: ignore[arg-type]


def test_snap_docker_fails(tmp_path: Path) -> None:
    finding = check_installed(facts(tmp_path, source="snap", cli="/snap/bin/docker"))
    assert finding.status == "failure"
    assert "snap remove docker" in finding.fix


def test_not_running(tmp_path: Path) -> None:
    finding = check_running(
        facts(tmp_path, info=None, info_error="Cannot connect to the Docker daemon")
    )
    assert finding.status == "failure"
    assert finding.evidence == ["Cannot connect to the Docker daemon"]
    assert finding.fix[0].startswith("systemctl start docker")


def test_invalid_daemon_json(tmp_path: Path) -> None:
    (tmp_path / "daemon.json").write_text('{"runtimes": ')
    f = DockerFacts("docker.io", daemon_json=read_daemon_json(tmp_path / "daemon.json"))
    finding = check_daemon_json(f)
    assert finding.status == "failure"
    assert "not valid JSON" in finding.evidence[0]


def test_runtime_missing_everywhere(tmp_path: Path) -> None:
    finding = check_nvidia_runtime(facts(tmp_path, {}))
    assert finding.status == "failure"
    assert finding.fix[0] == "nvidia-ctk runtime configure --runtime=docker"


def test_runtime_in_file_but_not_loaded_needs_restart(tmp_path: Path) -> None:
    finding = check_nvidia_runtime(facts(tmp_path, NVIDIA))
    assert finding.status == "failure"
    assert "not loaded" in finding.summary
    assert finding.fix[0].startswith("systemctl restart docker")


def test_runtime_loaded(tmp_path: Path) -> None:
    info = {**INFO, "Runtimes": {**INFO["Runtimes"], "nvidia": {}}}  # type: ignore[dict-item]
    good = facts(
        tmp_path,
        NVIDIA,
        info=info,
        runtime_binaries={"nvidia": "/usr/bin/nvidia-container-runtime"},
    )
    assert check_nvidia_runtime(good).status == "ok"
    gone = facts(tmp_path, NVIDIA, info=info, runtime_binaries={"nvidia": ""})
    assert "binary is missing" in check_nvidia_runtime(gone).summary


def test_not_restarted_since_toolkit(tmp_path: Path) -> None:
    now = time.time()
    f = facts(
        tmp_path,
        NVIDIA,
        dockerd_started_at=now - 3600,
        toolkit_installed_at=now - 60,
        hook_path="/usr/bin/nvidia-container-runtime-hook",
    )
    finding = check_restarted(f)
    assert finding.status == "failure"
    assert 'could not select device driver "" with capabilities: [[gpu]]' in finding.summary
    ok = facts(
        tmp_path,
        NVIDIA,
        dockerd_started_at=now + 10,
        toolkit_installed_at=now - 60,
        hook_path="/usr/bin/nvidia-container-runtime-hook",
    )
    assert check_restarted(ok).status == "ok"


def test_daemon_json_newer_than_dockerd_warns(tmp_path: Path) -> None:
    f = facts(tmp_path, NVIDIA, dockerd_started_at=time.time() - 3600, hook_path="/x")
    assert check_restarted(f).status == "warning"


def test_default_runtime(tmp_path: Path) -> None:
    undefined = check_default_runtime(facts(tmp_path, {"default-runtime": "nvidia"}))
    assert undefined.status == "failure"
    assert "not defined" in undefined.summary
    assert undefined.fix[0] == f'remove "default-runtime" from {tmp_path / "daemon.json"}'
    dangling = facts(
        tmp_path, {**NVIDIA, "default-runtime": "nvidia"}, runtime_binaries={"nvidia": ""}
    )
    assert "no longer exists" in check_default_runtime(dangling).summary
    assert check_default_runtime(facts(tmp_path, {"default-runtime": "runc"})).status == "ok"


SPEC = """---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
containerEdits:
  mounts:
  - hostPath: {lib}
    containerPath: {lib}
"""


def test_cdi_spec_current_and_stale(tmp_path: Path) -> None:
    cdi = tmp_path / "cdi"
    cdi.mkdir()
    lib = tmp_path / "libcuda.so.550.54.15"
    lib.write_text("")
    (cdi / "nvidia.yaml").write_text(SPEC.format(lib=lib))
    specs = read_cdi_specs((cdi,))
    assert [s.kind for s in specs] == ["nvidia.com/gpu"]
    assert specs[0].missing == ("/dev/nvidia0",) or os.path.exists("/dev/nvidia0")
    enabled = {**INFO, "CDISpecDirs": [str(cdi)]}
    f = facts(tmp_path, info=enabled, cdi_dirs=(cdi,), cdi_specs=specs, driver_version="570.86.15")
    finding = check_cdi(f)
    assert finding.status == "failure"
    assert any("generated for driver 550.54.15" in e for e in finding.evidence)
    assert finding.fix == [
        "sh gpubundle-installer.pyz install BUNDLE --trust FINGERPRINT"
        "  # generates the spec again for this driver",
        f"or: nvidia-ctk cdi generate --output={cdi / 'nvidia.yaml'}",
    ]


def test_cdi_enabled_without_spec(tmp_path: Path) -> None:
    f = facts(tmp_path, {"features": {"cdi": True}}, info={**INFO}, cdi_dirs=(tmp_path,))
    finding = check_cdi(f)
    assert finding.status == "warning"
    assert "nvidia-ctk cdi generate" in finding.fix[0]
    off = facts(tmp_path, {}, info={**INFO, "CDISpecDirs": []})
    assert check_cdi(off).status == "skipped"


def test_process_start_time_of_this_process() -> None:
    started = process_start_time(Path("/proc"), os.getpid())
    assert started is not None
    assert time.time() - 3600 < started <= time.time() + 1


def test_absent_daemon_json(tmp_path: Path) -> None:
    dj = read_daemon_json(tmp_path / "none.json")
    assert dj == DaemonJson(tmp_path / "none.json")
    assert check_daemon_json(DockerFacts("docker.io", daemon_json=dj)).status == "ok"


def test_without_docker_the_runtime_and_cdi_checks_skip(tmp_path: Path) -> None:
    """Seen on the real GPU host before install: no Docker, so nothing to register or enable."""
    f = facts(tmp_path, source="none", info=None)
    runtime, cdi = check_nvidia_runtime(f), check_cdi(f)
    assert (runtime.status, runtime.summary) == ("skipped", "Docker is not installed")
    assert (cdi.status, cdi.summary) == ("skipped", "Docker is not installed")


def _spec_with(tmp_path: Path, smi: str, mounted: str) -> DockerFacts:
    cdi = tmp_path / "cdi"
    cdi.mkdir(exist_ok=True)
    (cdi / "nvidia.yaml").write_text(
        f"kind: nvidia.com/gpu\ncontainerEdits:\n  mounts:\n"
        f"  - containerPath: {mounted}\n    hostPath: {smi}\n"
    )
    return facts(tmp_path, cdi_dirs=(cdi,), cdi_specs=read_cdi_specs((cdi,)))


def test_cdi_nvidia_smi_wrapper_fails_and_real_binary_passes(tmp_path: Path) -> None:
    wrapper = tmp_path / "wrapper-nvidia-smi"
    wrapper.write_text('#!/bin/sh\nexec /usr/local/nvidia/bin/nvidia-smi "$@"\n')
    finding = check_cdi_nvidia_smi(_spec_with(tmp_path, str(wrapper), "/usr/bin/nvidia-smi"))
    assert finding.status == "failure"
    assert "cannot run in a container" in finding.summary
    assert any("/usr/local/nvidia/bin/nvidia-smi, which it runs" in e for e in finding.evidence)
    assert finding.fix[0] == (
        f"PATH=/usr/local/nvidia/bin:$PATH nvidia-ctk cdi generate --output={tmp_path}/cdi/nvidia.yaml"
    )
    assert finding.fix[1].startswith("or: sh gpubundle-installer.pyz install BUNDLE")
    real = tmp_path / "nvidia-smi"
    real.write_bytes(Path("/bin/true").read_bytes())
    ok = check_cdi_nvidia_smi(_spec_with(tmp_path, str(real), "/usr/local/nvidia/bin/nvidia-smi"))
    assert ok.status == "ok" and "an ELF binary" in ok.evidence[0]
    assert check_cdi_nvidia_smi(facts(tmp_path)).status == "skipped"


def test_stale_spec_is_found_without_docker_too(tmp_path: Path) -> None:
    cdi = tmp_path / "cdi"
    cdi.mkdir()
    lib = tmp_path / "libcuda.so.550.54.15"
    lib.write_text("")
    (cdi / "nvidia.yaml").write_text(SPEC.format(lib=lib))
    specs = read_cdi_specs((cdi,))
    f = facts(tmp_path, source="none", info=None, cdi_specs=specs, driver_version="580.159.04")
    finding = check_cdi(f)
    assert finding.status == "failure" and "stale" in finding.summary
    current = facts(tmp_path, source="none", info=None, cdi_specs=specs, driver_version="550.54.15")
    assert check_cdi(current).status in ("ok", "failure")  # failure only for a missing /dev node


def test_docker_missing_fix_is_a_bundle_with_docker_not_apt(tmp_path: Path) -> None:
    finding = check_installed(facts(tmp_path, source="none", info=None))
    assert finding.status == "failure"
    assert not any("apt-get" in fix for fix in finding.fix)
    assert any("--with-docker" in fix for fix in finding.fix)
    assert any("sh gpubundle-installer.pyz install" in fix for fix in finding.fix)


def test_current_spec_on_a_docker_without_cdi_is_ok_not_a_daemon_json_fix(tmp_path: Path) -> None:
    """Docker 20.10 (Debian 12's) has no CDI: "features": {"cdi": true} would not help."""
    cdi = tmp_path / "cdi"
    cdi.mkdir()
    (cdi / "nvidia.yaml").write_text("kind: nvidia.com/gpu\n")
    old = facts(
        tmp_path, info={**INFO, "ServerVersion": "20.10.24"}, cdi_specs=read_cdi_specs((cdi,))
    )
    finding = check_cdi(old)
    assert finding.status == "ok" and "Docker 20.x has no CDI" in finding.summary
