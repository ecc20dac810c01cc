"""The proof step: every access path reported, the CDI spec generated where it should be.

Seen on GPU hosts: a CDI spec that cannot be generated (stand-ins), a spec that mounted
a wrapper nvidia-smi, ``--gpus`` failing while CDI worked. The step must run every path
Docker supports, report each (passed ones too), and never pass what a container did not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from installer import containers
from installer.errors import GpubundleError
from installer.gpu import DriverFacts, GpuInfo
from installer.hostpaths import HostPaths
from installer.record import InstallRecord
from installer.steps import proof
from tests.support.cdispecs import CDI_YAML, REAL_SPEC_OLD_DRIVER
from tests.support.manifests import VERIFY, make_manifest
from tests.support.steps import step_runner

UUID = "GPU-84ab8b38-911c-6f8b-2e46-221d9928d90d"
H200 = DriverFacts(
    True, "580.159.04", "13.0", (GpuInfo(0, "NVIDIA H200", UUID, 143771),), "pynvml", ""
)
DOCKER_29 = {
    "ServerVersion": "29.1.3",
    "CDISpecDirs": ["/etc/cdi", "/var/run/cdi"],
    "Runtimes": {"nvidia": {}, "runc": {}},
}
DOCKER_20 = {"ServerVersion": "20.10.24", "Runtimes": {"nvidia": {}, "runc": {}}}


def attempt(name: str, passed: bool, required: bool = True) -> containers.ProofAttempt:
    return containers.ProofAttempt(
        name, ("docker", "run", name), 0 if passed else 125, (UUID,),
        (UUID,) if passed else (), passed, "", "" if passed else "prestart hook failed",
        required,
    )  # fmt: skip


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    calls: dict[str, Any] = {"info": DOCKER_29, "generate": [], "fails": set()}

    def generate(ctk: str, output: Path, host_smi: str = "") -> tuple[containers.CdiSpec, str]:
        assert output == HostPaths(tmp_path).cdi_spec
        calls["generate"].append(host_smi)
        if "generate" in calls["fails"]:
            raise GpubundleError(
                "nvidia-ctk failed with exit code 1",
                details=["failed to generate CDI spec: stand-in for tests, not NVIDIA's binary"],
            )
        spec = output
        spec.parent.mkdir(parents=True, exist_ok=True)
        spec.write_text(CDI_YAML)
        note = "/usr/bin/nvidia-smi is a wrapper of /usr/local/nvidia/bin/nvidia-smi"
        return containers.CdiSpec(str(spec), "/usr/local/nvidia/bin/nvidia-smi"), note

    def prove(
        images: Sequence[str],
        uuids: Sequence[str],
        support: containers.DockerSupport,
        rule: str = "default",
    ) -> list[Any]:
        calls["support"], calls["images"], calls["rule"] = support, list(images), rule
        names = ["gpus-all", *(["cdi-all"] if support.cdi else []), "runtime-nvidia"]
        tried = tuple(attempt(n, n not in calls["fails"], n != "runtime-nvidia") for n in names)
        skipped = tuple(containers.not_tried(images[0], support))
        return [containers.ProofResult(images[0], tuple(uuids), tried, skipped)]

    monkeypatch.setattr(proof, "read_driver_facts", lambda **_: H200)
    monkeypatch.setattr(proof, "find_nvidia_smi", lambda: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(containers, "docker_info", lambda: calls["info"])
    monkeypatch.setattr(containers, "generate_cdi_spec", generate)
    monkeypatch.setattr(containers, "prove_images", prove)
    calls["root"] = tmp_path  # the host's paths (the CDI spec, the record) lie under it
    HostPaths(tmp_path).cdi_spec.parent.mkdir(parents=True)
    return calls


class Prover:
    """The proof step's body as install runs it, the host's paths under a test root."""

    def __init__(self, root: Path, proof_rule: str = "default") -> None:
        manifest = make_manifest(images=(VERIFY,))
        self.ctx = step_runner(root, manifest, skip_gpu_checks=False, proof_rule=proof_rule).ctx

    @property
    def proof(self) -> list[dict[str, Any]]:
        return self.ctx.proof

    def prove(self, record: InstallRecord) -> tuple[InstallRecord, str]:
        return proof.run(self.ctx, record)


def spec_path(seen: dict[str, Any]) -> Path:
    return HostPaths(seen["root"]).cdi_spec


def record() -> InstallRecord:
    return InstallRecord(
        gpubundle_version="0.1.0", bundle_sha256="0" * 64, signer_fingerprint="F" * 40,
        distro="ubuntu24.04", arch="amd64", toolkit_version="1.20.1-1",
        started_at="2026-11-29T00:36:30Z",
    )  # fmt: skip


def test_cdi_generation_failure_still_runs_every_path_and_reports_why(
    seen: dict[str, Any],
) -> None:
    seen["fails"] = {"generate", "gpus-all", "cdi-all"}
    with pytest.raises(GpubundleError) as err:
        Prover(seen["root"]).prove(record())
    assert seen["support"].cdi and seen["images"] == [VERIFY.ref]
    details = "\n".join(err.value.details)
    assert "gpus-all: prestart hook failed" in details
    assert "cdi-all: prestart hook failed" in details  # CDI supported: it decides too
    assert "runtime-nvidia: failed (does not decide the proof), saw" not in details
    assert f"runtime-nvidia: passed, saw {UUID}" in details  # passed ones are reported
    assert "CDI spec not generated (no NVIDIA CDI spec yet): nvidia-ctk failed" in details
    assert "stand-in" in details


def test_passing_proof_reports_every_path_and_the_spec(seen: dict[str, Any]) -> None:
    step = Prover(seen["root"])
    new_record, detail = step.prove(record())
    assert detail.startswith(f"containers see 1 GPU(s) in {VERIFY.ref} (")
    for name in ("gpus-all", "cdi-all", "runtime-nvidia"):
        assert f"{name} ok: saw {UUID}" in detail
    assert (
        "generated (no NVIDIA CDI spec yet), mounts nvidia-smi at /usr/local/nvidia/bin" in detail
    )
    assert "is a wrapper of /usr/local/nvidia/bin/nvidia-smi" in detail
    assert seen["generate"] == ["/usr/bin/nvidia-smi"]
    assert new_record.cdi_specs_created == (str(spec_path(seen)),)
    assert [a["name"] for a in step.proof[0]["attempts"]] == ["gpus-all", "cdi-all", "runtime-nvidia"]  # fmt: skip


def test_optional_runtime_path_failing_does_not_fail_the_install(seen: dict[str, Any]) -> None:
    seen["fails"] = {"runtime-nvidia"}
    _, detail = Prover(seen["root"]).prove(record())
    assert "runtime-nvidia failed: prestart hook failed" in detail


def test_docker_without_cdi_generates_nothing_and_says_cdi_was_not_tried(
    seen: dict[str, Any],
) -> None:
    seen["info"] = DOCKER_20
    _, detail = Prover(seen["root"]).prove(record())
    assert seen["generate"] == [] and not seen["support"].cdi
    assert "cdi-all not tried: Docker 20.10.24 has no CDI (needs 25 or newer)" in detail


def test_spec_kept_regenerated_or_replaced(seen: dict[str, Any]) -> None:
    spec = spec_path(seen)
    spec.write_text(CDI_YAML)  # someone's, for the running driver: kept
    rec, detail = Prover(seen["root"]).prove(record())
    assert seen["generate"] == [] and f"CDI spec {spec} kept (current)" in detail
    assert rec.cdi_specs_created == ()
    # Ours: generated again (the driver, or how we generate, may have changed).
    ours = dataclasses.replace(record(), cdi_specs_created=(str(spec),))
    _, detail = Prover(seen["root"]).prove(ours)
    assert len(seen["generate"]) == 1 and "gpubundle generated it" in detail
    # Someone's, stale: replaced, and not claimed (uninstall will not delete it).
    spec.write_text(REAL_SPEC_OLD_DRIVER)
    rec, detail = Prover(seen["root"]).prove(record())
    assert len(seen["generate"]) == 2
    assert "the spec is stale: generated for driver 550.54.15" in detail
    assert rec.cdi_specs_created == ()


def test_proof_cdi_on_docker_without_cdi_stops_with_a_doable_hint(seen: dict[str, Any]) -> None:
    seen["info"] = DOCKER_20
    with pytest.raises(GpubundleError) as err:
        Prover(seen["root"], "cdi").prove(record())
    assert "--proof cdi needs CDI, and Docker 20.10.24 has no CDI" in err.value.message
    assert "--proof default" in err.value.hint
    assert "images" not in seen  # nothing ran


def test_proof_rule_reaches_the_attempts(seen: dict[str, Any]) -> None:
    Prover(seen["root"], "gpus").prove(record())
    assert seen["rule"] == "gpus"
