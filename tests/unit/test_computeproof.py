"""installer/computeproof.py: the compute probe's run planned from the visibility proof,
its report judged against the host's GPUs, and the failure the user reads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from installer import computeproof as cp

IMAGE = "gpubundle/verify:ubuntu24.04-amd64"
HOST = ("GPU-aaaaaaaa-0000-0000-0000-000000000001",)


def report(**extra: Any) -> str:
    gpu = {
        "index": 0, "uuid": HOST[0], "name": "NVIDIA H200", "passed": True,
        "buffer_bytes": 1 << 30, "kernel_ms": 0.61, "h2d_gbps": 25.1, "d2h_gbps": 26.3,
        "free_bytes": 140 << 30, "total_bytes": 143 << 30, "compute_capability": "9.0",
    }  # fmt: skip
    doc = {"probe_version": 1, "cuda_driver_version": "13.0", "driver_version": "580.159.04"}
    doc["gpus"] = [gpu | extra.pop("gpu", {})]
    return json.dumps(doc | extra)


def judge(stdout: str, code: int = 0, stderr: str = "") -> cp.ComputeResult:
    argv = cp.probe_argv(IMAGE, ["--gpus", "all"], "auto")
    return cp.judge_report(IMAGE, "gpus-all", argv, code, stdout, stderr, HOST)


@pytest.mark.parametrize(
    "options",
    [["--gpus", "all"], ["--device", "nvidia.com/gpu=all"],
     ["--runtime=nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=all"]],
)  # fmt: skip
def test_the_probe_reuses_the_options_that_made_the_image_see_the_gpus(
    options: list[str],
) -> None:
    visibility = ["docker", "run", "--rm", *options, IMAGE, "nvidia-smi", "-L"]
    assert cp.access_options(visibility, IMAGE) == options
    assert cp.probe_argv(IMAGE, options, "4G") == [
        "docker", "run", "--rm", *options, IMAGE, "gpubundle-compute-probe", "--json",
        "--size", "4G",
    ]  # fmt: skip


def test_a_passing_report_is_ok_with_its_figures() -> None:
    result = judge("some log line\n" + report())
    assert result.ok and result.cuda_driver_version == "13.0"
    [gpu] = result.gpus
    assert "1024 MiB checked, kernel 0.61 ms, H2D 25.1 GB/s" in gpu.evidence
    assert cp.compute_failure([result]) is None
    assert "GPU 0 " + HOST[0] in cp.compute_summary([result])
    assert result.as_dict()["ok"] is True


def test_out_of_memory_fails_with_the_drivers_name_and_advice() -> None:
    oom = {"passed": False, "failed_step": "allocate", "error": "CUDA_ERROR_OUT_OF_MEMORY",
           "advice": "pass a smaller --size (or auto)"}  # fmt: skip
    result = judge(report(gpu=oom), code=1)
    assert not result.ok
    failure = cp.compute_failure([result])
    assert failure is not None
    assert "CUDA_ERROR_OUT_OF_MEMORY" in failure.message
    assert "smaller --size" in (failure.hint or "")
    assert any("allocate" in d for d in failure.details)
    assert cp.compute_rows([result])[0][2] == "FAILED"


def test_a_gpu_the_container_did_not_see_fails() -> None:
    other = {"uuid": "GPU-bbbbbbbb-0000-0000-0000-000000000002"}
    result = judge(report(gpu=other))
    assert not result.ok and "missing" in result.error and HOST[0] in result.error


def test_no_report_is_explained_by_the_exit_code() -> None:
    result = judge("", code=127, stderr='exec: "gpubundle-compute-probe": not found')
    assert not result.ok
    assert "no compute probe" in result.error and "not found" in result.error
    failure = cp.compute_failure([result])
    assert failure is not None and "gpubundle-compute-probe" in " ".join(failure.details)


def test_a_missing_driver_library_is_the_probes_own_error() -> None:
    doc = {"probe_version": 1, "gpus": [], "error": "no-driver", "message": "libcuda.so.1 is not"}
    result = judge(json.dumps(doc), code=3)
    assert not result.ok and result.error.startswith("no-driver: libcuda.so.1")


@pytest.mark.parametrize("text", ["auto", "off", "OFF", "512M", "4G"])
def test_compute_size_accepts_what_the_probe_accepts(text: str) -> None:
    assert cp.checked_size(text) in (text.lower(), text)


@pytest.mark.parametrize("text", ["3x", "", "1.5G"])
def test_compute_size_refuses_the_rest(text: str) -> None:
    with pytest.raises(ValueError):
        cp.checked_size(text)


def test_doctor_reports_figures_or_the_drivers_error() -> None:
    from installer.doctor import compute

    passed = compute.ComputeFacts(IMAGE, "", judge(report()))
    finding = compute.check_compute(passed)
    assert finding.status == "ok" and "CUDA driver 13.0" in finding.summary
    assert any("H2D 25.1 GB/s" in e for e in finding.evidence)

    oom = {"passed": False, "failed_step": "allocate", "error": "CUDA_ERROR_OUT_OF_MEMORY",
           "advice": "pass a smaller --size (or auto)"}  # fmt: skip
    finding = compute.check_compute(compute.ComputeFacts(IMAGE, "", judge(report(gpu=oom), 1)))
    assert finding.status == "failure" and "CUDA_ERROR_OUT_OF_MEMORY" in finding.summary
    assert finding.fix == ["pass a smaller --size (or auto)"]

    finding = compute.check_compute(compute.ComputeFacts(skipped_reason="Docker is not running"))
    assert finding.status == "skipped" and "Docker is not running" in finding.summary


def test_doctor_gives_the_probe_gpus_through_cdi_only_where_docker_reads_a_spec() -> None:
    from installer.doctor import compute

    cdi_docker = {"ServerVersion": "28.1.1", "CDISpecDirs": ["/etc/cdi", "/var/run/cdi"]}
    assert compute.access(cdi_docker, True) == ("cdi-all", ["--device", "nvidia.com/gpu=all"])
    assert compute.access(cdi_docker, False) == ("gpus-all", ["--gpus", "all"])
    assert compute.access({"ServerVersion": "24.0.7"}, True) == ("gpus-all", ["--gpus", "all"])
