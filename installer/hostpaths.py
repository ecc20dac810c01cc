"""Every host path the target-side commands write or read by name, under one root.

One ``HostPaths`` is made by each command (``HostPaths.system()``: the host's own
``/``) and passed down to the steps, the record, the plans and the engine calls
that need a path; tests pass ``HostPaths(tmp_path)`` instead of patching module
globals. The names under the root are the system's (``layout`` names gpubundle's
own directories), so ``HostPaths.system().record`` is
``/var/lib/gpubundle/install-record.json``.

``GPUBUNDLE_RECORD`` and ``GPUBUNDLE_LOCK`` (``from_environment``) point the record
and the lock elsewhere, for tests that run the command line as a program.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from installer import layout

RECORD_NAME = "install-record.json"
RECORD_MIRROR_NAME = "install-record.backup.json"
LEDGER_NAME = "installed-packages.ledger"


@dataclass(frozen=True)
class HostPaths:
    """The host's paths under ``root``; ``record_file`` and ``lock`` override two of them."""

    root: Path = Path("/")
    record_file: Path | None = None
    lock_file: Path | None = None

    @classmethod
    def system(cls) -> HostPaths:
        return cls(Path("/"))

    @classmethod
    def from_environment(cls) -> HostPaths:
        """The host's own paths, with the record and the lock where the environment says."""
        record, lock = os.environ.get("GPUBUNDLE_RECORD"), os.environ.get("GPUBUNDLE_LOCK")
        return cls(
            Path("/"),
            record_file=Path(record) if record else None,
            lock_file=Path(lock) if lock else None,
        )

    def under(self, path: str | Path) -> Path:
        """``path`` (absolute on the host) under this root."""
        return self.root / str(path).lstrip("/")

    # --- gpubundle's own ------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.under(layout.STATE_DIR)

    @property
    def bundles(self) -> Path:
        """Extracted bundles, one directory per bundle sha256."""
        return self.state_dir / "bundles"

    @property
    def record(self) -> Path:
        return self.record_file or self.state_dir / RECORD_NAME

    @property
    def record_mirror(self) -> Path:
        return self.record.with_name(RECORD_MIRROR_NAME)

    @property
    def ledger(self) -> Path:
        return self.record.with_name(LEDGER_NAME)

    @property
    def runtime_backups(self) -> Path:
        """Copies of daemon.json (or the TOML file) taken before the runtime step changed it."""
        return self.state_dir / "backup"

    @property
    def log_dir(self) -> Path:
        return self.under(layout.LOG_DIR)

    @property
    def backups_dir(self) -> Path:
        """Uninstall's copies of files changed since install, a directory per run."""
        return self.under(layout.BACKUPS_DIR)

    @property
    def lock(self) -> Path:
        return self.lock_file or self.under(layout.LOCK_FILE)

    @property
    def trust_dir(self) -> Path:
        return self.under(layout.TRUST_DIR)

    # --- the system's ----------------------------------------------------------------

    @property
    def sources_list(self) -> Path:
        return self.under("/etc/apt/sources.list.d/gpubundle.list")

    @property
    def keyrings_dir(self) -> Path:
        return self.under("/usr/share/keyrings")

    @property
    def apt_lists_dir(self) -> Path:
        return self.under("/var/lib/apt/lists")

    @property
    def apt_extended_states(self) -> Path:
        return self.under("/var/lib/apt/extended_states")

    @property
    def cdi_spec(self) -> Path:
        """The CDI spec install generates for Docker."""
        return self.under("/var/run/cdi/nvidia.yaml")

    @property
    def docker_sysv_script(self) -> Path:
        return self.under("/etc/init.d/docker")
