"""Prove compute, not just visibility: the verification image's compute probe, run in Docker.

``nvidia-smi -L`` in a container proves the device nodes and NVML reached it. The builtin
verification image also holds ``gpubundle-compute-probe`` (installer/compute_probe.py),
which loads the ``libcuda.so.1`` the runtime injected, compiles a PTX kernel, and runs it
over a buffer on every GPU it sees. This module runs that probe the same way the
visibility proof's passing attempt ran the image (the same ``--gpus``/``--device``
options), reads its JSON report and judges it against the host's GPUs.

Pure functions first (argv, parsing, judging, rows); ``run_probe`` is the one effect.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from installer import compute_probe, invocation
from installer.errors import GpubundleError
from installer.runner import run, tail

PROBE = "gpubundle-compute-probe"
PROBE_PATH = "/usr/local/bin/" + PROBE  # where bundler/verifyimage.py puts it
PROBE_LABEL = "io.gpubundle.compute-probe"
DOCKER_RUN_FAILED = 125  # docker run's own exit code when the container could not start  # set on images that hold the probe
OFF = "off"  # install --compute-size off: no compute check
# The probe's exit codes (installer/compute_probe.py).
PROBE_EXIT_MEANING = {
    0: "every GPU passed",
    1: "a GPU failed a step or returned wrong values",
    2: "the probe's arguments were refused",
    3: "no CUDA driver library (libcuda.so.1) in the container",
    4: "the CUDA driver sees no GPU in the container",
    125: "the container did not start",
    127: "the image has no compute probe",
}


@dataclass(frozen=True)
class GpuCompute:
    """One GPU's compute result, as the probe reported it."""

    index: int
    uuid: str
    name: str
    passed: bool
    buffer_bytes: int = 0
    kernel_ms: float | None = None
    h2d_gbps: float | None = None
    d2h_gbps: float | None = None
    free_bytes: int = 0
    total_bytes: int = 0
    compute_capability: str = ""
    failed_step: str = ""
    error: str = ""  # the driver's error name, e.g. CUDA_ERROR_OUT_OF_MEMORY
    advice: str = ""
    detail: str = ""

    @property
    def evidence(self) -> str:
        if self.passed:
            return (
                f"{self.buffer_bytes >> 20} MiB checked, kernel {self.kernel_ms} ms, "
                f"H2D {self.h2d_gbps} GB/s, D2H {self.d2h_gbps} GB/s, "
                f"free {self.free_bytes >> 20} of {self.total_bytes >> 20} MiB"
            )
        return f"{self.error} at {self.failed_step}: {self.advice}"


@dataclass(frozen=True)
class ComputeResult:
    image: str
    access: str  # the visibility attempt whose options the probe reused ("gpus-all", …)
    argv: tuple[str, ...]
    exit_code: int
    host_uuids: tuple[str, ...]
    gpus: tuple[GpuCompute, ...] = ()
    cuda_driver_version: str = ""
    driver_version: str = ""
    error: str = ""  # why the probe as a whole failed ("" when it ran on every GPU)
    output: str = ""  # the tail of what the container printed when it gave no report

    @property
    def ok(self) -> bool:
        seen = sorted(g.uuid for g in self.gpus)
        return (
            not self.error
            and self.exit_code == 0
            and bool(self.gpus)
            and all(g.passed for g in self.gpus)
            and seen == sorted(self.host_uuids)
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


# --- pure ---------------------------------------------------------------------------


def access_options(argv: Sequence[str], image: str) -> list[str]:
    """The ``docker run`` options of a visibility attempt: what lies between ``--rm`` and
    the image (``--gpus all``, ``--device nvidia.com/gpu=all``, ``--runtime=nvidia …``)."""
    args = list(argv)
    try:
        start = args.index("--rm") + 1
        end = args.index(image, start)
    except ValueError:
        return []
    return args[start:end]


def probe_argv(image: str, options: Sequence[str], size: str) -> list[str]:
    return ["docker", "run", "--rm", *options, image, PROBE, "--json", "--size", size]


def parse_report(stdout: str) -> dict[str, Any] | None:
    """The probe's JSON document (its last line of stdout), or None when there is none."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "probe_version" in doc:
            return doc
    return None


def gpu_from_report(item: dict[str, Any]) -> GpuCompute:
    known = {f for f in GpuCompute.__dataclass_fields__}
    values = {k: v for k, v in item.items() if k in known}
    values.setdefault("uuid", "?")
    values.setdefault("name", "?")
    return GpuCompute(**values)


def judge_report(
    image: str,
    access: str,
    argv: Sequence[str],
    exit_code: int,
    stdout: str,
    stderr: str,
    host_uuids: Sequence[str],
) -> ComputeResult:
    """What one probe run proved, from its exit code and output."""
    doc = parse_report(stdout)
    host = tuple(host_uuids)
    if doc is None:
        meaning = PROBE_EXIT_MEANING.get(exit_code, f"exit {exit_code}")
        lines = " / ".join(tail(stdout + stderr, 4))
        return ComputeResult(
            image, access, tuple(argv), exit_code, host,
            error=f"the probe gave no report ({meaning}): {lines or 'no output'}",
            output=lines,
        )  # fmt: skip
    gpus = tuple(gpu_from_report(g) for g in doc.get("gpus", []) if isinstance(g, dict))
    error = ""
    if doc.get("error"):
        error = f"{doc['error']}: {doc.get('message', '')}".rstrip(": ")
    elif not gpus:
        error = "the probe saw no GPU"
    else:
        seen = {g.uuid for g in gpus}
        missing = sorted(set(host) - seen)
        extra = sorted(seen - set(host))
        if missing or extra:
            error = f"GPUs differ from the host's: missing {missing}, unexpected {extra}"
    return ComputeResult(
        image, access, tuple(argv), exit_code, host, gpus,
        str(doc.get("cuda_driver_version") or ""), str(doc.get("driver_version") or ""), error,
    )  # fmt: skip


def compute_rows(results: Sequence[ComputeResult]) -> list[list[str]]:
    """The compute table: one row per GPU, or one per run that gave no per-GPU result."""
    rows = []
    for r in results:
        for g in r.gpus:
            rows.append(
                [r.image, f"GPU {g.index} {g.uuid}", "passed" if g.passed else "FAILED", g.evidence]
            )
        if r.error:
            rows.append([r.image, r.access, "FAILED", r.error])
    return rows


def compute_summary(results: Sequence[ComputeResult]) -> str:
    parts = [f"GPU {g.index} {g.uuid}: {g.evidence}" for r in results for g in r.gpus]
    head = "CUDA compute ran in " + ", ".join(f"{r.image} ({r.access})" for r in results)
    return head + (" (" + "; ".join(parts) + ")" if parts else "")


def compute_failure(results: Sequence[ComputeResult]) -> GpubundleError | None:
    """The error to report, or None when every GPU computed correctly."""
    failed = [r for r in results if not r.ok]
    if not failed:
        return None
    details = []
    hints = []
    for r in failed:
        for g in r.gpus:
            if not g.passed:
                details.append(f"{r.image} GPU {g.index} {g.uuid}: {g.error} at {g.failed_step}")
                details += [f"  driver: {g.detail}"] if g.detail else []
                hints.append(g.advice)
        if r.error:
            details.append(f"{r.image}: {r.error}")
        details.append(f"  command: {shlex.join(r.argv)} (exit {r.exit_code})")
    names = sorted({g.error for r in failed for g in r.gpus if g.error})
    what = ", ".join(names) if names else failed[0].error.split(":")[0]
    if not any(r.gpus for r in failed) and any(r.exit_code == DOCKER_RUN_FAILED for r in failed):
        hints.append(
            "the container did not start, so the probe never ran: the way it was given GPUs "
            "failed (the detail has Docker's error)"
        )
    return GpubundleError(
        f"CUDA compute failed in the container: {what}",
        hint="; ".join(dict.fromkeys(h for h in hints if h))
        or f"run `{invocation.command('doctor')}` on this host; to install without the "
        "compute check, use --compute-size off",
        details=details,
    )


def checked_size(text: str) -> str:
    """``--compute-size``: "off", "auto" or a size the probe accepts; ValueError if not."""
    if text.strip().lower() in (OFF, "auto"):
        return text.strip().lower()
    compute_probe.parse_size(text)
    return text.strip()


# --- effect -------------------------------------------------------------------------


def has_probe(image: str, timeout: float = 60, env: Mapping[str, str] | None = None) -> bool:
    """Whether ``image`` carries the compute probe (its label says so)."""
    argv = ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", image]
    proc = run(argv, check=False, timeout=timeout, env=env)
    try:
        labels = json.loads(proc.stdout.decode() or "null")
    except ValueError:
        return False
    return proc.returncode == 0 and isinstance(labels, dict) and PROBE_LABEL in labels


def run_probe(
    image: str,
    access: str,
    visibility_argv: Sequence[str],
    host_uuids: Sequence[str],
    *,
    size: str = "auto",
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
) -> ComputeResult:
    """Run the probe in ``image`` with the options that made ``visibility_argv`` pass."""
    argv = probe_argv(image, access_options(visibility_argv, image), size)
    proc = run(argv, check=False, timeout=timeout, env=env)
    return judge_report(
        image,
        access,
        argv,
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
        host_uuids,
    )
