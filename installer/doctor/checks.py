"""The doctor's vocabulary: a finding per check, the host paths checks read, and statuses.

Gathering facts (reading files, asking dpkg and Docker) lives in each family's
``gather_*`` function; judging them lives in pure ``check_*`` functions that
take those facts and return a ``Finding``. Unit tests feed the checks facts
built from fixtures; the doctor command wires the two together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from installer.hostpaths import HostPaths

Status = Literal["ok", "warning", "failure", "skipped"]
STATUSES: tuple[Status, ...] = ("ok", "warning", "failure", "skipped")


@dataclass(frozen=True)
class Finding:
    """One check's verdict, what it saw, and the command(s) that fix it."""

    check_id: str
    status: Status
    summary: str
    evidence: list[str] = field(default_factory=list)
    fix: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ok(check_id: str, summary: str, evidence: Sequence[str] = ()) -> Finding:
    return Finding(check_id, "ok", summary, list(evidence))


def warning(
    check_id: str, summary: str, evidence: Sequence[str] = (), fix: Sequence[str] = ()
) -> Finding:
    return Finding(check_id, "warning", summary, list(evidence), list(fix))


def failure(
    check_id: str, summary: str, evidence: Sequence[str] = (), fix: Sequence[str] = ()
) -> Finding:
    return Finding(check_id, "failure", summary, list(evidence), list(fix))


def skipped(check_id: str, reason: str, evidence: Sequence[str] = ()) -> Finding:
    return Finding(check_id, "skipped", reason, list(evidence))


def worst(findings: Sequence[Finding]) -> Status:
    """The most serious status among ``findings`` (skipped counts as ok)."""
    statuses = {f.status for f in findings}
    status: Status
    for status in ("failure", "warning"):
        if status in statuses:
            return status
    return "ok"


@dataclass(frozen=True)
class DoctorPaths:
    """Every host path (and the Docker endpoint) the doctor reads; tests point them at fixtures.

    ``on`` takes them all from a ``HostPaths`` (``HostPaths.system()`` on a host), so a test
    root's doctor reads that root's files; none has a default naming the host's own."""

    daemon_json: Path
    docker_pidfile: Path
    config_toml: Path
    cdi_dirs: tuple[Path, ...]
    proc: Path
    dpkg_admindir: Path
    dev: Path
    dev_char: Path
    selinux_enforce: Path
    snap_docker: Path
    os_release: Path
    record: Path
    log_dir: Path
    root: Path  # where paths from dpkg's file lists are looked up
    docker_host: str = ""  # DOCKER_HOST for the docker CLI; empty = its default
    images: tuple[str, ...] = ()  # extra images to check (doctor --image)
    search_path: str | None = None  # PATH for finding programs; None = this process's PATH

    @classmethod
    def on(cls, host: HostPaths, **others: Any) -> DoctorPaths:
        """The doctor's paths on ``host`` (every one under its root); ``others`` as given."""
        on_host: dict[str, Any] = {
            "daemon_json": host.docker_daemon_json,
            "docker_pidfile": host.docker_pidfile,
            "config_toml": host.nvidia_runtime_config,
            "cdi_dirs": host.cdi_dirs,
            "proc": host.proc,
            "dpkg_admindir": host.dpkg_admin_dir,
            "dev": host.dev,
            "dev_char": host.dev_char,
            "selinux_enforce": host.selinux_enforce,
            "snap_docker": host.docker_snap_paths[0],
            "os_release": host.os_release_files[0],
            "record": host.record,
            "log_dir": host.log_dir,
            "root": host.root,
        }
        return cls(**{**on_host, **others})

    def docker_env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.docker_host} if self.docker_host else {}
