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

from installer import layout
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
    """Every host path (and the Docker endpoint) the doctor reads; tests point them at fixtures."""

    daemon_json: Path = Path("/etc/docker/daemon.json")
    docker_pidfile: Path = Path("/var/run/docker.pid")
    docker_host: str = ""  # DOCKER_HOST for the docker CLI; empty = its default
    config_toml: Path = Path("/etc/nvidia-container-runtime/config.toml")
    cdi_dirs: tuple[Path, ...] = (Path("/etc/cdi"), Path("/var/run/cdi"))
    proc: Path = Path("/proc")
    dpkg_admindir: Path = Path("/var/lib/dpkg")
    dev_char: Path = Path("/dev/char")
    selinux_enforce: Path = Path("/sys/fs/selinux/enforce")
    snap_docker: Path = Path("/snap/bin/docker")
    record: Path = HostPaths.system().record
    log_dir: Path = Path(layout.LOG_DIR)
    images: tuple[str, ...] = ()  # extra images to check (doctor --image)
    root: Path = Path("/")  # where paths from dpkg's file lists are looked up
    search_path: str | None = None  # PATH for finding programs; None = this process's PATH

    @classmethod
    def on(cls, host: HostPaths, **others: Any) -> DoctorPaths:
        """The doctor's paths on ``host``: its install record and logs; ``others`` as given."""
        return cls(record=host.record, log_dir=host.log_dir, **others)

    def docker_env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.docker_host} if self.docker_host else {}
