"""The bodies of install's steps, one module each, and what they share: ``StepContext``.

Each step module has ``run(ctx, record) -> (record, detail)``: it records what it is
about to change (``ctx.intend``) before changing anything, and returns the record
with what it changed and a line for the report. The loop that runs them in plan
order, saves the record and rolls the runtime back is ``installer.installsteps``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from installer import engines, testhooks
from installer.bundle_reader import VerifiedBundle
from installer.console import Console
from installer.hostpaths import HostPaths
from installer.manifest import Manifest
from installer.preflight import Options
from installer.record import InstallRecord, save_record


@dataclass
class StepContext:
    """One install run: the verified bundle, the options, the host's paths; and what the
    steps learn on the way (how the engine ran before, the GPU proof's attempts)."""

    verified: VerifiedBundle
    bundle_dir: Path  # where the bundle is extracted: host.bundles / sha256
    opts: Options
    console: Console
    host: HostPaths
    proof_rule: str = "default"  # install --proof: which access paths decide
    compute_size: str = "auto"  # install --compute-size: the probe's buffer per GPU, or "off"
    stamp: str = field(default_factory=lambda: time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    # How the engine ran before we restarted it: a rollback must start it the same way.
    engine_before: engines.DaemonFacts | None = None
    engine_env: dict[str, str] | None = None
    proof: list[dict[str, Any]] = field(default_factory=list)  # each image's attempts
    compute: list[dict[str, Any]] = field(default_factory=list)  # the compute probe's result
    compose: list[dict[str, Any]] = field(default_factory=list)  # the compose service's

    @property
    def manifest(self) -> Manifest:
        return self.verified.manifest

    @property
    def names(self) -> list[str]:
        return sorted({p.name for p in self.manifest.packages})

    @property
    def apt_log(self) -> Path:
        """apt's and dpkg's output: they run detached and write here (see run_apt)."""
        return self.host.log_dir / f"apt-{self.stamp}.log"

    def engine(self) -> engines.EngineAdapter:
        return engines.adapter_for(self.opts.runtime)

    def save(self, record: InstallRecord) -> None:
        save_record(record, self.host.record)

    def intend(self, record: InstallRecord, step_id: str, **changes: Any) -> InstallRecord:
        """Record what ``step_id`` is about to change, before it changes anything."""
        record = record.with_intent(step_id, **changes)
        self.save(record)
        testhooks.kill_if_asked(testhooks.KILL_BEFORE, step_id)
        return record
