"""Engine checks: Docker installed from a usable source, running, the nvidia runtime
registered both in daemon.json and in the running daemon, the daemon restarted since
the toolkit arrived, no dangling ``default-runtime``, and CDI specs that match the driver
and mount an ``nvidia-smi`` that runs in containers."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from installer import invocation, nvidiasmi
from installer.doctor.checks import Finding, failure, ok, skipped, warning
from installer.doctor.dockerfacts import CdiSpec, DockerFacts
from installer.layout import REPO_DEBS_DIR, STATE_DIR

# Runtimes dockerd knows without daemon.json.
BUILTIN_RUNTIMES = frozenset({"runc", "io.containerd.runc.v2", "io.containerd.runtime.v1.linux"})
NVIDIA_RUNTIME = "nvidia"
CONFIGURE = "nvidia-ctk runtime configure --runtime=docker"
RESTART = "systemctl restart docker  # or: service docker restart"
START = "systemctl start docker  # or: service docker start"
CDI_GENERATE = "nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"
# Docker is not in every bundle; the air-gapped host cannot fetch it from the network.
DOCKER_FROM_BUNDLE = (
    "on the connected machine: gpubundle build --distro DISTRO --with-docker …  "
    "# a bundle that carries Docker"
)
BUNDLED_DEBS = f"{STATE_DIR}/bundles/*/{REPO_DEBS_DIR}"
CLOCK_SLACK_S = 2.0
CDI_MIN_DOCKER = 25


def _runtimes(data: Mapping[str, Any]) -> dict[str, Any]:
    value = data.get("runtimes")
    return dict(value) if isinstance(value, dict) else {}


def check_installed(f: DockerFacts) -> Finding:
    cid = "engine.installed"
    if f.source == "none":
        return failure(
            cid,
            "Docker is not installed",
            [],
            [DOCKER_FROM_BUNDLE, f"then: {invocation.rerun_install()}  # with that bundle"],
        )
    if f.source == "snap":
        return failure(
            cid,
            "Docker is installed as a snap, which cannot use the NVIDIA Container Toolkit",
            [f"docker CLI: {f.cli or 'not on PATH'}"],
            [
                "snap remove docker",
                DOCKER_FROM_BUNDLE,
                f"then: {invocation.rerun_install()}  # with that bundle",
            ],
        )
    version = str(f.info.get("ServerVersion", "")) if f.info else ""
    return ok(cid, f"Docker from {f.source}" + (f" {version}" if version else ""), [f.cli])


def check_running(f: DockerFacts) -> Finding:
    cid = "engine.running"
    if f.source == "none":
        return skipped(cid, "Docker is not installed")
    if f.info is None:
        return failure(
            cid, "the Docker daemon does not answer", [f.info_error], [START, "docker info"]
        )
    return ok(cid, "the Docker daemon answers", [f"server version {f.info.get('ServerVersion')}"])


def check_daemon_json(f: DockerFacts) -> Finding:
    cid = "engine.daemon-json"
    dj = f.daemon_json
    if dj.error:
        return failure(
            cid,
            f"{dj.path} cannot be read: dockerd will refuse to start",
            [dj.error],
            [f"python3 -m json.tool {dj.path}  # shows where it breaks", f"edit {dj.path}"],
        )
    if not dj.exists:
        return ok(cid, f"{dj.path} does not exist (Docker's defaults)")
    return ok(cid, f"{dj.path} is valid JSON")


def check_nvidia_runtime(f: DockerFacts) -> Finding:
    cid = "engine.nvidia-runtime"
    if f.source == "none":
        return skipped(cid, "Docker is not installed")
    in_file = NVIDIA_RUNTIME in _runtimes(f.daemon_json.data)
    evidence = [f"{f.daemon_json.path}: runtimes = {sorted(_runtimes(f.daemon_json.data))}"]
    if f.info is None:
        if in_file:
            return ok(cid, "nvidia runtime is in daemon.json (daemon not running)", evidence)
        return failure(cid, "nvidia runtime is not in daemon.json", evidence, [CONFIGURE])
    live = sorted((f.info.get("Runtimes") or {}).keys())
    evidence.append(f"docker info: Runtimes = {live}")
    if NVIDIA_RUNTIME in live:
        binary = f.runtime_binaries.get(NVIDIA_RUNTIME, "")
        if in_file and not binary:
            path = _runtimes(f.daemon_json.data)[NVIDIA_RUNTIME]
            return failure(
                cid,
                "the nvidia runtime's binary is missing",
                [*evidence, f"path: {path}"],
                [
                    f"dpkg -i {BUNDLED_DEBS}/nvidia-container-toolkit-base_*.deb  "
                    "# the bundle's copy, offline",
                    "or: " + CONFIGURE,
                ],
            )
        return ok(cid, "nvidia runtime registered and loaded by the daemon", evidence)
    if in_file:
        return failure(
            cid,
            "nvidia runtime is in daemon.json but the running daemon has not loaded it",
            evidence,
            [RESTART],
        )
    return failure(
        cid, "nvidia runtime is not registered with Docker", evidence, [CONFIGURE, RESTART]
    )


def check_restarted(f: DockerFacts) -> Finding:
    """dockerd registers its ``--gpus`` driver only if the hook was on PATH when it started."""
    cid = "engine.restarted"
    if f.info is None:
        return skipped(cid, "the Docker daemon is not running")
    if f.dockerd_started_at is None:
        return skipped(cid, "cannot tell when dockerd started (pidfile or /proc not readable)")
    started = f.dockerd_started_at
    evidence = [f"dockerd started {_when(started)}"]
    # /proc's boot time is whole seconds: allow that much slack either way.
    started += CLOCK_SLACK_S
    toolkit_newer = f.toolkit_installed_at is not None and f.toolkit_installed_at > started
    if f.toolkit_installed_at is not None:
        evidence.append(f"nvidia-container-toolkit installed {_when(f.toolkit_installed_at)}")
    mtime = f.daemon_json.mtime
    if mtime is not None:
        evidence.append(f"{f.daemon_json.path} changed {_when(mtime)}")
    if toolkit_newer:
        return failure(
            cid,
            "Docker has not been restarted since the NVIDIA Container Toolkit was installed: "
            "`docker run --gpus` fails with "
            "'could not select device driver \"\" with capabilities: [[gpu]]'",
            evidence,
            [RESTART],
        )
    if mtime is not None and mtime > started:
        return warning(
            cid,
            f"{f.daemon_json.path} changed after dockerd started: the daemon runs the old settings",
            evidence,
            [RESTART],
        )
    if not f.hook_path:
        return skipped(cid, "nvidia-container-runtime-hook is not installed", evidence)
    return ok(cid, "dockerd started after the toolkit and its configuration", evidence)


def check_default_runtime(f: DockerFacts) -> Finding:
    cid = "engine.default-runtime"
    data = f.daemon_json.data
    name = data.get("default-runtime")
    if not name:
        return ok(cid, "no default-runtime set (runc)")
    evidence = [f"{f.daemon_json.path}: default-runtime = {name}"]
    fix = [f'remove "default-runtime" from {f.daemon_json.path}', RESTART]
    if name not in _runtimes(data) and name not in BUILTIN_RUNTIMES:
        return failure(
            cid,
            f"default-runtime {name!r} names a runtime that is not defined: dockerd will not start",
            evidence,
            fix,
        )
    if name in _runtimes(data) and not f.runtime_binaries.get(str(name)):
        return failure(
            cid,
            f"default-runtime {name!r} points at a binary that no longer exists: "
            "every container fails to start",
            [*evidence, f"path: {_runtimes(data)[name]}"],
            fix,
        )
    return ok(cid, f"default-runtime {name!r} exists", evidence)


def _server_major(f: DockerFacts) -> int:
    match = re.match(r"(\d+)\.", str((f.info or {}).get("ServerVersion", "")))
    return int(match.group(1)) if match else 0


def _cdi_enabled(f: DockerFacts) -> bool | None:
    """CDI on in the daemon? Docker 25+ lists CDISpecDirs in `docker info` when it is."""
    if f.info is not None and f.info.get("CDISpecDirs"):
        return True
    features = f.daemon_json.data.get("features")
    if isinstance(features, dict) and "cdi" in features:
        return bool(features["cdi"])
    # Docker 28.2+ enables CDI by default; before 25 there is none.
    return _server_major(f) >= 29 if f.info is not None else None


def check_cdi(f: DockerFacts) -> Finding:
    cid = "engine.cdi"
    # A stale spec misleads every CDI user (containerd, podman), Docker or not.
    if f.source == "none" and not f.cdi_specs:
        return skipped(cid, "Docker is not installed")
    enabled = _cdi_enabled(f) if f.source != "none" else False
    evidence = [f"CDI spec dirs searched: {', '.join(map(str, f.cdi_dirs))}"]
    evidence += [f"{s.path}: kind {s.kind}" for s in f.cdi_specs]
    if enabled is False and not f.cdi_specs:
        return skipped(cid, "CDI is not enabled in Docker (optional: --gpus works without it)")
    major = _server_major(f)
    if enabled and 0 < major < CDI_MIN_DOCKER:
        return warning(
            cid,
            f"CDI is switched on in daemon.json but Docker {major}.x has no CDI support "
            f"(needs {CDI_MIN_DOCKER}+): `--device nvidia.com/gpu=all` will not work",
            evidence,
            ["docker run --gpus all …  # works without CDI", "or upgrade Docker to 25 or newer"],
        )
    if not f.cdi_specs:
        return warning(
            cid,
            "CDI is enabled but no NVIDIA CDI spec exists: "
            "`--device nvidia.com/gpu=all` fails with 'unresolvable CDI devices'",
            evidence,
            [CDI_GENERATE, "nvidia-ctk cdi list"],
        )
    stale = [f"{s.path} names missing {p}" for s in f.cdi_specs for p in s.missing[:3]]
    stale_specs = [s for s in f.cdi_specs if s.missing]
    if f.driver_version:
        for spec in f.cdi_specs:
            if spec.driver_versions and f.driver_version not in spec.driver_versions:
                stale_specs.append(spec)
                stale.append(
                    f"{spec.path} was generated for driver {', '.join(spec.driver_versions)}, "
                    f"the running driver is {f.driver_version}"
                )
    if stale:
        paths = dict.fromkeys(str(s.path) for s in stale_specs)
        return failure(
            cid,
            "the NVIDIA CDI spec is stale (the driver changed since it was generated): "
            "`--device nvidia.com/gpu=…` mounts files of another driver",
            [*evidence, *stale],
            [
                f"{invocation.rerun_install()}  # generates the spec again for this driver",
                *(f"or: nvidia-ctk cdi generate --output={p}" for p in paths),
            ],
        )
    if f.source == "none":
        return ok(cid, "NVIDIA CDI spec current (Docker is not installed)", evidence)
    if enabled is False and 0 < major < CDI_MIN_DOCKER:
        return ok(
            cid,
            f"NVIDIA CDI spec current; Docker {major}.x has no CDI (--gpus works without it)",
            evidence,
        )
    if enabled is False:
        return warning(
            cid,
            "NVIDIA CDI specs exist but CDI is not enabled in Docker",
            evidence,
            ['add "features": {"cdi": true} to /etc/docker/daemon.json', RESTART],
        )
    return ok(cid, "NVIDIA CDI spec present and current", evidence)


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch))


def _driver_dir_of(smi: nvidiasmi.SmiFile) -> str:
    """The directory of the program a wrapper script runs, if it names one by path."""
    target = next((t for t in smi.targets if t.startswith("/")), "")
    return target.rsplit("/", 1)[0] if target else ""


def _smi_problem(spec: CdiSpec) -> str:
    if spec.smi is None:
        return ""
    return nvidiasmi.judge_mounted(spec.smi, spec.container_paths)


def check_cdi_nvidia_smi(f: DockerFacts) -> Finding:
    """The spec's nvidia-smi must run in a container: not a wrapper of a file left outside."""
    cid = "engine.cdi-nvidia-smi"
    specs = [s for s in f.cdi_specs if s.smi is not None]
    if not f.cdi_specs:
        return skipped(cid, "no NVIDIA CDI spec")
    if not specs:
        return skipped(cid, "the NVIDIA CDI spec mounts no nvidia-smi")
    evidence = [
        f"{s.path} mounts {s.smi.describe()} at {s.smi_container_path}"
        for s in specs
        if s.smi is not None
    ]
    broken = [(s, problem) for s in specs if (problem := _smi_problem(s))]
    if not broken:
        return ok(cid, "the NVIDIA CDI spec mounts an nvidia-smi that runs in containers", evidence)
    fix = []
    for spec, _ in broken:
        assert spec.smi is not None
        directory = _driver_dir_of(spec.smi) or "DIR_OF_THE_DRIVERS_NVIDIA_SMI"
        fix.append(f"PATH={directory}:$PATH nvidia-ctk cdi generate --output={spec.path}")
    fix.append(f"or: {invocation.rerun_install()}  # generates it with the driver's dir first")
    return failure(
        cid,
        "the NVIDIA CDI spec mounts an nvidia-smi that cannot run in a container: "
        "`docker run --device nvidia.com/gpu=all IMAGE nvidia-smi` fails",
        [*evidence, *(problem for _, problem in broken)],
        fix,
    )
