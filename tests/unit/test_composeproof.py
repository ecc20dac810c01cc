"""installer/composeproof.py: the guide's compose file, and what `compose up` proved."""

from __future__ import annotations

import json
from pathlib import Path

from installer import composeproof as cpp

IMAGE = "gpubundle/verify:ubuntu24.04-amd64"
HOST = ("GPU-aaaaaaaa-0000-0000-0000-000000000001",)


def test_the_guides_reservation_is_written_as_the_guide_shows() -> None:
    doc = json.loads(cpp.compose_file(IMAGE, "nvidia", probe=False))
    service = doc["services"]["gpu-proof"]
    assert service["image"] == IMAGE and service["command"] == ["nvidia-smi", "-L"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]


def test_where_only_cdi_worked_the_service_asks_for_the_cdi_device() -> None:
    assert cpp.form_for("cdi-all") == "cdi" and cpp.form_for("gpus-all") == "nvidia"
    doc = json.loads(cpp.compose_file(IMAGE, "cdi", probe=True))
    service = doc["services"]["gpu-proof"]
    assert service["command"][:2] == ["gpubundle-compute-probe", "--json"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    # Compose refuses a device without capabilities ("missing property 'capabilities'",
    # seen with Compose 2.40.3 on the GPU host), even where the driver is named.
    assert devices == [
        {"driver": "cdi", "device_ids": ["nvidia.com/gpu=all"], "capabilities": ["gpu"]}
    ]


def test_up_stops_with_the_service_and_returns_its_exit_code() -> None:
    argv = cpp.up_argv(["docker", "compose"], Path("/t/compose.yaml"))
    assert argv[:6] == ["docker", "compose", "-f", "/t/compose.yaml", "-p", "gpubundle-proof"]
    assert "--abort-on-container-exit" in argv
    assert argv[argv.index("--exit-code-from") + 1] == "gpu-proof"


def test_the_service_seeing_the_hosts_gpus_passes() -> None:
    out = (
        "gpu-proof-1  | GPU 0: NVIDIA H200 (UUID: "
        + HOST[0]
        + ")\ngpu-proof-1 exited with code 0\n"
    )
    result = cpp.judge_compose("nvidia", ["x"], 0, out, HOST, probe=False)
    assert result.ok and result.seen_uuids == HOST and result.compute_ok is None


def test_the_services_compute_report_is_read_through_composes_prefix() -> None:
    report = {"probe_version": 1, "gpus": [{"uuid": HOST[0], "passed": True}]}
    out = f"gpu-proof-1  | {json.dumps(report)}\n"
    result = cpp.judge_compose("cdi", ["x"], 0, out, HOST, probe=True)
    assert result.ok and result.compute_ok is True
    report["gpus"][0]["passed"] = False
    result = cpp.judge_compose(
        "cdi", ["x"], 1, f"gpu-proof-1  | {json.dumps(report)}\n", HOST, True
    )
    assert not result.ok and "compute probe failed" in result.error


def test_no_nvidia_device_driver_is_explained() -> None:
    out = (
        'Error response from daemon: could not select device driver "nvidia" with '
        "capabilities: [[gpu]]\n"
    )
    result = cpp.judge_compose("nvidia", ["docker", "compose", "up"], 1, out, HOST, probe=False)
    assert not result.ok
    assert "nvidia-container-runtime-hook" in result.error
    failure = cpp.compose_failure(result)
    assert "docker compose up (exit 1)" in failure.details[0]


def test_a_service_that_saw_other_gpus_fails() -> None:
    out = "gpu-proof-1  | GPU 0: NVIDIA H200 (UUID: GPU-bbbbbbbb-0000-0000-0000-000000000002)\n"
    result = cpp.judge_compose("nvidia", ["x"], 0, out, HOST, probe=False)
    assert not result.ok and "the host has" in result.error


def test_terminal_escapes_compose_writes_are_dropped() -> None:
    out = (
        "\x1b[Kgpu-proof-1  | GPU 0: NVIDIA H100 (UUID: "
        + HOST[0]
        + ")\n\x1b[31m\x1b[1mAborting\x1b[0m\n"
    )
    result = cpp.judge_compose("cdi", ["x"], 0, out, HOST, probe=False)
    assert result.ok and "\x1b" not in result.output


def test_dockers_error_is_kept_whatever_compose_prints_after_it() -> None:
    chatter = "".join(f" Container gpubundle-proof-gpu-proof-1  Step {i}\n" for i in range(12))
    out = 'Error response from daemon: could not select device driver "nvidia"\n' + chatter
    result = cpp.judge_compose("nvidia", ["x"], 1, out, HOST, probe=False)
    assert cpp.NO_NVIDIA_DRIVER in result.output and "Step 11" in result.output


def test_a_hook_gone_since_docker_started_is_explained() -> None:
    out = 'Error response from daemon: exec: "nvidia-container-runtime-hook": executable file not found in $PATH\n'
    result = cpp.judge_compose("nvidia", ["x"], 1, out, HOST, probe=False)
    assert not result.ok and "restart Docker" in result.error
