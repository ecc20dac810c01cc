"""Daemon control shared by every engine: init system or none, stop, start detached, wait.

Under systemd an engine restarts with ``systemctl restart NAME``; where its SysV script
exists, with ``service NAME restart``. Without either (WSL2, minimal images, the
air-gapped GPU host, CI) gpubundle stops the running daemon by its pid (SIGTERM, wait)
and starts it again detached (own session, stdin closed) with the command line and
environment it ran with, logging under gpubundle's log directory. Readiness is an
engine's own probe, polled until it answers; a daemon gpubundle started that exits
meanwhile fails at once with its log's tail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from installer.errors import GpubundleError
from installer.runner import tail


@dataclass(frozen=True)
class RestartOutcome:
    method: str  # "systemctl" | "service" | "direct"
    pid: int  # the daemon started by "direct", else 0
    log: str  # its log file, else ""


def is_systemd(proc1_comm: Path) -> bool:
    """PID 1 is systemd (``proc1_comm``: ``HostPaths.proc / "1" / "comm"``)."""
    try:
        return proc1_comm.read_text().strip() == "systemd"
    except OSError:
        return False


def init_argv(method: str, name: str, verb: str = "restart") -> list[str]:
    """``systemctl VERB NAME`` or ``service NAME VERB``."""
    return {
        "systemctl": ["systemctl", verb, name],
        "service": ["service", name, verb],
    }[method]


def process_state(proc_entry: Path) -> str:
    """The one-letter state of a /proc/PID entry ("Z": zombie); "" when unreadable."""
    try:
        return proc_entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def processes_named(proc: Path, comm: str) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Pid and command line of each live process in ``proc`` (``HostPaths.proc``) whose
    name is ``comm``, by pid; none when ``proc`` cannot be read (a root without /proc)."""
    try:
        entries = sorted(proc.iterdir(), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != comm or process_state(entry) == "Z":
                continue
            raw = (entry / "cmdline").read_bytes()
        except OSError:  # it ended while we looked
            continue
        yield int(entry.name), tuple(a.decode() for a in raw.split(b"\0") if a)


def process_environ(pid: int, proc: Path) -> dict[str, str] | None:
    """A process's environment (a daemon's proxies, PATH), to start its successor the same way
    (``proc``: ``HostPaths.proc``)."""
    try:
        raw = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs if key}


def stop_process(pid: int, timeout: float, name: str = "dockerd") -> None:
    """SIGTERM and wait; the daemon stops its containers and removes its pidfile."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap(pid)
        if not Path(f"/proc/{pid}").exists() or process_state(Path(f"/proc/{pid}")) == "Z":
            return
        time.sleep(0.2)
    raise GpubundleError(
        f"{name} (pid {pid}) did not stop within {timeout:.0f} s",
        hint=f"stop it yourself (kill {pid}), then re-run the same gpubundle command",
    )


def reap(pid: int) -> None:
    """Collect our own child's exit status, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def start_detached(
    argv: Sequence[str],
    log_dir: Path,
    *,
    env: dict[str, str] | None = None,
    log_name: str = "dockerd.log",
) -> RestartOutcome:
    """Start a daemon detached (own session, stdin closed), logging to ``log_dir``/``log_name``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / log_name
    with open(log_path, "ab") as log:
        log.write(f"--- gpubundle starts: {' '.join(argv)}\n".encode())
        log.flush()
        try:
            child = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                env=env,
            )
        except FileNotFoundError as exc:
            raise GpubundleError(
                f"{argv[0]} not found", hint=f"install the package that provides {argv[0]}"
            ) from exc
    return RestartOutcome("direct", child.pid, str(log_path))


def wait_until_ready(
    timeout: float,
    outcome: RestartOutcome | None,
    *,
    probe: Callable[[float], str],
    name: str,
) -> str:
    """Wait for the daemon to answer ``probe``; its version. Fails fast if the one we started exits."""
    deadline = time.monotonic() + timeout
    while True:
        version = probe(5)
        if version:
            return version
        if outcome is not None and outcome.pid:
            reap(outcome.pid)
            entry = Path(f"/proc/{outcome.pid}")
            if not entry.exists() or process_state(entry) == "Z":
                raise GpubundleError(
                    f"{name}'s daemon exited right after starting (see {outcome.log})",
                    hint="fix the daemon configuration it names, then re-run",
                    details=log_tail(outcome.log),
                )
        if time.monotonic() >= deadline:
            raise GpubundleError(
                f"{name} did not answer within {timeout:.0f} s",
                hint=f"check the daemon's log (journalctl -u {name.lower()}, or "
                "/var/log/gpubundle/ where gpubundle started it)",
                details=log_tail(outcome.log) if outcome and outcome.log else (),
            )
        time.sleep(0.5)


def log_tail(path: str, lines: int = 15) -> list[str]:
    try:
        return tail(Path(path).read_text(errors="replace"), lines)
    except OSError:
        return []
