"""Write-ahead for the runtime step: the change is recorded, with its backup, before nvidia-ctk runs.

A run killed while nvidia-ctk rewrites daemon.json (or containerd's or CRI-O's
TOML file) leaves a record that names a backup which really exists; a re-run
or uninstall then puts the file back (``undo_pending_runtime``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from installer import engines, runtime_config
from installer.atomicfile import write_atomically


def backup_path(daemon_json: Path, data: bytes, backup_dir: Path) -> Path:
    """Where ``runtime_config.configure_file`` keeps the original daemon.json (or TOML file)."""
    return backup_dir / f"{daemon_json.name}.{hashlib.sha256(data).hexdigest()[:12]}.bak"


def runtime_change(data: dict[str, Any]) -> runtime_config.RuntimeChange:
    """A recorded runtime change as ``runtime_config`` takes it (without record-only keys)."""
    names = {f.name for f in dataclasses.fields(runtime_config.RuntimeChange)}
    return runtime_config.RuntimeChange(**{k: v for k, v in data.items() if k in names})


def intended_runtime_change(
    daemon_json: Path, backup_dir: Path, kind: str = runtime_config.DOCKER_KIND
) -> dict[str, Any] | None:
    """The change about to be made to daemon.json (or, by ``kind``, containerd's or CRI-O's
    TOML file), as recorded before nvidia-ctk runs: ``pending``, no ``sha256_after`` yet;
    None when the file has the runtime already (nothing will change). The original is
    backed up first, so the record never names a backup that is not there."""
    try:
        before: bytes | None = daemon_json.read_bytes()
    except FileNotFoundError:
        before = None
    if before is not None and engines.adapter_for_kind(kind).is_configured(daemon_json, before):
        return None
    backup: Path | None = None
    if before is not None:
        backup = backup_path(daemon_json, before, backup_dir)
        backup_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(backup, before, daemon_json.stat().st_mode & 0o7777)
    return {
        "path": str(daemon_json),
        "backup_path": str(backup) if backup else None,
        "sha256_before": hashlib.sha256(before).hexdigest() if before is not None else None,
        "sha256_after": None,
        "changed": True,
        "kind": kind,
        "pending": True,
    }


def undo_pending_runtime(change: dict[str, Any]) -> bool:
    """Put daemon.json back as it was before a runtime change that was never confirmed
    (a run killed while nvidia-ctk ran, or before the result was recorded). True if it
    had to be restored."""
    path = Path(change["path"])
    try:
        now: str | None = hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        now = None
    if now == change.get("sha256_before"):
        return False
    runtime_config.rollback_runtime(runtime_change(change))
    return True
