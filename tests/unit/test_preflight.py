"""Preflight: pure checks over host facts, reported as a table and refused with exit 4."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from installer.cuda_compat import check_image_against_driver
from installer.errors import ExitCode, PreflightError
from installer.manifest import ImagePin
from installer.preflight import HostFacts, Options, run_preflight
from tests.support.hostfacts import GOOD, Driver, Engine
from tests.support.manifests import make_manifest


def compat(need: str, driver: str, cuda: str) -> Any:
    return check_image_against_driver(need, driver, cuda_version=cuda)


def statuses(facts: HostFacts, opts: Options | None = None, **manifest: Any) -> dict[str, str]:
    report = run_preflight(make_manifest(**manifest), facts, opts or Options(), compat)
    return {c.name: c.status for c in report.checks}


def test_a_fitting_host_passes_every_check() -> None:
    report = run_preflight(make_manifest(), GOOD, Options(), compat)
    assert report.failures == ()
    assert [row[0] for row in report.rows()] == [
        "root", "distro", "architecture", "disk", "container engine", "NVIDIA driver", "GPU 0", "toolkit",
        "dpkg lock", "dpkg state", "holds", "toolkit family",
    ]  # fmt: skip
    report.raise_if_failed()  # does not raise


def test_failures_are_all_reported_with_exit_code_4() -> None:
    bad = dataclasses.replace(GOOD, is_root=False, distro="debian12", arch="arm64", free_bytes=1)
    report = run_preflight(make_manifest(), bad, Options(), compat)
    assert {c.name for c in report.failures} == {"root", "distro", "architecture", "disk"}
    with pytest.raises(PreflightError) as caught:
        report.raise_if_failed()
    assert caught.value.code == ExitCode.PREFLIGHT
    assert "nothing was changed" in caught.value.message
    assert any("host is debian12, bundle is for ubuntu22.04" in d for d in caught.value.details)
    assert caught.value.hint == "run it with sudo"


def test_already_extracted_bundle_needs_no_space() -> None:
    facts = dataclasses.replace(GOOD, free_bytes=0, already_extracted=True)
    assert statuses(facts)["disk"] == "ok"


def test_snap_docker_cannot_use_the_toolkit() -> None:
    report = run_preflight(
        make_manifest(), dataclasses.replace(GOOD, engine=Engine("snap")), Options()
    )
    (failure,) = report.failures
    assert "snap" in failure.detail and "cannot use the NVIDIA Container Toolkit" in failure.detail


def test_missing_docker_is_fine_when_the_bundle_ships_it() -> None:
    facts = dataclasses.replace(GOOD, engine=Engine("none", ""))
    assert statuses(facts)["container engine"] == "fail"
    pkgs = {"nvidia-container-toolkit": "1.17.8-1", "docker.io": "24.0.7-0ubuntu2"}
    shipped = statuses(facts, packages=pkgs, requested=("nvidia-container-toolkit", "docker.io"))
    assert shipped["container engine"] == "ok"


def test_runtime_none_and_skip_gpu_checks_are_reported_as_skipped() -> None:
    facts = dataclasses.replace(GOOD, engine=None, driver=None)
    result = statuses(facts, Options(runtime="none", skip_gpu_checks=True))
    assert result["container engine"] == "skip"
    assert result["NVIDIA driver"] == "skip"
    assert "fail" not in result.values()


@pytest.mark.parametrize("runtime", ["containerd", "crio"])
def test_containerd_and_crio_must_be_installed(runtime: str) -> None:
    absent = dataclasses.replace(GOOD, engine=Engine("none", ""))
    (failure,) = run_preflight(make_manifest(), absent, Options(runtime=runtime)).failures
    assert failure.detail == f"{runtime} is not installed"
    assert "--runtime none" in failure.hint
    present = dataclasses.replace(GOOD, engine=Engine(runtime, "1.6.20"))
    assert statuses(present, Options(runtime=runtime))["container engine"] == "ok"


def test_no_driver_fails_with_a_hint_to_skip_gpu_checks() -> None:
    facts = dataclasses.replace(GOOD, driver=Driver(False, "", "", (), "nouveau is loaded"))
    report = run_preflight(make_manifest(), facts, Options())
    (failure,) = report.failures
    assert failure.detail == "nouveau is loaded"
    assert "--skip-gpu-checks" in failure.hint


def test_images_are_judged_against_the_driver() -> None:
    cuda13 = ImagePin("nvcr.io/nvidia/cuda:13.0.0-base-ubuntu22.04", "d", "i", "cuda>=13.0")
    cuda12 = ImagePin("nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04", "d", "i", "cuda>=12.4")
    result = statuses(GOOD, images=(cuda12, cuda13))
    assert result[f"image {cuda12.ref}"] == "ok"
    assert result[f"image {cuda13.ref}"] == "fail"


def test_an_image_without_cuda_requirement_is_skipped_with_a_note() -> None:
    verify = ImagePin("gpubundle/verify:ubuntu22.04-amd64", "d", "i", "", "images/x.tar")
    report = run_preflight(make_manifest(images=(verify,)), GOOD, Options(), compat)
    (check,) = [c for c in report.checks if c.name == f"image {verify.ref}"]
    assert check.status == "skip" and not report.failures
    assert "no NVIDIA_REQUIRE_CUDA" in check.detail and "nvidia-smi" in check.detail


@pytest.mark.parametrize(
    ("installed", "status", "word"),
    [(None, "ok", "will install"), ("1.17.8-1", "ok", "already"),
     ("1.16.2-1", "ok", "upgrade"), ("1.18.0-1", "fail", "newer")],
)  # fmt: skip
def test_toolkit_same_upgrade_downgrade(installed: str | None, status: str, word: str) -> None:
    report = run_preflight(
        make_manifest(), dataclasses.replace(GOOD, toolkit_installed=installed), Options()
    )
    (check,) = [c for c in report.checks if c.name == "toolkit"]
    assert check.status == status
    assert word in check.detail


def test_each_gpu_is_reported_with_its_uuid_and_the_source() -> None:
    report = run_preflight(make_manifest(), GOOD, Options(), compat)
    by_name = {c.name: c for c in report.checks}
    assert "read via pynvml" in by_name["NVIDIA driver"].detail
    assert by_name["GPU 0"].detail == (
        "NVIDIA H200, GPU-ba793fbf-0ad7-3ef2-2606-91ae096064e1, 143771 MiB"
    )
