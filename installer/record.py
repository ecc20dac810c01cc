"""The install record: what gpubundle changed on this host, written after every step.

``install`` writes it atomically after each completed step, so a killed run
resumes where it stopped and ``uninstall`` can undo a partial install;
``status`` and ``doctor`` read it. The schema is fixed in format 1:

format, gpubundle_version, bundle_sha256, signer_fingerprint, distro, arch,
toolkit_version, started_at, finished_at (null until done), steps_completed
(step ids in order), packages_before ({name: version} of bundled packages
installed before gpubundle first ran; absent means not installed),
packages_installed ({name: version} apt installed or upgraded), files_created,
runtime_change (a RuntimeChange as a dict, or null), engine_started_by_gpubundle,
cdi_specs_created, images_loaded. Added within format 1 (older readers ignore them):
apt_lists (apt's list files of the local source, removed by uninstall),
in_progress (the step that was running, or null) and unowned_paths_created ({path:
what install left there} of the paths the packages step makes that dpkg does not own
(config.toml, the hook link, /lib.usr-is-merged) and that were absent before it: a
file's sha256, "dir", or "-> TARGET" for a link; null while written ahead; see
installer/unownedpaths.py).

Write-ahead: a step first records what it is about to change (``with_intent``:
the paths it will create, the packages it may install, a runtime change marked
``pending``) and only then changes the host; its completion is recorded after.
So a run killed at any point leaves a record that names everything it may have
changed: a re-run completes it, and ``uninstall`` undoes it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from installer.atomicfile import write_json_atomic
from installer.errors import GpubundleError
from installer.layout import STATE_DIR

RECORD_FORMAT = 1
RECORD_PATH = Path(STATE_DIR) / "install-record.json"


@dataclass(frozen=True)
class InstallRecord:
    gpubundle_version: str
    bundle_sha256: str
    signer_fingerprint: str
    distro: str
    arch: str
    toolkit_version: str
    started_at: str
    finished_at: str | None = None
    steps_completed: tuple[str, ...] = ()
    packages_before: dict[str, str] = field(default_factory=dict)
    packages_installed: dict[str, str] = field(default_factory=dict)
    files_created: tuple[str, ...] = ()
    runtime_change: dict[str, Any] | None = None
    engine_started_by_gpubundle: bool = False
    cdi_specs_created: tuple[str, ...] = ()
    images_loaded: tuple[str, ...] = ()
    apt_lists: tuple[str, ...] = ()
    in_progress: str | None = None
    unowned_paths_created: dict[str, str | None] = field(default_factory=dict)
    format: int = RECORD_FORMAT

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def completed(self, step: str) -> bool:
        return step in self.steps_completed

    def with_step(self, step: str, **changes: Any) -> InstallRecord:
        """This record with ``step`` marked complete (once) and ``changes`` applied."""
        steps = (
            self.steps_completed if step in self.steps_completed else (*self.steps_completed, step)
        )
        return dataclasses.replace(self, steps_completed=steps, in_progress=None, **changes)

    def with_intent(self, step: str, **changes: Any) -> InstallRecord:
        """This record saying ``step`` is under way and may make ``changes`` (write-ahead)."""
        return dataclasses.replace(self, in_progress=step, **changes)

    @property
    def runtime_pending(self) -> bool:
        """A runtime change was started and not confirmed: daemon.json may be half-written."""
        return bool(self.runtime_change and self.runtime_change.get("pending"))

    def with_files(self, *paths: str) -> InstallRecord:
        merged = tuple(dict.fromkeys((*self.files_created, *paths)))
        return dataclasses.replace(self, files_created=merged)


_TUPLE_FIELDS = {
    "steps_completed",
    "files_created",
    "cdi_specs_created",
    "images_loaded",
    "apt_lists",
}


def record_from_json(data: Any) -> InstallRecord:
    """Build a record from decoded JSON; unknown keys are ignored, a wrong shape is an error."""
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        raise ValueError(f"not an install record of format {RECORD_FORMAT}")
    names = {f.name for f in dataclasses.fields(InstallRecord)}
    kwargs: dict[str, Any] = {
        k: (tuple(v) if k in _TUPLE_FIELDS else v) for k, v in data.items() if k in names
    }
    try:
        return InstallRecord(**kwargs)
    except TypeError as exc:
        raise ValueError(str(exc)) from exc


def load_record(path: Path = RECORD_PATH) -> InstallRecord | None:
    """The record on this host, or None when gpubundle never installed anything here."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return record_from_json(json.loads(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        raise GpubundleError(
            f"the install record {path} is unreadable: {exc}",
            hint=f"move {path} aside (it lists what gpubundle changed) and run the command again",
        ) from exc


def save_record(record: InstallRecord, path: Path = RECORD_PATH) -> None:
    write_json_atomic(path, record.as_json())


def staging_leftovers(bundle_dir: Path) -> list[Path]:
    """Staging trees that an extraction of ``bundle_dir``, killed midway, left beside it.

    ``installer.bundle_reader`` extracts into ``.<name>.staging-*`` next to the target
    and renames it onto the target once complete; only SIGKILL or power loss leaves one.
    """
    if not bundle_dir.parent.is_dir():
        return []
    return sorted(bundle_dir.parent.glob(f".{bundle_dir.name}.staging-*"))


def original_packages(previous: InstallRecord | None, current: dict[str, str]) -> dict[str, str]:
    """packages_before for a new record: what the host had before gpubundle ever ran.

    Packages an earlier gpubundle install put in place keep that install's
    "before"; everything else is as the host has it now.
    """
    if previous is None:
        return current
    touched = set(previous.packages_installed)
    merged = {n: v for n, v in current.items() if n not in touched}
    merged.update(previous.packages_before)
    return dict(sorted(merged.items()))


def carried_over(previous: InstallRecord) -> dict[str, Any]:
    """What an install of another bundle recorded and a new record must keep, so that
    uninstall still undoes it: its files, apt lists, runtime change, images and specs."""
    return {
        "files_created": previous.files_created,
        "apt_lists": previous.apt_lists,
        "runtime_change": previous.runtime_change,
        "engine_started_by_gpubundle": previous.engine_started_by_gpubundle,
        "images_loaded": previous.images_loaded,
        "cdi_specs_created": previous.cdi_specs_created,
        "unowned_paths_created": previous.unowned_paths_created,
    }
