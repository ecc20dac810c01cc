"""The bundle's images into Docker, and the proof that containers see the host's GPUs.

A bundle holds several ``docker load`` archives (``load_archives`` loads each).
``prove_gpus`` runs ``nvidia-smi -L`` in one image every way the host supports:
``--gpus all`` (the guide's form; with more than one GPU also ``--gpus 1`` and
``--gpus device=0``), the CDI form ``--device nvidia.com/gpu=all`` where Docker
supports CDI (25 or newer, CDI enabled), and ``--runtime=nvidia`` with
``NVIDIA_VISIBLE_DEVICES=all`` where Docker has the nvidia runtime. A path the host
does not support is reported as not tried, with the reason. Each attempt records what
ran, what it printed, the UUIDs it saw against the host's, and the runtime's error
when the container could not start. Nothing is inferred: an attempt passes only when
the container listed exactly the GPUs it should, and never on a host whose driver
lists no GPU (``proof_failure`` then says so).

The rule (docs/installing.md): the proof passes when every ``--gpus`` attempt passes
and, where Docker supports CDI, the CDI attempt too. The ``--runtime=nvidia``
attempt is reported, passed or failed, and decides nothing. ``install --proof``
picks another rule (:data:`DECIDING`): ``gpus``, ``cdi`` or ``all``.

``generate_cdi_spec`` runs ``nvidia-ctk cdi generate`` with the driver's own
directory first on PATH, so the spec mounts the driver's ``nvidia-smi``, not a
wrapper script found earlier on PATH (see installer.nvidiasmi).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from installer import cdispec, invocation, nvidiasmi
from installer.console import Progress
from installer.errors import GpubundleError
from installer.runner import run, run_fed, tail

CDI_DEVICE_ALL = "nvidia.com/gpu=all"
CDI_MIN_DOCKER = 25
NVIDIA_RUNTIME = "nvidia"
GPUS_PATHS = frozenset({"gpus-all", "gpus-1", "device-0"})
# install --proof RULE: the paths whose attempts decide the proof (the others are reported).
# "default": the --gpus forms and, where Docker supports it, CDI; --runtime=nvidia reported.
DECIDING: dict[str, frozenset[str]] = {
    "default": GPUS_PATHS | {"cdi-all"},
    "gpus": GPUS_PATHS,
    "cdi": frozenset({"cdi-all"}),
    "all": GPUS_PATHS | {"cdi-all", "runtime-nvidia"},
}
PROOF_RULES = tuple(DECIDING)
_GPU_LINE = re.compile(r"^GPU (\d+): (.+?) \(UUID: (GPU-[0-9A-Fa-f-]+)\)", re.MULTILINE)
_LOADED = re.compile(r"^Loaded image(?: ID)?: (.+)$", re.MULTILINE)
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ProofAttempt:
    name: str  # "gpus-all" | "cdi-all" | "runtime-nvidia" | "gpus-1" | "device-0"
    argv: tuple[str, ...]
    exit_code: int
    expected_uuids: tuple[str, ...]  # empty for "gpus-1": any one host GPU will do
    seen_uuids: tuple[str, ...]
    passed: bool
    output: str  # what the container printed (tail)
    error: str  # why it failed, in words; "" when it passed
    required: bool = True  # whether the proof's verdict depends on it

    @property
    def evidence(self) -> str:
        """One line: the UUIDs the container listed, or why it failed."""
        if self.passed:
            return "saw " + ", ".join(self.seen_uuids)
        return self.error


@dataclass(frozen=True)
class NotTried:
    name: str
    argv: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class ProofResult:
    image: str
    host_uuids: tuple[str, ...]
    attempts: tuple[ProofAttempt, ...]
    not_tried: tuple[NotTried, ...] = ()

    @property
    def ok(self) -> bool:
        required = [a for a in self.attempts if a.required]
        return bool(required) and all(a.passed for a in required)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass(frozen=True)
class DockerSupport:
    """Which access paths the running Docker offers, and why not where it does not."""

    cdi: bool
    cdi_reason: str  # why CDI is not supported; "" when it is
    nvidia_runtime: bool
    runtime_reason: str = ""


@dataclass(frozen=True)
class CdiSpec:
    path: str
    nvidia_smi: str  # where the spec mounts nvidia-smi inside containers, "" if absent
    driver_versions: tuple[str, ...] = ()
    smi_problem: str = ""  # why that nvidia-smi cannot run in a container; "" if it can


# --- pure ---------------------------------------------------------------------------


def parse_gpu_list(text: str) -> tuple[str, ...]:
    """UUIDs from ``nvidia-smi -L`` lines like ``GPU 0: NVIDIA H200 (UUID: GPU-…)``."""
    return tuple(m.group(3) for m in _GPU_LINE.finditer(text))


def parse_loaded(text: str) -> list[str]:
    """Image refs (or IDs) from ``docker load`` output."""
    return [m.group(1).strip() for m in _LOADED.finditer(text)]


@dataclass(frozen=True)
class PlannedAttempt:
    name: str
    argv: list[str]
    expected: tuple[str, ...]
    required: bool


def _docker_run(image: str, smi: str, *options: str) -> list[str]:
    return ["docker", "run", "--rm", *options, image, smi, "-L"]


def proof_plan(
    image: str,
    host_uuids: Sequence[str],
    *,
    cdi: bool,
    runtime: bool = False,
    smi: str = "nvidia-smi",
    rule: str = "default",
) -> list[PlannedAttempt]:
    """Every attempt for ``image``; host UUIDs are in index order.

    ``cdi``: Docker supports CDI; ``runtime``: Docker has the nvidia runtime; ``rule``
    (a key of :data:`DECIDING`): which attempts decide the proof.
    """
    every = tuple(host_uuids)
    deciding = DECIDING[rule]
    plan = [("gpus-all", _docker_run(image, smi, "--gpus", "all"), every)]
    if cdi:
        plan.append(("cdi-all", _docker_run(image, smi, "--device", CDI_DEVICE_ALL), every))
    if runtime:
        argv = _docker_run(
            image, smi, f"--runtime={NVIDIA_RUNTIME}", "-e", "NVIDIA_VISIBLE_DEVICES=all"
        )
        plan.append(("runtime-nvidia", argv, every))
    if len(every) > 1:
        plan.append(("gpus-1", _docker_run(image, smi, "--gpus", "1"), ()))
        plan.append(("device-0", _docker_run(image, smi, "--gpus", "device=0"), every[:1]))
    return [PlannedAttempt(name, argv, exp, name in deciding) for name, argv, exp in plan]


def rule_problem(rule: str, support: DockerSupport) -> str:
    """Why ``--proof RULE`` cannot be met on this Docker before anything runs; "" if it can."""
    if rule == "cdi" and not support.cdi:
        return f"--proof cdi needs CDI, and {support.cdi_reason}"
    return ""


def not_tried(image: str, support: DockerSupport, smi: str = "nvidia-smi") -> list[NotTried]:
    """The access paths this Docker does not offer, reported with the reason."""
    skipped = []
    if not support.cdi:
        argv = _docker_run(image, smi, "--device", CDI_DEVICE_ALL)
        skipped.append(NotTried("cdi-all", tuple(argv), support.cdi_reason))
    if not support.nvidia_runtime:
        argv = _docker_run(
            image, smi, f"--runtime={NVIDIA_RUNTIME}", "-e", "NVIDIA_VISIBLE_DEVICES=all"
        )
        skipped.append(NotTried("runtime-nvidia", tuple(argv), support.runtime_reason))
    return skipped


def server_major(info: Mapping[str, Any] | None) -> int:
    match = re.match(r"(\d+)\.", str((info or {}).get("ServerVersion", "")))
    return int(match.group(1)) if match else 0


def docker_support(info: Mapping[str, Any] | None) -> DockerSupport:
    """What ``docker info`` (as JSON) says about CDI and the nvidia runtime."""
    if info is None:
        return DockerSupport(False, "Docker did not answer", False, "Docker did not answer")
    version = str(info.get("ServerVersion", "?"))
    major = server_major(info)
    if 0 < major < CDI_MIN_DOCKER:
        cdi_reason = f"Docker {version} has no CDI (needs {CDI_MIN_DOCKER} or newer)"
    elif not info.get("CDISpecDirs"):
        cdi_reason = (
            f'CDI is not enabled in Docker {version} (daemon.json "features": {{"cdi": true}})'
        )
    else:
        cdi_reason = ""
    runtimes = info.get("Runtimes")
    has_runtime = isinstance(runtimes, dict) and NVIDIA_RUNTIME in runtimes
    runtime_reason = "" if has_runtime else "the nvidia runtime is not registered with Docker"
    return DockerSupport(not cdi_reason, cdi_reason, has_runtime, runtime_reason)


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


def proof_rows(results: Sequence[ProofResult]) -> list[list[str]]:
    """One row per attempt, passed ones too, and per path not tried: the proof's table."""
    rows = []
    for r in results:
        for a in r.attempts:
            verdict = "passed" if a.passed else ("FAILED" if a.required else "failed (optional)")
            rows.append([r.image, a.name, verdict, a.evidence])
        rows += [[r.image, n.name, "not tried", n.reason] for n in r.not_tried]
    return rows


def proof_summary(results: Sequence[ProofResult], host_uuids: Sequence[str]) -> str:
    """The proof step's detail: every path, its verdict and evidence, in one line."""
    parts = []
    for r in results:
        for a in r.attempts:
            parts.append(f"{a.name} {'ok' if a.passed else 'failed'}: {a.evidence}")
        parts += [f"{n.name} not tried: {n.reason}" for n in r.not_tried]
    head = f"containers see {len(host_uuids)} GPU(s) in {', '.join(r.image for r in results)}"
    return head + " (" + "; ".join(dict.fromkeys(parts)) + ")"


def proof_failure(
    results: Sequence[ProofResult], host_uuids: Sequence[str], driver_problem: str = ""
) -> GpubundleError | None:
    """The error to report for ``results``, or None when every image saw the host's GPUs."""
    failed = [
        f"{r.image} {a.name}: {a.error} ({shlex.join(a.argv)})"
        for r in results
        for a in r.attempts
        if a.required and not a.passed
    ]
    failed += [f"{r.image}: no attempt ran" for r in results if not r.attempts]
    # Everything else that ran or was not tried, so the report shows every path.
    context = [
        f"{r.image} {a.name}: "
        + ("passed, " if a.passed else "failed (does not decide the proof), ")
        + f"{a.evidence} ({shlex.join(a.argv)})"
        for r in results
        for a in r.attempts
        if a.passed or not a.required
    ]
    context += [f"{r.image} {n.name}: not tried: {n.reason}" for r in results for n in r.not_tried]
    if not host_uuids:
        return GpubundleError(
            "could not prove that containers see GPUs: the NVIDIA driver lists no GPU on this host",
            hint="load the NVIDIA driver (`nvidia-smi -L` must list the GPUs) and run install "
            "again; to install without a GPU now, use --skip-gpu-checks",
            details=[driver_problem or "the driver reported no GPU", *failed, *context],
        )
    if not results:
        return GpubundleError(
            "could not prove that containers see GPUs: the bundle has no image to run",
            hint="build the bundle without --no-images, or install with --skip-gpu-checks",
        )
    if failed:
        return GpubundleError(
            "the verification containers did not see the host's GPUs as expected",
            hint=f"run `{invocation.command('doctor')}` for the cause",
            details=[*failed, *context],
        )
    return None


def smi_path_from_cdi_spec(text: str) -> str:
    """The container path the spec mounts nvidia-smi at (YAML or JSON spec)."""
    mount = cdispec.parse_spec(text).nvidia_smi()
    return mount.container_path if mount else ""


def cdi_generate_argv(nvidia_ctk: str, output: Path) -> list[str]:
    return [nvidia_ctk, "cdi", "generate", f"--output={output}"]


def regeneration_reason(
    spec_text: str | None, created_by_gpubundle: bool, driver_version: str
) -> str:
    """Why install (re)generates the CDI spec; "" to leave it as it is.

    A missing spec is generated; one gpubundle made is made again (the driver, or
    gpubundle's way of generating it, may have changed); anyone's stale spec
    (generated for another driver version) is replaced.
    """
    if spec_text is None:
        return "no NVIDIA CDI spec yet"
    if created_by_gpubundle:
        return "gpubundle generated it; generated again for the running driver"
    stale = cdispec.stale_reason(cdispec.parse_spec(spec_text), driver_version)
    return f"the spec is stale: {stale}" if stale else ""


# --- acting -------------------------------------------------------------------------


def _chunks(archive: Path, progress: Progress | None) -> Iterator[bytes]:
    with archive.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk
            if progress is not None:
                progress.advance(len(chunk))


def load_argv() -> list[str]:
    """``docker load`` reading the archive from stdin (``--quiet``: no progress bars)."""
    return ["docker", "load", "--quiet"]


def load_failure(archive: Path, exit_code: int, output: str) -> GpubundleError:
    """Why ``docker load`` of ``archive`` failed, with what to do about it."""
    lines = tail(output, 10)
    said = lines[-1] if lines else f"exit code {exit_code}"
    if "Error response from daemon" in output and "no space left" not in output:
        return GpubundleError(
            f"Docker refused the image archive {archive}: {said}",
            hint=f"verify the bundle again ({invocation.command('verify', invocation.INSTALL_ARGS)}); "
            "it may be damaged",
            details=lines,
        )
    return GpubundleError(
        f"Docker could not load {archive}: {said}",
        hint="check free space under Docker's data root and that dockerd runs",
        details=lines,
    )


def load_images(archive: Path, progress: Progress | None = None) -> list[str]:
    """``docker load`` the bundle's archive, streamed, progress by bytes; returns refs or IDs."""
    proc = run_fed(load_argv(), _chunks(archive, progress), check=False, timeout=3600)
    stdout = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        raise load_failure(archive, proc.returncode, proc.stderr.decode(errors="replace") + stdout)
    return parse_loaded(stdout)


def load_archives(archives: Sequence[Path], progress: Progress | None = None) -> list[str]:
    """:func:`load_images` for each archive in order; the refs (or IDs) of all of them."""
    loaded: list[str] = []
    for archive in archives:
        loaded += load_images(archive, progress)
    return loaded


def image_present(ref: str, timeout: float = 60) -> bool:
    """Whether the running Docker has an image by this reference (or ID)."""
    return run(["docker", "image", "inspect", ref], check=False, timeout=timeout).returncode == 0


def docker_info(timeout: float = 30) -> dict[str, Any] | None:
    """``docker info`` as JSON; None when the daemon does not answer."""
    proc = run(["docker", "info", "--format", "{{json .}}"], check=False, timeout=timeout)
    if proc.returncode != 0:
        return None
    try:
        info = json.loads(proc.stdout.decode() or "null")
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def prove_gpus(
    image: str,
    host_uuids: Sequence[str],
    support: DockerSupport,
    *,
    smi: str = "nvidia-smi",
    timeout: float = 300,
    rule: str = "default",
) -> ProofResult:
    """Run every attempt of :func:`proof_plan` and judge it against ``host_uuids``."""
    attempts = []
    planned = proof_plan(
        image, host_uuids, cdi=support.cdi, runtime=support.nvidia_runtime, smi=smi, rule=rule
    )
    for step in planned:
        proc = run(step.argv, check=False, timeout=timeout)
        output = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        seen = parse_gpu_list(proc.stdout.decode(errors="replace"))
        passed, error = judge(step.name, step.expected, host_uuids, seen, proc.returncode, output)
        attempts.append(
            ProofAttempt(
                step.name,
                tuple(step.argv),
                proc.returncode,
                step.expected,
                seen,
                passed,
                "\n".join(tail(output, 20)),
                error,
                step.required,
            )
        )
    skipped = tuple(not_tried(image, support, smi))
    return ProofResult(image, tuple(host_uuids), tuple(attempts), skipped)


def prove_images(
    images: Sequence[str],
    host_uuids: Sequence[str],
    support: DockerSupport,
    *,
    smi: str = "nvidia-smi",
    timeout: float = 300,
    rule: str = "default",
) -> list[ProofResult]:
    """:func:`prove_gpus` for each image in order (the builtin verification image first)."""
    return [prove_gpus(i, host_uuids, support, smi=smi, timeout=timeout, rule=rule) for i in images]


def driver_search_path(search_path: str, host_smi: str) -> tuple[str, str]:
    """PATH for ``nvidia-ctk cdi generate``: the driver's own directory first.

    ``host_smi`` is the nvidia-smi found on this host (maybe a wrapper script);
    returns the PATH and a note saying what was put first and why ("" when nothing).
    """
    if not host_smi:
        return search_path, ""
    binary, _looked_at = nvidiasmi.driver_binary(host_smi)
    if binary is None:
        return search_path, ""
    directory = str(Path(binary.path).parent)
    note = ""
    if binary.path != host_smi:
        note = f"{host_smi} is a wrapper of {binary.path}; {directory} put first on PATH"
    return nvidiasmi.driver_dir_first(search_path, directory), note


def read_spec(path: Path) -> CdiSpec:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise GpubundleError(
            f"nvidia-ctk reported success but {path} cannot be read: {exc}",
            hint=f"run {shlex.join(cdi_generate_argv('nvidia-ctk', path))} by hand and read "
            "its output",
        ) from exc
    facts = cdispec.parse_spec(text)
    mount = facts.nvidia_smi()
    problem = ""
    if mount is not None:
        problem = nvidiasmi.judge_mounted(nvidiasmi.inspect(mount.host_path), facts.container_paths)
    return CdiSpec(str(path), mount.container_path if mount else "", facts.driver_versions, problem)


def refresh_reason(spec_path: Path, created_by_gpubundle: bool, driver_version: str) -> str:
    """Why a completed install must run its proof again for the CDI spec; "" when not.

    A spec generated for another driver is stale, whoever made it; one gpubundle made
    whose nvidia-smi cannot run in a container (an older gpubundle mounted a wrapper) is
    made again. Install's plan asks this, so re-running install is the fix doctor prints.
    """
    try:
        text = spec_path.read_text(errors="replace")
    except OSError:
        return ""
    facts = cdispec.parse_spec(text)
    stale = cdispec.stale_reason(facts, driver_version)
    if stale:
        return f"the spec is stale: {stale}"
    mount = facts.nvidia_smi()
    if created_by_gpubundle and mount is not None:
        problem = nvidiasmi.judge_mounted(nvidiasmi.inspect(mount.host_path), facts.container_paths)
        if problem:
            return f"its nvidia-smi cannot run in a container: {problem}"
    return ""


def generate_cdi_spec(nvidia_ctk: str, output: Path, host_smi: str = "") -> tuple[CdiSpec, str]:
    """``nvidia-ctk cdi generate`` (hosts without systemd have no nvidia-cdi-refresh service).

    Run with the driver's own directory first on PATH (found behind ``host_smi``), so
    the spec mounts the driver's nvidia-smi. Returns the spec and what was done about
    PATH ("" when nothing). A spec whose nvidia-smi still cannot run in a container
    is an error: the CDI proof would fail for a reason the user cannot see.
    """
    search_path, note = driver_search_path(os.environ.get("PATH", ""), host_smi)
    argv = cdi_generate_argv(nvidia_ctk, output)
    run(
        argv,
        env={"PATH": search_path},
        timeout=300,
        hint="nvidia-ctk needs the NVIDIA driver's libraries; check `nvidia-smi` works",
    )
    spec = read_spec(output)
    if spec.smi_problem:
        raise GpubundleError(
            f"the CDI spec {output} mounts an nvidia-smi that cannot run in a container",
            hint="put the directory of the driver's own nvidia-smi first on PATH and run "
            f"PATH=DIR:$PATH {shlex.join(argv)}; then run install again",
            details=[spec.smi_problem, *([note] if note else [])],
        )
    return spec, note
