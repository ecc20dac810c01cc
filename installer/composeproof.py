"""The guide's last step: a Docker Compose service that reserves GPUs, brought up for real.

NVIDIA's install guide ends with a compose file whose service reserves every GPU through
``deploy.resources.reservations.devices`` (``driver: nvidia``, ``count: all``,
``capabilities: [gpu]``). Where the bundle carried the distribution's Compose
(``gpubundle build --with-compose``), install writes that file for the builtin
verification image, runs ``compose up`` and judges what the service printed: the compute
probe's report when the image has it, else ``nvidia-smi -L``. Where only CDI gave the
containers their GPUs, the service asks for the CDI device instead
(``driver: cdi``, ``device_ids: [nvidia.com/gpu=all]``, ``capabilities: [gpu]``), and the report says which form ran.

Pure functions first (the file, argv, judging); ``find_compose`` and ``run_compose``
are the effects.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from installer import computeproof, containers
from installer.errors import GpubundleError
from installer.runner import run, tail

SERVICE = "gpu-proof"
PROJECT = "gpubundle-proof"
COMPOSE_PACKAGES = ("docker-compose-v2", "docker-compose")  # what --with-compose bundles
PROBE_SIZE = "256M"
# What Docker says when a service asks for driver "nvidia" and no NVIDIA runtime hook is
# registered (no toolkit, or Docker not restarted after it was configured).
NO_NVIDIA_DRIVER = 'could not select device driver "nvidia"'
# What it says when it registered that driver at its start (the hook was there then) and
# the hook has gone since (the toolkit removed, Docker not restarted).
HOOK_GONE = 'exec: "nvidia-container-runtime-hook": executable file not found'
# Compose writes terminal escapes (erase-line, colours) even with --no-color.
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class ComposeResult:
    form: str  # "nvidia" (the guide's) or "cdi"
    argv: tuple[str, ...]
    exit_code: int
    host_uuids: tuple[str, ...]
    seen_uuids: tuple[str, ...]
    compute_ok: bool | None  # None: the service ran nvidia-smi -L, not the probe
    error: str  # "" when the service saw (and computed on) every host GPU
    output: str

    @property
    def ok(self) -> bool:
        return not self.error

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


# --- pure ---------------------------------------------------------------------------


def compose_file(image: str, form: str, probe: bool) -> str:
    """The compose file of the proof service, in the guide's shape (YAML, as JSON is)."""
    if form == "cdi":
        # Compose requires capabilities on every device; with a driver named, Docker
        # ignores them (Engine API, DeviceRequest).
        device: dict[str, Any] = {
            "driver": "cdi",
            "device_ids": [containers.CDI_DEVICE_ALL],
            "capabilities": ["gpu"],
        }
    else:
        device = {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
    command = (
        [computeproof.PROBE, "--json", "--size", PROBE_SIZE] if probe else ["nvidia-smi", "-L"]
    )
    service = {
        "image": image,
        "command": command,
        "deploy": {"resources": {"reservations": {"devices": [device]}}},
    }
    # JSON is YAML: no YAML library is needed on the host, and every Compose reads it.
    return json.dumps({"services": {SERVICE: service}}, indent=2) + "\n"


def form_for(access: str) -> str:
    """The device request that matches the access path that passed the visibility proof."""
    return "cdi" if access == "cdi-all" else "nvidia"


def up_argv(compose: Sequence[str], file: Path) -> list[str]:
    return [
        *compose, "-f", str(file), "-p", PROJECT, "up", "--abort-on-container-exit",
        "--exit-code-from", SERVICE, "--no-color",
    ]  # fmt: skip


def down_argv(compose: Sequence[str], file: Path) -> list[str]:
    return [*compose, "-f", str(file), "-p", PROJECT, "down", "--remove-orphans"]


def judge_compose(
    form: str,
    argv: Sequence[str],
    exit_code: int,
    output: str,
    host_uuids: Sequence[str],
    probe: bool,
) -> ComposeResult:
    """What ``compose up`` proved, from its exit code and everything it printed."""
    output = _ESCAPES.sub("", output)
    host = tuple(host_uuids)
    # Compose goes on printing (stopping, removing) after Docker's error: keep its error
    # lines whatever follows them, then the last lines.
    errors = [line.strip() for line in output.splitlines() if "rror" in line][-3:]
    lines = list(dict.fromkeys([*errors, *tail(output, 8)]))
    if probe:
        # Compose prefixes each line of the service ("gpu-proof-1  | {...}").
        report = computeproof.parse_report(
            "\n".join(line.split("|", 1)[-1].strip() for line in output.splitlines())
        )
        gpus = report.get("gpus", []) if report else []
        seen = tuple(str(g.get("uuid", "")) for g in gpus if isinstance(g, dict))
        compute_ok: bool | None = bool(gpus) and all(g.get("passed") for g in gpus)
    else:
        seen = containers.parse_gpu_list(
            "\n".join(line.split("|", 1)[-1].strip() for line in output.splitlines())
        )
        compute_ok = None
    error = ""
    if NO_NVIDIA_DRIVER in output:
        error = (
            "Docker has no NVIDIA device driver for the compose service's GPU reservation "
            "(driver: nvidia): the toolkit's nvidia-container-runtime-hook is not installed "
            "or Docker was not restarted after the runtime was configured"
        )
    elif HOOK_GONE in output:
        error = (
            "Docker's NVIDIA device driver for the compose service's GPU reservation "
            "(driver: nvidia) cannot run nvidia-container-runtime-hook: the toolkit was "
            "removed after Docker started; install it again, or restart Docker"
        )
    elif exit_code != 0 and not seen:
        error = "compose up failed: " + (" / ".join(lines) or f"exit {exit_code}")
    elif sorted(seen) != sorted(host):
        error = f"the compose service saw {list(seen) or 'no GPU'}, the host has {list(host)}"
    elif compute_ok is False:
        error = "the compose service saw the GPUs but the compute probe failed: " + " / ".join(
            lines
        )
    return ComposeResult(
        form, tuple(argv), exit_code, host, seen, compute_ok, error, "\n".join(lines)
    )


def compose_failure(result: ComposeResult) -> GpubundleError:
    return GpubundleError(
        f"the compose GPU service failed: {result.error}",
        hint="fix what the detail says and run install again; the compose file is in "
        "docs/installing.md",
        details=[f"command: {' '.join(result.argv)} (exit {result.exit_code})", result.output],
    )


# --- effects ------------------------------------------------------------------------


def find_compose(env: Mapping[str, str] | None = None) -> list[str] | None:
    """How to call Compose here: ``docker compose`` (the v2 plugin) or ``docker-compose``."""
    if run(["docker", "compose", "version"], check=False, env=env, timeout=60).returncode == 0:
        return ["docker", "compose"]
    legacy = shutil.which("docker-compose")
    if legacy and run([legacy, "version"], check=False, env=env, timeout=60).returncode == 0:
        return [legacy]
    return None


def run_compose(
    compose: Sequence[str],
    image: str,
    form: str,
    host_uuids: Sequence[str],
    *,
    probe: bool,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> ComposeResult:
    """Write the proof's compose file in a temporary directory, bring it up, take it down."""
    with tempfile.TemporaryDirectory(prefix="gpubundle-compose-") as work:
        file = Path(work) / "compose.yaml"
        file.write_text(compose_file(image, form, probe))
        argv = up_argv(compose, file)
        try:
            proc = run(argv, check=False, env=env, timeout=timeout)
        finally:
            run(down_argv(compose, file), check=False, env=env, timeout=120)
    output = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    return judge_compose(form, argv, proc.returncode, output, host_uuids, probe)
