"""What the containerd and CRI-O adapters share: a TOML file through nvidia-ctk, and the
daemon found, restarted and probed by ``installer.criengine``."""

from __future__ import annotations

from pathlib import Path

from installer import criengine, runtime_config, runtime_toml
from installer.criengine import CriFacts
from installer.engines import DaemonFacts
from installer.engines.daemon import RestartOutcome
from installer.errors import GpubundleError
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

    def __init__(self, name: str, runtime_table: str) -> None:
        self.name = name
        self.label = name
        self.file_kind = runtime_toml.FILE_KINDS[name]
        self.runtime_table = runtime_table

    def detect(self, config: Path | None = None) -> CriFacts:
        return criengine.detect(self.name, config or self.config_path())

    def config_path(self) -> Path:
        return runtime_toml.DEFAULT_CONFIG[self.name]

    def plan_facts(self) -> tuple[str, Path]:
        return self.name, self.config_path()

    def is_configured(self, path: Path, data: bytes) -> bool:
        return runtime_toml.is_configured_text(self.name, data.decode(errors="replace"))

    def configure(self, path: Path, backup_dir: Path) -> RuntimeChange:
        return runtime_toml.configure_toml_runtime(self.name, path, backup_dir)

    def restart(
        self, facts: DaemonFacts, log_dir: Path, *, env: dict[str, str] | None = None
    ) -> RestartOutcome:
        cri = _facts(facts)
        if cri.kind == "none":
            raise GpubundleError(cri.problem, hint=f"install {self.name}, then re-run")
        return criengine.restart(cri, log_dir)

    def wait_ready(self, facts: DaemonFacts, outcome: RestartOutcome, timeout: float) -> str:
        return criengine.wait_until_ready(_facts(facts), outcome, timeout)

    def as_before(
        self, now: DaemonFacts, before: DaemonFacts | None, env: dict[str, str] | None
    ) -> tuple[DaemonFacts, dict[str, str] | None]:
        return now, None  # criengine restarts the daemon reading the configured file

    def undo(self, change: RuntimeChange) -> None:
        runtime_config.rollback_runtime(change)
