"""Gathering what the Docker engine looks like: installed from where, running since
when, what daemon.json and ``docker info`` say, and which CDI specs lie where.

Everything here has side effects (files, /proc, the docker CLI); the judging is
in ``installer.doctor.engine``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from installer import cdispec, engine, engines, nvidiasmi
from installer.doctor.checks import DoctorPaths
from installer.doctor.toolkit import installed_packages
from installer.runner import run

DOCKER = engines.adapter_for("docker")  # what the doctor knows of Docker, it asks the adapter
DOCKER_PACKAGES = DOCKER.packages
HOOK = "nvidia-container-runtime-hook"


@dataclass(frozen=True)
class DaemonJson:
    path: Path
    exists: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)
    error: str = ""  # why it could not be read or parsed
    mtime: float | None = None


@dataclass(frozen=True)
class CdiSpec:
    path: Path
    kind: str
    host_paths: tuple[str, ...]
    missing: tuple[str, ...]  # host paths it names that do not exist
    driver_versions: tuple[str, ...] = ()  # the driver it was generated for
    container_paths: frozenset[str] = frozenset()  # what it mounts, inside the container
    smi_container_path: str = ""  # where it mounts nvidia-smi, "" when it does not
    smi: nvidiasmi.SmiFile | None = None  # the host file it mounts there


@dataclass(frozen=True)
class DockerFacts:
    source: str  # "docker-ce" | "docker.io" | "moby-engine" | "snap" | "other" | "none"
    daemon_json: DaemonJson  # read from DoctorPaths.daemon_json
    cli: str = ""
    info: Mapping[str, Any] | None = None  # `docker info` as JSON; None when the daemon is down
    info_error: str = ""
    dockerd_started_at: float | None = None
    toolkit_installed_at: float | None = None
    hook_path: str = ""  # nvidia-container-runtime-hook on PATH, or ""
    runtime_binaries: Mapping[str, str] = field(default_factory=dict)  # name -> resolved or ""
    cdi_dirs: tuple[Path, ...] = ()
    cdi_specs: tuple[CdiSpec, ...] = ()
    driver_version: str = ""  # the loaded NVIDIA driver's, "" when none


def read_daemon_json(path: Path) -> DaemonJson:
    try:
        raw = path.read_bytes()
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return DaemonJson(path)
    except OSError as exc:
        return DaemonJson(path, True, error=str(exc))
    if not raw.strip():
        return DaemonJson(path, True, mtime=mtime)
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return DaemonJson(path, True, error=f"not valid JSON: {exc}", mtime=mtime)
    if not isinstance(data, dict):
        return DaemonJson(path, True, error="not a JSON object", mtime=mtime)
    return DaemonJson(path, True, data, mtime=mtime)


def docker_info(env: Mapping[str, str]) -> tuple[dict[str, Any] | None, str]:
    proc = run(["docker", "info", "--format", "{{json .}}"], env=env, check=False, timeout=30)
    out = proc.stdout.decode(errors="replace").strip()
    err = proc.stderr.decode(errors="replace").strip()
    try:
        info = json.loads(out) if out else None
    except ValueError:
        info = None
    if proc.returncode != 0 or not isinstance(info, dict) or info.get("ServerErrors"):
        errors = info.get("ServerErrors") if isinstance(info, dict) else None
        return None, "; ".join(errors) if errors else (err or out or "docker info failed")
    return info, ""


def process_start_time(proc_root: Path, pid: int) -> float | None:
    """When ``pid`` started, in seconds since the epoch (from /proc/PID/stat and btime)."""
    try:
        stat_line = (proc_root / str(pid) / "stat").read_text()
        btime_line = next(
            line
            for line in (proc_root / "stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration):
        return None
    fields = stat_line.rsplit(")", 1)[1].split()
    ticks = int(fields[19])  # field 22 overall; fields after "comm)" start at field 3
    return int(btime_line.split()[1]) + ticks / os.sysconf("SC_CLK_TCK")


def dockerd_pid(pidfile: Path, proc_root: Path, host: str = "") -> int | None:
    """The running dockerd: its pidfile's, the only one, or the one serving ``host``."""
    try:
        pid = int(pidfile.read_text().strip())
        if (proc_root / str(pid)).exists():
            return pid
    except (OSError, ValueError):
        pass
    candidates = []
    for entry in proc_root.iterdir() if proc_root.is_dir() else []:
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "dockerd":
                    candidates.append(int(entry.name))
            except OSError:
                continue
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        return None
    # Several (a test's private daemon, rootless Docker): the one the CLI talks to,
    # found as install and the engine adapter find it.
    return engine.find_dockerd(proc_root, host or None)[0] or None


def docker_source(paths: DoctorPaths, cli: str) -> str:
    if cli.startswith("/snap/") or paths.snap_docker.exists():
        return "snap"
    installed = installed_packages(paths.dpkg_admindir, DOCKER_PACKAGES)
    for name in DOCKER_PACKAGES:
        if name in installed and installed[name].status == "ii":
            return name
    return "other" if cli or shutil.which("dockerd") else "none"


def read_cdi_specs(dirs: tuple[Path, ...]) -> tuple[CdiSpec, ...]:
    """NVIDIA's CDI specs (``kind: nvidia.com/…``) in ``dirs``; YAML read line-wise, stdlib only."""
    specs = []
    for directory in dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.suffix not in (".yaml", ".yml", ".json"):
                continue
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            kind, host_paths = _scan_spec(text)
            if kind.startswith("nvidia.com/"):
                missing = tuple(p for p in host_paths if not os.path.lexists(p))
                facts = cdispec.parse_spec(text)
                mount = facts.nvidia_smi()
                specs.append(
                    CdiSpec(
                        path,
                        kind,
                        host_paths,
                        missing,
                        facts.driver_versions,
                        facts.container_paths,
                        mount.container_path if mount else "",
                        nvidiasmi.inspect(mount.host_path) if mount else None,
                    )
                )
    return tuple(specs)


def _scan_spec(text: str) -> tuple[str, tuple[str, ...]]:
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return "", ()
        found: list[str] = []
        _collect_json_paths(data, found)
        return str(data.get("kind", "")), tuple(found)
    kind = ""
    host_paths = []
    for line in text.splitlines():
        key, _, value = line.strip().lstrip("- ").partition(":")
        value = value.strip().strip("'\"")
        if key == "kind" and not kind:
            kind = value
        elif key in ("hostPath", "path") and value.startswith("/"):
            host_paths.append(value)
    return kind, tuple(dict.fromkeys(host_paths))


def _collect_json_paths(node: Any, out: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("hostPath", "path") and isinstance(value, str) and value.startswith("/"):
                out.append(value)
            else:
                _collect_json_paths(value, out)
    elif isinstance(node, list):
        for item in node:
            _collect_json_paths(item, out)


def gather_docker(paths: DoctorPaths, driver_version: str = "") -> DockerFacts:
    cli = shutil.which("docker") or ""
    daemon = read_daemon_json(paths.daemon_json)
    info, info_error = docker_info(paths.docker_env()) if cli else (None, "docker CLI not found")
    pid = (
        dockerd_pid(paths.docker_pidfile, paths.proc, paths.docker_host)
        if info is not None
        else None
    )
    listing = paths.dpkg_admindir / "info" / "nvidia-container-toolkit.list"
    runtimes = (
        daemon.data.get("runtimes", {}) if isinstance(daemon.data.get("runtimes"), dict) else {}
    )
    binaries = {
        name: shutil.which(str(spec.get("path", ""))) or "" if isinstance(spec, dict) else ""
        for name, spec in runtimes.items()
    }
    return DockerFacts(
        source=docker_source(paths, cli),
        cli=cli,
        info=info,
        info_error=info_error,
        daemon_json=daemon,
        dockerd_started_at=process_start_time(paths.proc, pid) if pid else None,
        toolkit_installed_at=listing.stat().st_mtime if listing.exists() else None,
        hook_path=shutil.which(HOOK) or "",
        runtime_binaries=binaries,
        cdi_dirs=paths.cdi_dirs,
        cdi_specs=read_cdi_specs(paths.cdi_dirs),
        driver_version=driver_version,
    )
