"""The container engine on this host: which Docker, where its config lives, how to restart it.

Hosts differ: systemd (``systemctl restart docker``), a SysV init script that owns the
running daemon (``service docker restart``), or no init system at all (WSL2, minimal
images, the air-gapped GPU host, CI), where gpubundle stops the running ``dockerd``
itself and starts it again detached, with the same arguments it ran with
(``installer.engines.daemon``, shared with containerd). Snap's Docker is confined and
cannot use the NVIDIA Container Toolkit from apt. ``installer.engines.docker`` is the
engine adapter install, uninstall and the plans use. The host's files (daemon.json, snap's
paths, the init script and its pidfile, /proc) are ``HostPaths``', passed in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from installer import invocation
from installer.compat import removeprefix
from installer.engines import daemon
from installer.engines.daemon import RestartOutcome, is_systemd, process_environ
from installer.errors import GpubundleError
from installer.hostpaths import HostPaths
from installer.runner import run, tail

__all__ = ["RestartOutcome", "is_systemd", "process_environ"]  # shared daemon control

DEFAULT_HOST = "unix:///var/run/docker.sock"
DOCKER_PACKAGES = ("docker-ce", "docker.io", "moby-engine")
SNAP_PROBLEM = (
    "Docker is installed as a snap; its confinement keeps it from using the NVIDIA "
    "Container Toolkit installed with apt. Remove the snap (snap remove docker), build a "
    "bundle that carries Docker (gpubundle build … --with-docker, on the connected "
    f"machine) and install that one: {invocation.rerun_install()}"
)


@dataclass(frozen=True)
class EngineFacts:
    kind: str  # "docker.io" | "docker-ce" | "snap" | "none"
    version: str
    running: bool
    daemon_json: Path
    systemd: bool
    problem: str
    pid: int = 0  # the running dockerd, 0 when none was found
    argv: tuple[str, ...] = field(default=())  # its command line, to start it the same way
    sysv_managed: bool = False  # the running dockerd is the SysV script's


# --- pure decisions -----------------------------------------------------------------


def parse_dpkg_query(text: str) -> str:
    """The installed Docker package from ``dpkg-query -W -f='${Package} ${Status}\\n'``."""
    installed = {
        line.split()[0]
        for line in text.splitlines()
        if line.strip().endswith("install ok installed")
    }
    return next((p for p in DOCKER_PACKAGES if p in installed), "")


def config_file_from_argv(argv: Sequence[str]) -> Path | None:
    """``--config-file`` of a dockerd command line, if given."""
    for i, arg in enumerate(argv):
        if arg == "--config-file" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--config-file="):
            return Path(arg.split("=", 1)[1])
    return None


def choose_restart_method(facts: EngineFacts, *, sysv_script: bool) -> str:
    """systemctl under systemd; the SysV script when it owns (or may start) the daemon; else direct."""
    if facts.kind == "snap":
        raise GpubundleError("cannot restart snap's Docker for the NVIDIA runtime", SNAP_PROBLEM)
    if facts.systemd:
        return "systemctl"
    if sysv_script and (facts.sysv_managed or not facts.running):
        return "service"
    return "direct"


def restart_argv(method: str, verb: str = "restart") -> list[str]:
    return daemon.init_argv(method, "docker", verb)


def dockerd_argv(facts: EngineFacts) -> list[str]:
    """How to start dockerd again: as it ran before, else plainly."""
    return list(facts.argv) if facts.argv else ["dockerd"]


# --- reading the host ---------------------------------------------------------------


def hosts_from_argv(argv: Sequence[str]) -> tuple[str, ...]:
    """The sockets a dockerd command line listens on (``-H``/``--host``); default when none."""
    hosts = []
    for i, arg in enumerate(argv):
        if arg in ("-H", "--host") and i + 1 < len(argv):
            hosts.append(argv[i + 1])
        elif arg.startswith("--host="):
            hosts.append(arg.split("=", 1)[1])
        elif arg.startswith("-H") and len(arg) > 2:
            hosts.append(arg[2:].lstrip("="))
    return tuple(hosts) or (DEFAULT_HOST,)


def _same_socket(a: str, b: str) -> bool:
    def norm(host: str) -> str:
        path = removeprefix(host, "unix://")
        return removeprefix(path, "/var") if path.startswith("/var/run/") else path

    return norm(a) == norm(b)


def target_host() -> str:
    """The daemon the docker CLI talks to: DOCKER_HOST, else the default socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def find_dockerd(proc: Path, host: str | None = None) -> tuple[int, tuple[str, ...]]:
    """Pid and command line of the dockerd serving ``host`` (0, () when none runs).

    Other dockerd processes (a test's private daemon, rootless Docker) are left alone;
    under systemd (``-H fd://``) the first dockerd is the one.
    """
    wanted = host or target_host()
    for pid, argv in daemon.processes_named(proc, "dockerd"):
        hosts = hosts_from_argv(argv)
        if any(h == "fd://" or _same_socket(h, wanted) for h in hosts):
            return pid, argv
    return 0, ()


def ping_argv() -> list[str]:
    return ["docker", "version", "--format", "{{.Server.Version}}"]


def ping(timeout: float = 5.0) -> str:
    """The server version when the daemon answers, else "" (``docker version``)."""
    try:
        proc = run(ping_argv(), check=False, timeout=timeout)
    except GpubundleError:
        return ""
    return proc.stdout.decode().strip() if proc.returncode == 0 else ""


def docker_runtimes(timeout: float = 30) -> set[str]:
    """Runtime names the running daemon knows (``docker info``), empty when it does not answer."""
    try:
        proc = run(
            ["docker", "info", "--format", "{{json .Runtimes}}"], check=False, timeout=timeout
        )
    except GpubundleError:
        return set()
    if proc.returncode != 0:
        return set()
    try:
        data = json.loads(proc.stdout.decode() or "{}")
    except ValueError:
        return set()
    return set(data) if isinstance(data, dict) else set()


def detect_engine(host: HostPaths) -> EngineFacts:
    """Docker on ``host``: its package, its running dockerd and how it runs, its daemon.json."""
    systemd = is_systemd(host.proc / "1" / "comm")
    if any(p.exists() for p in host.docker_snap_paths):
        return EngineFacts("snap", "", False, host.docker_snap_daemon_json, systemd, SNAP_PROBLEM)
    try:
        listing = run(
            ["dpkg-query", "-W", "-f=${Package} ${Status}\n", *DOCKER_PACKAGES], check=False
        )
        kind = parse_dpkg_query(listing.stdout.decode(errors="replace"))
    except GpubundleError:
        kind = ""
    pid, argv = find_dockerd(host.proc)
    daemon_json = config_file_from_argv(argv) or host.docker_daemon_json
    version = ping() if pid else ""
    sysv_managed = bool(pid) and _read_pid(host.docker_sysv_pidfile) == pid
    problem = ""
    if not kind:
        kind = "none"
        problem = "no Docker engine is installed; install docker.io (or docker-ce) first"
    elif pid and not version:
        problem = f"dockerd (pid {pid}) runs but does not answer on its socket"
    return EngineFacts(
        kind, version, bool(version), daemon_json, systemd, problem, pid, argv, sysv_managed
    )


def _read_pid(pidfile: Path) -> int:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return 0


# --- acting -------------------------------------------------------------------------


def restart_engine(
    facts: EngineFacts,
    log_dir: Path,
    *,
    stop_timeout: float = 60,
    env: dict[str, str] | None = None,
    sysv_script: Path,
    proc_dir: Path,
) -> RestartOutcome:
    """Restart Docker the way this host manages it, so it re-reads daemon.json.

    Started directly, dockerd gets ``facts.argv`` and ``env`` (default: the running
    daemon's own environment, read under ``proc_dir``: ``HostPaths.proc``), so it comes back as
    it was, not with ours. ``sysv_script``: ``HostPaths.docker_sysv_script``.
    """
    method = choose_restart_method(facts, sysv_script=sysv_script.exists())
    if method in ("systemctl", "service"):
        proc = run(restart_argv(method), check=False, timeout=120)
        if proc.returncode == 0 or method == "systemctl":
            if proc.returncode != 0:
                raise GpubundleError(
                    "systemctl restart docker failed",
                    hint="read `journalctl -u docker`, fix the cause, then re-run",
                    details=tail(proc.stderr.decode(errors="replace")),
                )
            return RestartOutcome(method, 0, "")
        # The init script did not work on this host: run dockerd ourselves.
    if env is None and facts.pid:
        env = process_environ(facts.pid, proc_dir)
    if facts.pid:
        daemon.stop_process(facts.pid, stop_timeout, "dockerd")
    return daemon.start_detached(dockerd_argv(facts), log_dir, env=env, log_name="dockerd.log")


def stop_engine(facts: EngineFacts, *, sysv_script: Path, timeout: float = 60) -> None:
    """Stop Docker the way this host manages it (before its package is removed)."""
    if not facts.running:
        return
    method = choose_restart_method(facts, sysv_script=sysv_script.exists())
    if method in ("systemctl", "service"):
        proc = run(restart_argv(method, "stop"), check=False, timeout=120)
        if proc.returncode == 0:
            return
        if method == "systemctl":
            raise GpubundleError(
                "systemctl stop docker failed",
                hint="read `journalctl -u docker`, stop Docker yourself, then re-run",
                details=tail(proc.stderr.decode(errors="replace")),
            )
    if facts.pid:  # SIGTERM and wait; dockerd stops its containers, removes its pidfile
        daemon.stop_process(facts.pid, timeout, "dockerd")


def wait_until_ready(
    timeout: float = 60,
    outcome: RestartOutcome | None = None,
    *,
    probe: Callable[[float], str] = ping,
    name: str = "Docker",
) -> str:
    """Wait for the daemon to answer; return its version. Fails fast if the one we started exits."""
    return daemon.wait_until_ready(timeout, outcome, probe=probe, name=name)
