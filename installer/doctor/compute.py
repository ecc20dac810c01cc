"""``gpu.compute``: run the compute probe of the builtin verification image, when it is
on this host, the way containers are given GPUs here (CDI where Docker reads a spec,
else ``--gpus all``), and report each GPU's figures or the driver's error name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from installer import computeproof, containers
from installer.doctor.checks import Finding, failure, ok, skipped
from installer.doctor.dockerfacts import DockerFacts

CHECK_ID = "gpu.compute"
DOCTOR_SIZE = "256M"  # enough to move data and run the kernel; quick on any GPU


@dataclass(frozen=True)
class ComputeFacts:
    image: str = ""  # the image with the probe that was run; "" when none
    skipped_reason: str = ""
    result: computeproof.ComputeResult | None = None


def access(info: Mapping[str, object] | None, cdi_spec_present: bool) -> tuple[str, list[str]]:
    """How doctor gives the probe GPUs: the name of the proof's attempt and its options."""
    support = containers.docker_support(info)
    if support.cdi and cdi_spec_present:
        return "cdi-all", ["--device", containers.CDI_DEVICE_ALL]
    return "gpus-all", ["--gpus", "all"]


def gather_compute(
    docker: DockerFacts,
    candidates: Sequence[str],
    host_uuids: Sequence[str],
    env: Mapping[str, str],
    cdi_spec_present: bool,
) -> ComputeFacts:
    if docker.info is None:
        return ComputeFacts(skipped_reason="Docker is not running")
    if not host_uuids:
        return ComputeFacts(skipped_reason="the NVIDIA driver lists no GPU")
    image = next((i for i in candidates if computeproof.has_probe(i, env=env)), "")
    if not image:
        return ComputeFacts(
            skipped_reason="no image with the compute probe is loaded (the builtin "
            "verification image that install loads has it)"
        )
    name, options = access(docker.info, cdi_spec_present)
    visibility = ["docker", "run", "--rm", *options, image, "nvidia-smi", "-L"]
    result = computeproof.run_probe(
        image, name, visibility, host_uuids, size=DOCTOR_SIZE, timeout=300, env=env
    )
    return ComputeFacts(image, "", result)


def check_compute(f: ComputeFacts) -> Finding:
    if f.result is None:
        return skipped(CHECK_ID, f"compute not checked: {f.skipped_reason}")
    r = f.result
    command = " ".join(r.argv)
    evidence = [f"GPU {g.index} {g.uuid} {g.name}: {g.evidence}" for g in r.gpus]
    evidence += [f"command: {command} (exit {r.exit_code})"]
    if r.ok:
        return ok(
            CHECK_ID,
            f"a CUDA kernel ran correctly on {len(r.gpus)} GPU(s) in {r.image} "
            f"(CUDA driver {r.cuda_driver_version})",
            evidence,
        )
    error = computeproof.compute_failure([r])
    assert error is not None  # r is not ok
    return failure(
        CHECK_ID,
        error.message,
        [*evidence, *error.details],
        [error.hint or "check `nvidia-smi` and dmesg on the host"],
    )
