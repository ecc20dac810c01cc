"""GPU proof: plan, parsing and judging; CDI spec reading; docker load output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from installer import containers as c

H0 = "GPU-ba793fbf-0ad7-3ef2-2606-91ae096064e1"
H1 = "GPU-0c3e1a55-2b1e-4f7b-9a3c-1d2e3f4a5b6c"
SMI_L = f"GPU 0: NVIDIA H200 (UUID: {H0})\nGPU 1: NVIDIA H200 (UUID: {H1})\n"
CDI_YAML = """\
---
cdiVersion: 0.5.0
containerEdits:
  mounts:
  - containerPath: /usr/local/nvidia/lib64/libnvidia-ml.so.580.159.04
    hostPath: /usr/local/nvidia/lib64/libnvidia-ml.so.580.159.04
  - containerPath: /usr/local/nvidia/bin/nvidia-smi
    hostPath: /usr/local/nvidia/bin/nvidia-smi
    options: [ro, nosuid, nodev, bind]
kind: nvidia.com/gpu
"""
HOOK_REFUSAL = (
    "docker: Error response from daemon: failed to create task for container: "
    "nvidia-container-runtime: container requests GPUs (NVIDIA_VISIBLE_DEVICES=all) but this "
    "is a stand-in for tests, not NVIDIA's binary: no NVIDIA driver is available.\n"
)


def test_parse_gpu_list() -> None:
    assert c.parse_gpu_list(SMI_L) == (H0, H1)
    assert c.parse_gpu_list("No devices were found\n") == ()


def test_parse_loaded() -> None:
    out = "Loaded image: 127.0.0.1:5000/cuda:12.4\nLoaded image ID: sha256:abc\n"
    assert c.parse_loaded(out) == ["127.0.0.1:5000/cuda:12.4", "sha256:abc"]


def test_plan_single_gpu_without_cdi() -> None:
    plan = c.proof_plan("img", [H0], cdi=False)
    assert [name for name, _, _ in plan] == ["gpus-all"]
    assert plan[0][1] == ["docker", "run", "--rm", "--gpus", "all", "img", "nvidia-smi", "-L"]


def test_plan_multi_gpu_with_cdi_and_spec_path() -> None:
    plan = c.proof_plan("img", [H0, H1], cdi=True, smi="/usr/local/nvidia/bin/nvidia-smi")
    names = {name: (argv, expected) for name, argv, expected in plan}
    assert list(names) == ["gpus-all", "cdi-all", "gpus-1", "device-0"]
    assert "--device" in names["cdi-all"][0] and c.CDI_DEVICE_ALL in names["cdi-all"][0]
    assert names["device-0"][0][3:5] == ["--gpus", "device=0"]
    assert names["device-0"][1] == (H0,)
    assert names["gpus-all"][0][-2] == "/usr/local/nvidia/bin/nvidia-smi"


def test_judge() -> None:
    host = [H0, H1]
    assert c.judge("gpus-all", (H0, H1), host, (H1, H0), 0, SMI_L) == (True, "")
    ok, why = c.judge("gpus-all", (H0, H1), host, (H0,), 0, "")
    assert not ok and H1 in why
    assert c.judge("gpus-1", (), host, (H1,), 0, "")[0]
    assert not c.judge("gpus-1", (), host, (H0, H1), 0, "")[0]
    assert not c.judge("gpus-1", (), host, ("GPU-other",), 0, "")[0]
    ok, why = c.judge("gpus-all", (H0,), [H0], (), 125, HOOK_REFUSAL)
    assert not ok and "did not run" in why and "stand-in" in why


def test_cdi_spec_nvidia_smi_path() -> None:
    assert c.smi_path_from_cdi_spec(CDI_YAML) == "/usr/local/nvidia/bin/nvidia-smi"
    spec_json = json.dumps(
        {"containerEdits": {"mounts": [{"containerPath": "/usr/bin/nvidia-smi"}]}}
    )
    assert c.smi_path_from_cdi_spec(spec_json) == "/usr/bin/nvidia-smi"
    assert c.smi_path_from_cdi_spec("kind: nvidia.com/gpu\n") == ""


def _fake_docker(bindir: Path, stdout: str, stderr: str, rc: int) -> None:
    bindir.mkdir(exist_ok=True)
    (bindir / "out.txt").write_text(stdout)
    (bindir / "err.txt").write_text(stderr)
    script = bindir / "docker"
    script.write_text(f"#!/bin/sh\ncat {bindir}/out.txt\ncat {bindir}/err.txt >&2\nexit {rc}\n")
    script.chmod(0o755)


def test_prove_reports_runtime_refusal_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_docker(tmp_path, "", HOOK_REFUSAL, 125)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    result = c.prove_gpus("img", [H0], cdi=True)
    assert not result.ok
    assert [a.name for a in result.attempts] == ["gpus-all", "cdi-all"]
    assert all(a.exit_code == 125 and "stand-in" in a.error for a in result.attempts)
    doc = json.loads(json.dumps(result.as_dict()))
    assert doc["ok"] is False and doc["attempts"][0]["argv"][:3] == ["docker", "run", "--rm"]


def test_prove_passes_when_uuids_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_docker(tmp_path, f"GPU 0: NVIDIA H200 (UUID: {H0})\n", "", 0)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    result = c.prove_gpus("img", [H0], cdi=False)
    assert result.ok and result.attempts[0].seen_uuids == (H0,)


def test_no_host_gpu_is_never_a_pass() -> None:
    ok, why = c.judge("gpus-all", (), [], (), 0, "")
    assert not ok and "lists no GPU" in why
    ok, why = c.judge("gpus-all", (), [], (), 125, HOOK_REFUSAL)
    assert not ok and "did not run" in why  # the container's own words come first


def _result(image: str, passed: bool, error: str = "") -> c.ProofResult:
    argv = ("docker", "run", "--rm", "--gpus", "all", image, "nvidia-smi", "-L")
    attempt = c.ProofAttempt("gpus-all", argv, 0 if passed else 125, (H0,), (), passed, "", error)
    return c.ProofResult(image, (H0,), (attempt,))


def test_proof_failure_names_each_failed_image_and_attempt() -> None:
    verify, cuda = "gpubundle/verify:debian12-amd64", "127.0.0.1:5000/cuda:12"
    assert c.proof_failure([_result(verify, True), _result(cuda, True)], [H0]) is None
    err = c.proof_failure([_result(verify, True), _result(cuda, False, "refused")], [H0])
    assert err is not None and "did not see the host's GPUs" in err.message
    assert list(err.details) == [
        f"{cuda} gpus-all: refused (docker run --rm --gpus all {cuda} nvidia-smi -L)"
    ]
    assert "doctor" in err.hint


def test_proof_failure_without_host_gpus_says_why_plainly() -> None:
    refused = _result("gpubundle/verify:debian12-amd64", False, "the container did not run: x")
    err = c.proof_failure([refused], [], "no NVIDIA driver is loaded (no nvidia module)")
    assert err is not None
    assert err.message.startswith("could not prove that containers see GPUs")
    assert "lists no GPU" in err.message
    assert err.details[0] == "no NVIDIA driver is loaded (no nvidia module)"
    assert "the container did not run: x" in err.details[1]
    assert "--skip-gpu-checks" in err.hint
    nothing = c.proof_failure([], [H0])
    assert nothing is not None and "no image to run" in nothing.message


def test_prove_images_runs_each_image_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_docker(tmp_path, f"GPU 0: NVIDIA H200 (UUID: {H0})\n", "", 0)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    results = c.prove_images(["verify:1", "cuda:12"], [H0], cdi=False)
    assert [r.image for r in results] == ["verify:1", "cuda:12"]
    assert [r.attempts[0].argv[5] for r in results] == ["verify:1", "cuda:12"]
    assert all(r.ok for r in results) and c.proof_failure(results, [H0]) is None


def test_load_archives_loads_each_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []

    def load(archive: Path, progress: object = None) -> list[str]:
        calls.append(archive)
        return [archive.stem]

    monkeypatch.setattr(c, "load_images", load)
    archives = [Path("b/gpubundle-verify.tar"), Path("b/images.tar")]
    assert c.load_archives(archives) == ["gpubundle-verify", "images"]
    assert calls == archives
