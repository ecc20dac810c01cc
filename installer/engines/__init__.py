"""One adapter per container engine (Docker, containerd, CRI-O) behind one small protocol.

Install, uninstall and the plans never ask which engine it is: they take the adapter
for ``--runtime`` (:func:`adapter_for`) or for the runtime change an install record
names (:func:`adapter_for_change`) and call it: detect the engine, name its config
file, configure the nvidia runtime there (a recorded ``RuntimeChange``), restart the
engine, wait until it answers, undo the change. Each engine's module
(``installer.engines.docker``, ``containerd``, ``crio``) sits on the facts and restart
code of ``installer.engine`` or ``installer.criengine`` and on the shared daemon
control of ``installer.engines.daemon``.

Adapters are imported when first asked for: ``installer.engine`` imports
``installer.engines.daemon``, and the Docker adapter imports ``installer.engine``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from installer.engines.daemon import RestartOutcome
from installer.errors import GpubundleError
from installer.hostpaths import HostPaths
from installer.runtime_config import DOCKER_KIND, RuntimeChange

ENGINES = ("docker", "containerd", "crio")  # the --runtime values with an engine
_MODULES = {name: f"installer.engines.{name}" for name in ENGINES}


class EngineState(Protocol):
    """What preflight judges of an engine's detection (``EngineAdapter.judge``)."""

    @property
    def kind(self) -> str: ...  # the engine or its package; "none" when not installed
    @property
    def version(self) -> str: ...  # the version it answers with; "" when it does not
    @property
    def problem(self) -> str: ...  # what is wrong with it, for people; "" when nothing


class DaemonFacts(EngineState, Protocol):
    """What every engine's detection says (``EngineFacts``, ``CriFacts``)."""

    @property
    def running(self) -> bool: ...
    @property
    def pid(self) -> int: ...  # the running daemon, 0 when none was found
    @property
    def argv(self) -> tuple[str, ...]: ...  # its command line, to start it the same way


class EngineAdapter(Protocol):
    """One container engine, as install, uninstall and the plans use it."""

    name: str  # the --runtime value: docker | containerd | crio
    label: str  # the engine in messages: Docker | containerd | crio
    file_kind: str  # RuntimeChange.kind of its file: docker-json | containerd-toml | crio-toml
    config_format: str  # "json": edited back key by key on uninstall; "toml": restored whole
    runtime_table: str  # where the nvidia runtime sits in its file, for people
    runs_containers: bool  # install loads the images into it and proves the GPUs through it
    records_start: bool  # install records that it started the engine (uninstall says so)
    bundled_package: str  # the package a bundle may carry it in; uninstall stops it first
    packages: tuple[str, ...]  # the dpkg packages it is installed as, in order of preference

    def detect(self, host: HostPaths, config: Path | None = None) -> DaemonFacts:
        """The engine on ``host`` now (``config``: the file it reads, where it matters)."""
        ...

    def config_path(self, host: HostPaths) -> Path:
        """The file install configures on ``host``."""
        ...

    def find_daemon(self, host: HostPaths, endpoint: str = "") -> int:
        """The pid of its daemon in ``host.proc`` (serving ``endpoint`` where several run); 0."""
        ...

    def plan_facts(self, host: HostPaths) -> tuple[str, Path]:
        """What the install plan names: the installed engine and its config file."""
        ...

    def plan_lines(self, path: str, engine_kind: str) -> tuple[tuple[str, ...], str]:
        """What the runtime step changes, and what the restart step restarts, in words."""
        ...

    def judge(self, facts: EngineState | None, bundled: Sequence[str]) -> tuple[str, str, str]:
        """Preflight's verdict on the engine found (pure): status (ok, warn or fail), the
        detail, and what to do; ``bundled`` names the packages the bundle installs."""
        ...

    def is_configured(self, path: Path, data: bytes) -> bool:
        """The file's bytes have the nvidia runtime already."""
        ...

    def configure(self, path: Path, backup_dir: Path) -> RuntimeChange:
        """Register the nvidia runtime in ``path`` (guarded, backed up); the change."""
        ...

    def restart(
        self, facts: DaemonFacts, host: HostPaths, *, env: dict[str, str] | None = None
    ) -> RestartOutcome:
        """Restart the engine the way ``host`` runs it, so it reads its config again (a
        daemon started directly logs under ``host.log_dir``)."""
        ...

    def wait_ready(self, facts: DaemonFacts, outcome: RestartOutcome, timeout: float) -> str:
        """Wait until it answers; its version."""
        ...

    def as_before(
        self, now: DaemonFacts, before: DaemonFacts | None, env: dict[str, str] | None
    ) -> tuple[DaemonFacts, dict[str, str] | None]:
        """The engine to restart after a failed restart: started as it ran ``before``."""
        ...

    def undo(self, change: RuntimeChange) -> None:
        """Put the file back as it was before ``change``."""
        ...


def adapter_for(runtime: str) -> EngineAdapter:
    """The adapter of ``--runtime RUNTIME`` (docker, containerd, crio)."""
    try:
        module = importlib.import_module(_MODULES[runtime])
    except KeyError:
        raise GpubundleError(
            f"no container engine is called {runtime!r}",
            hint=f"use --runtime {', '.join(ENGINES)} or none",
        ) from None
    adapter: EngineAdapter = module.ADAPTER
    return adapter


def engine_for(runtime: str) -> EngineAdapter | None:
    """The adapter of ``--runtime RUNTIME``; None for ``none`` (no engine configured)."""
    return None if runtime == "none" else adapter_for(runtime)


def adapter_for_kind(kind: str) -> EngineAdapter:
    """The adapter whose file a ``RuntimeChange.kind`` names."""
    for name in ENGINES:
        adapter = adapter_for(name)
        if adapter.file_kind == kind:
            return adapter
    raise GpubundleError(
        f"the install record names a runtime file of unknown kind {kind!r}",
        hint="this record was written by a newer gpubundle: uninstall with that version",
    )


def adapter_for_change(change: Mapping[str, Any] | None) -> EngineAdapter:
    """The engine a recorded runtime change belongs to (Docker when none is recorded)."""
    return adapter_for_kind(str((change or {}).get("kind") or DOCKER_KIND))
