"""What the containerd and CRI-O adapters share: a TOML file through nvidia-ctk, and the
daemon found, restarted and probed by ``installer.criengine``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from installer import criengine, runtime_config, runtime_toml
from installer.criengine import CriFacts
from installer.engines import DaemonFacts, EngineState
from installer.engines.daemon import RestartOutcome
from installer.errors import GpubundleError
from installer.hostpaths import HostPaths
from installer.runtime_config import RuntimeChange


def _facts(facts: DaemonFacts) -> CriFacts:
    if not isinstance(facts, CriFacts):
        raise TypeError(f"a CRI adapter was given {type(facts).__name__}, not CriFacts")
    return facts


class CriAdapter:
    config_format = "toml"
    runs_containers = False  # the verification containers run through Docker
    records_start = False
    bundled_package = ""

    def __init__(
        self, name: str, runtime_table: str, packages: tuple[str, ...], advice: str
    ) -> None:
        self.name = name
        self.packages = packages
        self.advice = advice  # what to install, in words (it is never in a bundle)
        self.label = name
        self.file_kind = runtime_toml.FILE_KINDS[name]
        self.runtime_table = runtime_table

    def detect(self, host: HostPaths, config: Path | None = None) -> CriFacts:
        return criengine.detect(self.name, host, config)

    def config_path(self, host: HostPaths) -> Path:
        return host.cri_config(self.name)

    def find_daemon(self, host: HostPaths, endpoint: str = "") -> int:
        config = self.config_path(host)
        return criengine.find_daemon(self.name, config, host.proc, config)[0]

    def plan_facts(self, host: HostPaths) -> tuple[str, Path]:
        return self.name, self.config_path(host)

    def judge(self, facts: EngineState | None, bundled: Sequence[str]) -> tuple[str, str, str]:
        """Installed (it is not in the bundle); running or not, it is restarted after its
        configuration."""
        if facts is None:
            return "fail", f"{self.name} was not probed", "report this bug"
        if facts.kind == "none":
            return (
                "fail",
                f"{self.name} is not installed",
                f"install {self.advice} first, or use --runtime docker or --runtime none",
            )
        name = self.name
        detail = f"{name} {facts.version}".strip() if facts.version else f"{name}, not running"
        if facts.problem:
            return "warn", f"{detail}; {facts.problem}", ""
        return "ok", detail, ""

    def is_configured(self, path: Path, data: bytes) -> bool:
        return runtime_toml.is_configured_text(self.name, data.decode(errors="replace"))

    def configure(self, path: Path, backup_dir: Path) -> RuntimeChange:
        return runtime_toml.configure_toml_runtime(self.name, path, backup_dir)

    def restart(
        self, facts: DaemonFacts, host: HostPaths, *, env: dict[str, str] | None = None
    ) -> RestartOutcome:
        cri = _facts(facts)
        if cri.kind == "none":
            raise GpubundleError(cri.problem, hint=f"install {self.name}, then re-run")
        return criengine.restart(
            cri, host.log_dir, init_script=host.init_script(self.name), proc_dir=host.proc
        )

    def wait_ready(self, facts: DaemonFacts, outcome: RestartOutcome, timeout: float) -> str:
        return criengine.wait_until_ready(_facts(facts), outcome, timeout)

    def as_before(
        self, now: DaemonFacts, before: DaemonFacts | None, env: dict[str, str] | None
    ) -> tuple[DaemonFacts, dict[str, str] | None]:
        return now, None  # criengine restarts the daemon reading the configured file

    def undo(self, change: RuntimeChange) -> None:
        runtime_config.rollback_runtime(change)
