"""The proof step when the CDI spec cannot be generated (seen on the GPU host with stand-ins).

It must still run the ``--gpus`` proof, and report both why CDI was not tried and
what the containers answered, never a pass the containers did not give.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from installer import containers, installsteps
from installer.console import Console
from installer.errors import GpubundleError
from installer.gpu import DriverFacts, GpuInfo
from installer.preflight import Options
from installer.record import InstallRecord
from tests.unit.test_installplan import VERIFY, make_manifest

UUID = "GPU-84ab8b38-911c-6f8b-2e46-221d9928d90d"
H200 = DriverFacts(
    True, "580.159.04", "13.0", (GpuInfo(0, "NVIDIA H200", UUID, 143771),), "pynvml", ""
)


def attempt(passed: bool) -> containers.ProofAttempt:
    return containers.ProofAttempt(
        "gpus-all", ("docker", "run", "--gpus", "all"), 0 if passed else 125, (UUID,),
        (UUID,) if passed else (), passed, "", "" if passed else "prestart hook failed",
    )  # fmt: skip


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    calls: dict[str, Any] = {}

    def cdi_fails() -> containers.CdiSpec:
        raise GpubundleError(
            "nvidia-ctk failed with exit code 1",
            details=["failed to generate CDI spec: stand-in for tests, not NVIDIA's binary"],
        )

    def prove(images: Sequence[str], uuids: Sequence[str], *, cdi: bool) -> list[Any]:
        calls["cdi"], calls["images"] = cdi, list(images)
        return [containers.ProofResult(images[0], tuple(uuids), (attempt(calls["passes"]),))]

    monkeypatch.setattr(installsteps, "read_driver_facts", lambda: H200)
    monkeypatch.setattr(containers, "cdi_enabled", lambda: True)
    monkeypatch.setattr(containers, "CDI_SPEC", tmp_path / "nvidia.yaml")
    monkeypatch.setattr(containers, "generate_cdi_spec", cdi_fails)
    monkeypatch.setattr(containers, "prove_images", prove)
    return calls


def runner() -> installsteps.StepRunner:
    return installsteps.StepRunner(
        Path("/nonexistent/b.tar.zst"), [], make_manifest(images=(VERIFY,)), "0" * 64,
        Path("/nonexistent"), Options("docker", False), Console(json_mode=True),
    )  # fmt: skip


def record() -> InstallRecord:
    return InstallRecord(
        gpubundle_version="0.1.0", bundle_sha256="0" * 64, signer_fingerprint="F" * 40,
        distro="ubuntu24.04", arch="amd64", toolkit_version="1.20.1-1",
        started_at="2026-11-29T00:36:30Z",
    )  # fmt: skip


def test_cdi_failure_still_runs_the_gpus_proof_and_reports_both(seen: dict[str, Any]) -> None:
    seen["passes"] = False
    with pytest.raises(GpubundleError) as err:
        runner().prove(record())
    assert seen["cdi"] is False and seen["images"] == [VERIFY.ref]
    details = "\n".join(err.value.details)
    assert "prestart hook failed" in details
    assert "CDI not tried: nvidia-ctk failed" in details and "stand-in" in details


def test_gpus_proof_passing_without_cdi_says_cdi_was_not_tried(seen: dict[str, Any]) -> None:
    seen["passes"] = True
    _, detail = runner().prove(record())
    assert detail.startswith(f"containers see 1 GPU(s) in {VERIFY.ref} (gpus-all)")
    assert "CDI not tried" in detail
