"""containerd and CRI-O on this host: is it there, which daemon, how to restart it, is it up.

containerd is restarted like dockerd (``installer.engines.daemon``): ``systemctl restart
containerd`` under systemd, ``service containerd restart`` where an init script exists,
otherwise the running ``containerd`` (the one reading the configured file) is stopped by
its pid and started again detached with its own command line and environment, logging
to ``LOG_DIR/containerd.log``. The containerd that dockerd starts for itself
(``--config /var/run/docker/containerd/containerd.toml``) is never taken for it.
Readiness: ``ctr --address SOCKET version`` answers. CRI-O is restarted only through
systemctl or its init script; without either, gpubundle says so and stops.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from installer import invocation
from installer.engines import daemon
from installer.engines.daemon import RestartOutcome
from installer.errors import GpubundleError
from installer.hostpaths import HostPaths
from installer.runner import run, tail

CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
CRIO_SOCKET = "/var/run/crio/crio.sock"
DOCKERS_CONTAINERD = "/var/run/docker/containerd/"  # dockerd's own; never ours to touch
BINARIES = {"containerd": "containerd", "crio": "crio"}
PACKAGES = {"containerd": "containerd, containerd.io or docker.io", "crio": "cri-o"}


@dataclass(frozen=True)
class CriFacts:
    kind: str  # "containerd" | "crio" | "none"
    version: str
    running: bool
    config: Path
    systemd: bool
    problem: str
    pid: int = 0
    argv: tuple[str, ...] = field(default=())
    socket: str = CONTAINERD_SOCKET


# --- pure decisions -----------------------------------------------------------------


def config_from_argv(argv: Sequence[str]) -> Path | None:
    """``--config``/``-c`` of a containerd or crio command line."""
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1])
    return None


def grpc_address(text: str, default: str = CONTAINERD_SOCKET) -> str:
    """``[grpc] address`` of a containerd config, read line by line (no TOML library)."""
    table = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            table = stripped.strip("[] \t")
            continue
        match = re.match(r"""address\s*=\s*["']([^"']+)["']""", stripped)
        if match and table == "grpc":
            return match.group(1)
    return default


def is_ours(argv: Sequence[str], config: Path, default: Path) -> bool:
    """This containerd reads ``config`` (no --config means the default file)."""
    given = config_from_argv(argv)
    if given is not None and str(given).startswith(DOCKERS_CONTAINERD):
        return False
    return (given or default) == config


def choose_restart_method(runtime: str, *, systemd: bool, init_script: bool) -> str:
    if systemd:
        return "systemctl"
    if init_script:
        return "service"
    if runtime == "containerd":
        return "direct"
    raise GpubundleError(
        f"cannot restart {runtime}: this host has neither systemd nor /etc/init.d/{runtime}",
        hint=f"restart {runtime} the way it is run here, then re-run {invocation.rerun_install()}",
    )


def restart_argv(runtime: str, method: str) -> list[str]:
    return daemon.init_argv(method, runtime)


def ready_argv(runtime: str, socket: str) -> list[str]:
    if runtime == "containerd":
        return ["ctr", "--address", socket, "version"]
    return ["crictl", "--runtime-endpoint", f"unix://{socket}", "version"]


def parse_server_version(text: str) -> str:
    """The server version from ``ctr version`` / ``crictl version`` output."""
    server = text.split("Server:", 1)[-1]
    match = re.search(r"RuntimeVersion:\s*(\S+)", server) or re.search(
        r"^\s*Version:\s*(\S+)", server, re.M
    )
    return match.group(1) if match else ""


# --- reading the host ---------------------------------------------------------------


def find_daemon(
    runtime: str, config: Path, proc: Path, default: Path
) -> tuple[int, tuple[str, ...]]:
    """Pid and command line of the daemon in ``proc`` that reads ``config`` (``default``:
    the file it reads when not told ``--config``); (0, ()) when none runs."""
    for pid, argv in daemon.processes_named(proc, BINARIES[runtime]):
        if is_ours(argv, config, default):
            return pid, argv
    return 0, ()


def ping(runtime: str, socket: str, timeout: float = 5) -> str:
    try:
        proc = run(ready_argv(runtime, socket), check=False, timeout=timeout)
    except GpubundleError:
        return ""
    return parse_server_version(proc.stdout.decode()) if proc.returncode == 0 else ""


def detect(runtime: str, host: HostPaths, config: Path | None = None) -> CriFacts:
    """``runtime`` on ``host``, reading ``config`` (default: ``host.cri_config(runtime)``)."""
    default = host.cri_config(runtime)
    config = config or default
    systemd = daemon.is_systemd(host.proc / "1" / "comm")
    pid, argv = find_daemon(runtime, config, host.proc, default)
    socket = CRIO_SOCKET if runtime == "crio" else CONTAINERD_SOCKET
    if runtime == "containerd":
        with contextlib.suppress(OSError):
            socket = grpc_address(config.read_text(errors="replace"))
    if shutil.which(BINARIES[runtime]) is None:
        return CriFacts(
            "none", "", False, config, systemd, f"{runtime} is not installed", socket=socket
        )
    version = ping(runtime, socket) if pid or systemd else ""
    problem = (
        f"{runtime} (pid {pid}) runs but does not answer on {socket}" if pid and not version else ""
    )
    return CriFacts(runtime, version, bool(version), config, systemd, problem, pid, argv, socket)


# --- acting -------------------------------------------------------------------------


def restart(
    facts: CriFacts, log_dir: Path, *, init_script: Path, proc_dir: Path, stop_timeout: float = 60
) -> RestartOutcome:
    """Restart containerd or CRI-O the way this host runs it, so it re-reads its config
    (``init_script``: ``HostPaths.init_script(runtime)``, used where it exists; ``proc_dir``:
    ``HostPaths.proc``, where a daemon run directly has its environment read)."""
    runtime = facts.kind
    script = init_script.exists()
    method = choose_restart_method(runtime, systemd=facts.systemd, init_script=script)
    if method != "direct":
        proc = run(restart_argv(runtime, method), check=False, timeout=120)
        if proc.returncode != 0:
            raise GpubundleError(
                f"{' '.join(restart_argv(runtime, method))} failed",
                hint=f"read {runtime}'s log (journalctl -u {runtime}), fix the cause, then re-run",
                details=tail(proc.stderr.decode(errors="replace")),
            )
        return RestartOutcome(method, 0, "")
    env = daemon.process_environ(facts.pid, proc_dir) if facts.pid else None
    if facts.pid:
        daemon.stop_process(facts.pid, stop_timeout, runtime)
    argv = list(facts.argv) or ["containerd", "--config", str(facts.config)]
    return daemon.start_detached(argv, log_dir, env=env, log_name="containerd.log")


def wait_until_ready(facts: CriFacts, outcome: RestartOutcome, timeout: float = 60) -> str:
    """Wait until the daemon answers on its socket; its version. Fails fast if ours exits."""
    return daemon.wait_until_ready(
        timeout, outcome, probe=lambda t: ping(facts.kind, facts.socket, t), name=facts.kind
    )
