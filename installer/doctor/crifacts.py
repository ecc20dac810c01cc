"""Gathering what containerd and CRI-O look like, through their engine adapters: installed,
answering on their socket, what their configuration files say (and, for containerd, what
the engine itself loads from them: ``containerd --config PATH config dump``), whether the
nvidia runtime's binary is there, and when the daemon started against when its
configuration last changed.

Everything here has side effects (files, /proc, the engines' own commands); the judging
is in ``installer.doctor.cri``.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from installer import criengine, engines, runtime_toml
from installer.doctor import criconfig
from installer.doctor.checks import DoctorPaths
from installer.doctor.dockerfacts import process_start_time
from installer.engines import daemon
from installer.engines.cri import CriAdapter
from installer.hostpaths import HostPaths
from installer.runner import run, tail


@dataclass(frozen=True)
class CriEngineFacts:
    name: str  # the adapter's: containerd | crio
    label: str
    installed: bool
    config_path: Path  # the file install configures (the record's, else the adapter's)
    packages: tuple[str, ...] = ()  # what it is installed as (the adapter's)
    config_files: tuple[Path, ...] = ()  # every file the engine reads, in order, that exists
    config: criconfig.CriConfig | None = None  # None: no file, or it does not parse
    config_error: str = ""
    config_mtime: float | None = None  # the newest of config_files
    running: bool = False  # it answers on its socket
    version: str = ""
    problem: str = ""  # the adapter's word on it ("runs but does not answer …")
    pid: int = 0
    argv: tuple[str, ...] = ()
    probe: str = ""  # the command that asks it whether it answers
    init: str = ""  # how this host restarts it: systemctl | service | "" (neither)
    started_at: float | None = None
    binary: str = ""  # the nvidia runtime's binary, resolved; "" when not found
    binary_executable: bool = False
    loaded: criconfig.CriConfig | None = None  # what the engine itself reads; None: no check
    loaded_error: str = ""
    load_check: str = ""  # the command that shows what it reads
    cdi_specs: tuple[str, ...] = ()  # NVIDIA CDI specs on the host
    recorded: bool = False  # the install record names this engine's change

    @property
    def served_cri(self) -> bool:
        """It runs as a CRI engine (containerd can run with the CRI plugin off)."""
        return self.running and not (self.config is not None and self.config.cri_disabled)


def cri_adapters() -> tuple[CriAdapter, ...]:
    """The adapters of the TOML-configured CRI engines, in ``ENGINES`` order."""
    found = (engines.adapter_for(name) for name in engines.ENGINES)
    return tuple(a for a in found if isinstance(a, CriAdapter))


def engine_files(config: Path) -> tuple[Path, ...]:
    """The files an engine reads for ``config``: the file, or for a drop-in (``X.d/F``)
    the main file ``X`` and every drop-in beside it, in name order."""
    directory = config.parent
    if not directory.name.endswith(".d"):
        return (config,)
    main = directory.parent / directory.name[: -len(".d")]
    drop_ins = sorted(directory.glob("*.toml")) if directory.is_dir() else []
    return (main, *dict.fromkeys([*drop_ins, config]))


def read_files(name: str, files: Sequence[Path]) -> tuple[criconfig.CriConfig | None, str, tuple[Path, ...], float | None]:  # fmt: skip
    texts: list[str] = []
    present: list[Path] = []
    mtimes: list[float] = []
    for path in files:
        try:
            texts.append(path.read_text(errors="replace"))
            mtimes.append(path.stat().st_mtime)
        except FileNotFoundError:
            continue
        except OSError as exc:
            return None, f"{path}: {exc}", tuple(present), None
        present.append(path)
    if not present:
        return None, "", (), None
    try:
        config = criconfig.read_config(name, texts)
    except ValueError as exc:
        return None, f"not valid TOML: {exc}", tuple(present), max(mtimes)
    return config, "", tuple(present), max(mtimes)


def resolve_binary(binary: str) -> tuple[str, bool]:
    if not binary:
        return "", False
    found = (
        shutil.which(binary) if "/" not in binary else (binary if os.path.lexists(binary) else None)
    )
    return (
        found or "",
        bool(found) and os.access(str(found), os.X_OK) and os.path.isfile(str(found)),
    )


def loaded_config(name: str, config: Path) -> tuple[criconfig.CriConfig | None, str, str]:
    """What the engine reads from ``config`` (containerd's ``config dump``); None: no check."""
    argv = runtime_toml.engine_check_argv(name, config)
    if argv is None or shutil.which(argv[0]) is None or not config.exists():
        return None, "", ""
    command = shlex.join(argv)
    proc = run(argv, check=False, timeout=60)
    if proc.returncode != 0:
        return None, " ".join(tail(proc.stderr.decode(errors="replace"))), command
    try:
        return criconfig.read_config(name, [proc.stdout.decode(errors="replace")]), "", command
    except ValueError as exc:
        return None, f"its output is not TOML: {exc}", command


def init_method(proc: Path, init_script: Path) -> str:
    if daemon.is_systemd(proc / "1" / "comm"):
        return "systemctl"
    return "service" if init_script.exists() else ""


def gather_engine(
    adapter: CriAdapter,
    paths: DoctorPaths,
    recorded_path: str = "",
    cdi_specs: Sequence[str] = (),
) -> CriEngineFacts:
    """One engine as it is now; ``recorded_path``: the file the install record says it
    configured for this engine ("" when the record names another, or none)."""
    host = HostPaths(paths.root)
    config_path = Path(recorded_path) if recorded_path else adapter.config_path(host)
    state = adapter.detect(host, config_path)
    config, error, files, mtime = read_files(adapter.name, engine_files(config_path))
    binary, executable = resolve_binary(config.binary if config else "")
    installed = state.kind != "none"
    loaded, loaded_error, check = (
        loaded_config(adapter.name, config_path) if installed else (None, "", "")
    )
    return CriEngineFacts(
        name=adapter.name,
        label=adapter.label,
        installed=installed,
        packages=adapter.packages,
        config_path=config_path,
        config_files=files,
        config=config,
        config_error=error,
        config_mtime=mtime,
        running=state.running,
        version=state.version,
        problem=state.problem,
        pid=state.pid,
        argv=state.argv,
        probe=shlex.join(criengine.ready_argv(adapter.name, state.socket)),
        init=init_method(paths.proc, host.init_script(adapter.name)),
        started_at=process_start_time(paths.proc, state.pid) if state.pid else None,
        binary=binary,
        binary_executable=executable,
        loaded=loaded,
        loaded_error=loaded_error,
        load_check=check,
        cdi_specs=tuple(cdi_specs),
        recorded=bool(recorded_path),
    )
