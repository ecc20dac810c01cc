"""Image checks: an image whose CUDA needs a newer driver than the host's, and an image
where ``nvidia-smi`` cannot run (no glibc loader, or /usr/bin not on its PATH).

The toolkit injects the host's ``nvidia-smi``, a glibc binary, into /usr/bin of the
container; an image without the glibc loader (busybox static, Alpine) answers
"nvidia-smi: not found" although the file is there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from installer.cuda_compat import check_image_against_driver
from installer.doctor.checks import Finding, failure, ok, skipped, warning
from installer.errors import GpubundleError
from installer.runner import run

# The ELF interpreter glibc binaries name, by Docker architecture.
GLIBC_LOADERS = {"amd64": "/lib64/ld-linux-x86-64.so.2", "arm64": "/lib/ld-linux-aarch64.so.1"}


@dataclass(frozen=True)
class ImageFacts:
    ref: str
    found: bool
    error: str = ""
    architecture: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    glibc_loader: bool | None = None  # None: not probed
    driver_version: str = ""
    cuda_version: str = ""


def parse_env(entries: Sequence[str]) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def _probe_loader(ref: str, loader: str, env: Mapping[str, str]) -> bool:
    """Whether ``loader`` exists in ``ref``'s filesystem: create (never start) a container, copy."""
    created = run(["docker", "create", ref, "/gpubundle-probe"], env=env, timeout=120)
    cid = created.stdout.decode().strip()
    try:
        return run(["docker", "cp", f"{cid}:{loader}", "-"], env=env, check=False).returncode == 0
    finally:
        run(["docker", "rm", "-f", cid], env=env, check=False)


def gather_image(
    ref: str, env: Mapping[str, str], driver_version: str = "", cuda_version: str = ""
) -> ImageFacts:
    proc = run(["docker", "image", "inspect", ref], env=env, check=False, timeout=60)
    if proc.returncode != 0:
        return ImageFacts(ref, False, proc.stderr.decode(errors="replace").strip())
    data = json.loads(proc.stdout)[0]
    arch = str(data.get("Architecture", ""))
    loader = GLIBC_LOADERS.get(arch)
    try:
        has_loader = _probe_loader(ref, loader, env) if loader else None
    except GpubundleError as exc:
        return ImageFacts(ref, True, exc.message, arch)
    return ImageFacts(
        ref,
        True,
        architecture=arch,
        env=parse_env((data.get("Config") or {}).get("Env") or []),
        glibc_loader=has_loader,
        driver_version=driver_version,
        cuda_version=cuda_version,
    )


def check_image_cuda(f: ImageFacts) -> Finding:
    cid = f"images.cuda[{f.ref}]"
    if not f.found:
        return skipped(cid, f"image {f.ref} is not on this host", [f.error])
    require = f.env.get("NVIDIA_REQUIRE_CUDA", "")
    if not require:
        return ok(cid, f"{f.ref} states no CUDA requirement")
    if f.env.get("NVIDIA_DISABLE_REQUIRE", "").lower() in ("1", "true"):
        return ok(cid, f"{f.ref} disables its CUDA requirement check", [require])
    if not f.driver_version:
        return skipped(cid, "no NVIDIA driver is loaded to compare against", [require])
    result = check_image_against_driver(require, f.driver_version, cuda_version=f.cuda_version)
    evidence = [f"NVIDIA_REQUIRE_CUDA={require}", f"driver {f.driver_version}"]
    if not result.ok:
        return failure(
            cid,
            f"{f.ref} needs a newer driver: {result.message}",
            evidence,
            [
                f"install NVIDIA driver >= {result.needed or '(see above)'} and reboot",
                "or pick an image built for the host's CUDA version",
            ],
        )
    return ok(cid, result.message, evidence)


def check_image_nvidia_smi(f: ImageFacts) -> Finding:
    cid = f"images.nvidia-smi[{f.ref}]"
    if not f.found:
        return skipped(cid, f"image {f.ref} is not on this host", [f.error])
    if f.error:
        return skipped(cid, f"could not look inside {f.ref}: {f.error}")
    loader = GLIBC_LOADERS.get(f.architecture, "")
    if f.glibc_loader is False:
        return failure(
            cid,
            f"{f.ref} has no glibc ({loader} is missing): the injected nvidia-smi "
            "cannot run there ('nvidia-smi: not found')",
            [f"architecture {f.architecture}", f"{loader}: absent"],
            [
                "use a glibc-based image (e.g. nvidia/cuda:*-base-ubuntu*) to run nvidia-smi",
                "or check the GPU from the host: nvidia-smi",
            ],
        )
    path = f.env.get("PATH", "")
    if path and "/usr/bin" not in path.split(":"):
        return warning(
            cid,
            f"{f.ref}'s PATH lacks /usr/bin, where the toolkit puts nvidia-smi",
            [f"PATH={path}"],
            [
                f"docker run --gpus all {f.ref} /usr/bin/nvidia-smi",
                "or set ENV PATH=$PATH:/usr/bin in the image",
            ],
        )
    if f.glibc_loader is None:
        return skipped(cid, f"no glibc probe for architecture {f.architecture!r}")
    return ok(cid, f"{f.ref} has glibc and /usr/bin on its PATH", [f"{loader}: present"])
