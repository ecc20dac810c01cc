"""The Docker engine adapter: daemon.json through nvidia-ctk, dockerd restarted as it ran.

Facts, restart and readiness are ``installer.engine``'s; the daemon.json guard is
``installer.runtime_config``'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from installer import engine, runtime_config
from installer.engine import EngineFacts
from installer.engines import DaemonFacts, EngineAdapter, EngineState
from installer.engines.daemon import RestartOutcome
from installer.hostpaths import HostPaths
from installer.runtime_config import RuntimeChange

BUNDLED_ENGINES = ("docker.io", "docker-ce")  # a bundle that requests one brings Docker


def _facts(facts: DaemonFacts) -> EngineFacts:
    if not isinstance(facts, EngineFacts):
        raise TypeError(f"the Docker adapter was given {type(facts).__name__}, not EngineFacts")
    return facts


class DockerAdapter:
    name = "docker"
    label = "Docker"
    file_kind = runtime_config.DOCKER_KIND
    config_format = "json"
    runtime_table = "runtimes.nvidia"
    runs_containers = True
    records_start = True
    bundled_package = "docker.io"  # what `gpubundle build --with-docker` bundles
    packages: tuple[str, ...] = engine.DOCKER_PACKAGES

    def detect(self, host: HostPaths, config: Path | None = None) -> EngineFacts:
        return engine.detect_engine(host)  # dockerd's own --config-file says where its file is

    def config_path(self, host: HostPaths) -> Path:
        return engine.detect_engine(host).daemon_json

    def find_daemon(self, host: HostPaths, endpoint: str = "") -> int:
        return engine.find_dockerd(host.proc, endpoint or None)[0]

    def plan_facts(self, host: HostPaths) -> tuple[str, Path]:
        facts = engine.detect_engine(host)
        return facts.kind, facts.daemon_json

    def plan_lines(self, path: str, engine_kind: str) -> tuple[tuple[str, ...], str]:
        restart = (
            f"restart {engine_kind} (running containers restart with it)"
            if engine_kind not in ("", "none")
            else "start docker from the bundle (dockerd directly where no init system runs)"
        )
        return (f"modify {path}: add the nvidia runtime (backup kept)",), restart

    def judge(self, facts: EngineState | None, bundled: Sequence[str]) -> tuple[str, str, str]:
        if facts is None:
            return "fail", "Docker was not probed", "report this as a bug"
        if facts.kind == "snap":
            return (
                "fail",
                "Docker is installed as a snap; its confinement cannot use the NVIDIA Container "
                "Toolkit",
                "remove the snap (snap remove docker) and install docker.io, or a bundle that "
                "ships Docker, or use --runtime none",
            )
        if facts.kind == "none":
            if any(p in bundled for p in BUNDLED_ENGINES):
                return "ok", "Docker will be installed from the bundle", ""
            return (
                "fail",
                "no Docker engine is installed",
                "install docker.io first, rebuild the bundle with Docker in it, or use "
                "--runtime none",
            )
        detail = f"{facts.kind} {facts.version}".strip()
        if facts.problem:
            return "warn", f"{detail}; {facts.problem}", ""
        return "ok", detail, ""

    def is_configured(self, path: Path, data: bytes) -> bool:
        config = runtime_config.parse_json_object(data, str(path))
        return runtime_config.is_configured(config, set_default=False, cdi=False)

    def configure(self, path: Path, backup_dir: Path) -> RuntimeChange:
        return runtime_config.configure_docker_runtime(path, backup_dir)

    def restart(
        self, facts: DaemonFacts, host: HostPaths, *, env: dict[str, str] | None = None
    ) -> RestartOutcome:
        return engine.restart_engine(
            _facts(facts),
            host.log_dir,
            env=env,
            sysv_script=host.docker_sysv_script,
            proc_dir=host.proc,
        )

    def wait_ready(self, facts: DaemonFacts, outcome: RestartOutcome, timeout: float) -> str:
        return engine.wait_until_ready(timeout, outcome)

    def as_before(
        self, now: DaemonFacts, before: DaemonFacts | None, env: dict[str, str] | None
    ) -> tuple[DaemonFacts, dict[str, str] | None]:
        """Without this a dockerd that would not start with the new configuration came back
        as a bare ``dockerd``: without its ``--data-root``, ``-H`` or bridge options."""
        if now.pid or before is None or not before.argv:
            return now, None
        return dataclasses.replace(_facts(now), argv=before.argv), env

    def undo(self, change: RuntimeChange) -> None:
        runtime_config.rollback_runtime(change)


ADAPTER: EngineAdapter = DockerAdapter()
