"""The bundle's images into Docker, and the proof that containers see the host's GPUs.

A bundle holds several ``docker load`` archives (``load_archives`` loads each).
``prove_gpus`` runs ``nvidia-smi -L`` in one image the ways users will: ``--gpus all``,
the CDI form ``--device nvidia.com/gpu=all`` where Docker has CDI enabled, and with
more than one GPU ``--gpus 1`` and ``--gpus device=0``; ``prove_images`` does that for
each image, the builtin verification image first. Each attempt records what ran, what
it printed, the UUIDs it saw against the host's, and the runtime's error when the
container could not start. Nothing is inferred: an attempt passes only when the
container listed exactly the GPUs it should, and never on a host whose driver lists
no GPU (``proof_failure`` then says so).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from installer.console import Progress
from installer.errors import GpubundleError
from installer.runner import run, tail

CDI_SPEC = Path("/var/run/cdi/nvidia.yaml")
CDI_DEVICE_ALL = "nvidia.com/gpu=all"
_GPU_LINE = re.compile(r"^GPU (\d+): (.+?) \(UUID: (GPU-[0-9A-Fa-f-]+)\)", re.MULTILINE)
_LOADED = re.compile(r"^Loaded image(?: ID)?: (.+)$", re.MULTILINE)
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ProofAttempt:
    name: str  # "gpus-all" | "cdi-all" | "gpus-1" | "device-0"
    argv: tuple[str, ...]
    exit_code: int
    expected_uuids: tuple[str, ...]  # empty for "gpus-1": any one host GPU will do
    seen_uuids: tuple[str, ...]
    passed: bool
    output: str  # what the container printed (tail)
    error: str  # why it failed, in words; "" when it passed


@dataclass(frozen=True)
class ProofResult:
    image: str
    host_uuids: tuple[str, ...]
    attempts: tuple[ProofAttempt, ...]

    @property
    def ok(self) -> bool:
        return bool(self.attempts) and all(a.passed for a in self.attempts)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass(frozen=True)
class CdiSpec:
    path: str
    nvidia_smi: str  # where the spec mounts nvidia-smi inside containers, "" if absent


# --- pure ---------------------------------------------------------------------------


def parse_gpu_list(text: str) -> tuple[str, ...]:
    """UUIDs from ``nvidia-smi -L`` lines like ``GPU 0: NVIDIA H200 (UUID: GPU-…)``."""
    return tuple(m.group(3) for m in _GPU_LINE.finditer(text))


def parse_loaded(text: str) -> list[str]:
    """Image refs (or IDs) from ``docker load`` output."""
    return [m.group(1).strip() for m in _LOADED.finditer(text)]


def proof_plan(
    image: str, host_uuids: Sequence[str], *, cdi: bool, smi: str = "nvidia-smi"
) -> list[tuple[str, list[str], tuple[str, ...]]]:
    """(name, docker argv, expected UUIDs) for each attempt; host UUIDs are in index order."""
    every = tuple(host_uuids)
    plan = [("gpus-all", ["docker", "run", "--rm", "--gpus", "all", image, smi, "-L"], every)]
    if cdi:
        plan.append(
            (
                "cdi-all",
                ["docker", "run", "--rm", "--device", CDI_DEVICE_ALL, image, smi, "-L"],
                every,
            )
        )
    if len(every) > 1:
        plan.append(("gpus-1", ["docker", "run", "--rm", "--gpus", "1", image, smi, "-L"], ()))
        plan.append(
            (
                "device-0",
                ["docker", "run", "--rm", "--gpus", "device=0", image, smi, "-L"],
                every[:1],
            )
        )
    return plan


def judge(
    name: str,
    expected: tuple[str, ...],
    host: Sequence[str],
    seen: tuple[str, ...],
    exit_code: int,
    output: str,
) -> tuple[bool, str]:
    """Whether an attempt passed, and if not, why in words."""
    if exit_code != 0:
        lines = tail(output, 6)
        return False, "the container did not run: " + (" / ".join(lines) or f"exit {exit_code}")
    if not host:
        return False, "the host's NVIDIA driver lists no GPU to compare the container's list with"
    if name == "gpus-1":
        if len(seen) == 1 and seen[0] in host:
            return True, ""
        return False, f"expected exactly one of the host's GPUs, saw {list(seen) or 'none'}"
    if sorted(seen) == sorted(expected):
        return True, ""
    missing = sorted(set(expected) - set(seen))
    extra = sorted(set(seen) - set(expected))
    return False, f"GPUs differ from the host's: missing {missing}, unexpected {extra}"


def proof_failure(
    results: Sequence[ProofResult], host_uuids: Sequence[str], driver_problem: str = ""
) -> GpubundleError | None:
    """The error to report for ``results``, or None when every image saw the host's GPUs."""
    details = [
        f"{r.image} {a.name}: {a.error} ({shlex.join(a.argv)})"
        for r in results
        for a in r.attempts
        if not a.passed
    ]
    details += [f"{r.image}: no attempt ran" for r in results if not r.attempts]
    if not host_uuids:
        return GpubundleError(
            "could not prove that containers see GPUs: the NVIDIA driver lists no GPU on this host",
            hint="load the NVIDIA driver (`nvidia-smi -L` must list the GPUs) and run install "
            "again; to install without a GPU now, use --skip-gpu-checks",
            details=[driver_problem or "the driver reported no GPU", *details],
        )
    if not results:
        return GpubundleError(
            "could not prove that containers see GPUs: the bundle has no image to run",
            hint="build the bundle without --no-images, or install with --skip-gpu-checks",
        )
    if details:
        return GpubundleError(
            "the verification containers did not see the host's GPUs as expected",
            hint="run `gpubundle doctor` for the cause",
            details=details,
        )
    return None


def smi_path_from_cdi_spec(text: str) -> str:
    """The container path the spec mounts nvidia-smi at (YAML or JSON spec)."""
    match = re.search(r"""["']?containerPath["']?\s*:\s*["']?([^"',\s}]*/nvidia-smi)\b""", text)
    return match.group(1) if match else ""


def cdi_generate_argv(nvidia_ctk: str, output: Path) -> list[str]:
    return [nvidia_ctk, "cdi", "generate", f"--output={output}"]


# --- acting -------------------------------------------------------------------------


def _chunks(archive: Path, progress: Progress | None) -> Iterator[bytes]:
    with archive.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            if progress is not None:
                progress.advance(len(chunk))
            yield chunk


def load_images(archive: Path, progress: Progress | None = None) -> list[str]:
    """``docker load`` the bundle's archive, streamed, progress by bytes; returns refs or IDs."""
    try:
        import docker
    except ImportError:
        docker = None
    if docker is not None:
        try:
            client = docker.from_env(timeout=600)
        except docker.errors.DockerException:
            client = None
        if client is not None:
            try:
                loaded: list[str] = []
                for item in client.api.load_image(_chunks(archive, progress), quiet=True):
                    if "error" in item:
                        raise GpubundleError(
                            f"Docker refused the image archive {archive}: {item['error']}",
                            hint="verify the bundle again (gpubundle verify BUNDLE); it may be damaged",
                        )
                    loaded += parse_loaded(str(item.get("stream", "")))
                return loaded
            except docker.errors.APIError as exc:
                raise GpubundleError(
                    f"Docker could not load {archive}: {exc}",
                    hint="check free space under Docker's data root and that dockerd runs",
                ) from exc
            finally:
                client.close()
    proc = run(
        ["docker", "load", "-i", str(archive)],
        timeout=3600,
        hint="check that dockerd runs and has free space under its data root",
    )
    if progress is not None:
        progress.advance(archive.stat().st_size)
    return parse_loaded(proc.stdout.decode(errors="replace"))


def load_archives(archives: Sequence[Path], progress: Progress | None = None) -> list[str]:
    """:func:`load_images` for each archive in order; the refs (or IDs) of all of them."""
    loaded: list[str] = []
    for archive in archives:
        loaded += load_images(archive, progress)
    return loaded


def image_present(ref: str, timeout: float = 60) -> bool:
    """Whether the running Docker has an image by this reference (or ID)."""
    return run(["docker", "image", "inspect", ref], check=False, timeout=timeout).returncode == 0


def cdi_enabled(timeout: float = 30) -> bool:
    """Whether the running Docker resolves CDI devices (it lists CDI spec directories)."""
    proc = run(
        ["docker", "info", "--format", "{{json .CDISpecDirs}}"], check=False, timeout=timeout
    )
    if proc.returncode != 0:
        return False
    try:
        dirs = json.loads(proc.stdout.decode() or "null")
    except ValueError:
        return False
    return isinstance(dirs, list) and bool(dirs)


def prove_gpus(
    image: str,
    host_uuids: Sequence[str],
    *,
    cdi: bool,
    smi: str = "nvidia-smi",
    timeout: float = 300,
) -> ProofResult:
    """Run every attempt of :func:`proof_plan` and judge it against ``host_uuids``."""
    attempts = []
    for name, argv, expected in proof_plan(image, host_uuids, cdi=cdi, smi=smi):
        proc = run(argv, check=False, timeout=timeout)
        output = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        seen = parse_gpu_list(proc.stdout.decode(errors="replace"))
        passed, error = judge(name, expected, host_uuids, seen, proc.returncode, output)
        attempts.append(
            ProofAttempt(
                name,
                tuple(argv),
                proc.returncode,
                expected,
                seen,
                passed,
                "\n".join(tail(output, 20)),
                error,
            )
        )
    return ProofResult(image, tuple(host_uuids), tuple(attempts))


def prove_images(
    images: Sequence[str],
    host_uuids: Sequence[str],
    *,
    cdi: bool,
    smi: str = "nvidia-smi",
    timeout: float = 300,
) -> list[ProofResult]:
    """:func:`prove_gpus` for each image in order (the builtin verification image first)."""
    return [prove_gpus(i, host_uuids, cdi=cdi, smi=smi, timeout=timeout) for i in images]


def generate_cdi_spec(nvidia_ctk: str = "nvidia-ctk", output: Path = CDI_SPEC) -> CdiSpec:
    """``nvidia-ctk cdi generate`` (hosts without systemd have no nvidia-cdi-refresh service)."""
    run(
        cdi_generate_argv(nvidia_ctk, output),
        timeout=300,
        hint="nvidia-ctk needs the NVIDIA driver's libraries; check `nvidia-smi` works",
    )
    try:
        text = output.read_text()
    except OSError as exc:
        raise GpubundleError(
            f"nvidia-ctk reported success but {output} cannot be read: {exc}",
            hint=f"run {shlex.join(cdi_generate_argv(nvidia_ctk, output))} by hand and read its output",
        ) from exc
    return CdiSpec(str(output), smi_path_from_cdi_spec(text))
