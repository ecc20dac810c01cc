"""What ``gpubundle uninstall`` will do: the inverse of the install record, as data.

Pure: it takes the record and the host's current state (read elsewhere) and returns
ordered actions plus notes on what is deliberately kept. ``uninstall --dry-run``
prints exactly this plan; the command then carries it out step by step.

Rules:
- daemon.json unchanged since install (sha256 = the record's ``sha256_after``): put
  the backup back (or delete the file if install created it). Changed since: remove
  only the nvidia entries install added, keeping the user's edits.
- ``default-runtime`` never names a runtime whose package is being removed.
- containerd's config.toml or CRI-O's drop-in (``runtime_change.kind`` containerd-toml,
  crio-toml): unchanged since install, the backup goes back (or the file install
  created is deleted); changed since, it is left alone with a note saying what to
  remove by hand (gpubundle edits no TOML itself). That engine is restarted.
- A runtime change recorded as ``pending`` (install was killed while nvidia-ctk ran)
  is undone like a confirmed one: the backup goes back, or the file install created
  is deleted.
- packages apt installed are purged, ``--purge`` or not: their conffiles, and what
  their maintainer scripts made and their postrm takes back on purge (systemd
  enablement links and masks, the hook link; docker.io's enablement links too), go
  with them. Packages that were installed before, at any version, are kept with their
  state: apt cannot go back offline. Before that, ``apt-mark manual`` drops apt's
  "Auto-Installed" entries for them from /var/lib/apt/extended_states, as apt itself
  would on removal.
- what the packages step made that dpkg does not own and no purge removes
  (config.toml and its directory, /lib.usr-is-merged; ``record.unowned_paths_created``)
  is removed after the purge, when that step created it; a directory only once empty.
- a conffile of a purged package, or such an unowned file, changed since install
  is saved first, before any other change, under ``backup_dir``
  (``/var/backups/gpubundle/<stamp>/`` + its path); ``UninstallPlan.saved`` maps each
  path to its copy. The record's unowned paths and dpkg's conffile names are as the host
  sees them; the plan's actions name them under ``HostNow.root``. An unowned path that
  install wrote ahead but never saw (a run killed inside the packages step) is removed
  without a copy: nobody had a chance to edit it.
- apt's list files of the local source, the repository, its source and key, any
  half-extracted bundle a killed run left, the record, and then gpubundle's state
  directories once empty. Install reports in /var/log/gpubundle stay.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from installer import engines
from installer.conffiles import Conffile
from installer.record import InstallRecord
from installer.runtime_config import parse_json_object
from installer.unownedpaths import DIR, is_file_digest

NVIDIA_RUNTIMES = ("nvidia", "nvidia-cdi", "nvidia-legacy")
RUNTIME_PACKAGE = "nvidia-container-toolkit"
ENGINE_PACKAGE = "docker.io"  # what `gpubundle build --with-docker` bundles


@dataclass(frozen=True)
class HostNow:
    """The parts of the host the plan depends on, read just before planning."""

    packages: Mapping[str, str] = field(default_factory=dict)  # installed now: name -> version
    daemon_json: bytes | None = None  # None: the file does not exist
    daemon_backup: bytes | None = None  # the record's backup file, None if missing
    existing_paths: frozenset[str] = frozenset()  # of files_created + cdi_specs_created
    images_present: frozenset[str] = frozenset()  # of images_loaded
    engine_running: bool = False
    auto_marked: frozenset[str] = frozenset()  # installed packages apt marks auto-installed
    apt_lists: frozenset[str] = frozenset()  # apt's list files of the local source(s), present
    staging: frozenset[str] = frozenset()  # half-extracted bundles left by a killed install
    state_dirs: tuple[str, ...] = ()  # gpubundle's state directories present, deepest first
    conffiles: tuple[Conffile, ...] = ()  # of the recorded packages installed now
    unowned_paths: Mapping[str, str | None] = field(default_factory=dict)  # path -> fingerprint now
    # Where the host's root lies: the record's unowned paths and dpkg's conffile names (as
    # the host sees them) are acted on under it. "" for / (HostPaths.root of a test root).
    root: str = ""

    def at(self, path: str) -> str:
        """``path`` as the host sees it, where uninstall acts on it."""
        return self.root.rstrip("/") + path


@dataclass(frozen=True)
class Action:
    kind: str  # remove-images | write-daemon-json | delete-daemon-json | restart-engine
    #            | write-config | delete-config (containerd, CRI-O TOML files)
    #            | stop-engine | unmark-auto | save-files | remove-packages | remove-paths
    #            | remove-apt-lists | remove-record | remove-empty-dirs
    summary: str
    targets: tuple[str, ...] = ()
    content: str | None = None  # the new daemon.json for write-daemon-json


@dataclass(frozen=True)
class UninstallPlan:
    actions: tuple[Action, ...]
    notes: tuple[str, ...] = ()
    purge: bool = False  # --purge was given (packages are purged either way)
    saved: Mapping[str, str] = field(default_factory=dict)  # changed file -> its saved copy

    @property
    def nothing_to_do(self) -> bool:
        return not self.actions

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "saved": dict(self.saved), "nothing_to_do": self.nothing_to_do}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def remove_nvidia_entries(
    current: Mapping[str, Any], before: Mapping[str, Any], *, runtime_removed: bool
) -> dict[str, Any]:
    """``current`` without the nvidia runtimes install added and a default-runtime naming them."""
    result = dict(current)
    runtimes = dict(result.get("runtimes") or {})
    kept_before = dict(before.get("runtimes") or {})
    for name in NVIDIA_RUNTIMES:
        if name in runtimes and (runtime_removed or name not in kept_before):
            del runtimes[name]
    if runtimes:
        result["runtimes"] = runtimes
    else:
        result.pop("runtimes", None)
    default = result.get("default-runtime")
    if default in NVIDIA_RUNTIMES and default not in runtimes:
        if before.get("default-runtime") and before["default-runtime"] not in NVIDIA_RUNTIMES:
            result["default-runtime"] = before["default-runtime"]
        else:
            result.pop("default-runtime", None)
    return result


def _render(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=4) + "\n"


def plan_daemon_json(record: InstallRecord, now: HostNow, *, runtime_removed: bool) -> list[Action]:
    change = record.runtime_change
    if not change or not change.get("changed", True):
        return []
    path = str(change["path"])
    current = now.daemon_json
    before_existed = change.get("backup_path") is not None
    if current is None:
        if before_existed and now.daemon_backup is not None:
            content = _render(
                remove_nvidia_entries(
                    parse_json_object(now.daemon_backup, "the backup"),
                    {},
                    runtime_removed=runtime_removed,
                )
            )
            return [
                Action(
                    "write-daemon-json", f"restore {path} (deleted since install)", (path,), content
                )
            ]
        return []
    if sha256(current) == change.get("sha256_before"):
        return []  # already as it was before install
    if sha256(current) == change.get("sha256_after") or change.get("pending"):
        if not before_existed:
            return [Action("delete-daemon-json", f"delete {path} (install created it)", (path,))]
        if now.daemon_backup is not None:
            before = parse_json_object(now.daemon_backup, f"the backup {change['backup_path']}")
            restored = remove_nvidia_entries(before, before, runtime_removed=runtime_removed)
            if restored == before:
                content = now.daemon_backup.decode()
                return [
                    Action(
                        "write-daemon-json",
                        f"restore {path} from {change['backup_path']}",
                        (path,),
                        content,
                    )
                ]
            return [
                Action(
                    "write-daemon-json",
                    f"restore {path} from {change['backup_path']}, without its nvidia default-runtime",
                    (path,),
                    _render(restored),
                )
            ]
    # Changed since install (or the backup is gone): remove only what install added.
    before = parse_json_object(now.daemon_backup, "the backup") if now.daemon_backup else {}
    edited = parse_json_object(current, path)
    cleaned = remove_nvidia_entries(edited, before, runtime_removed=runtime_removed)
    if cleaned == edited:
        return []
    if not cleaned and not before_existed:
        return [
            Action("delete-daemon-json", f"delete {path} (only nvidia entries were left)", (path,))
        ]
    return [
        Action(
            "write-daemon-json",
            f"remove the nvidia entries from {path}, keeping the changes made since install",
            (path,),
            _render(cleaned),
        )
    ]


def plan_toml_file(record: InstallRecord, now: HostNow) -> tuple[list[Action], list[str]]:
    """containerd's or CRI-O's file: the backup back when untouched since install, else a note."""
    change = record.runtime_change
    if not change or not change.get("changed", True):
        return [], []
    path = str(change["path"])
    backup = change.get("backup_path")
    current = now.daemon_json
    if current is None or sha256(current) == change.get("sha256_before"):
        if current is None and backup and now.daemon_backup is not None:
            restore = Action("write-config", f"restore {path} (deleted since install)", (path,))
            return [dataclasses.replace(restore, content=now.daemon_backup.decode())], []
        return [], []
    if sha256(current) == change.get("sha256_after") or change.get("pending"):
        if not backup:
            return [Action("delete-config", f"delete {path} (install created it)", (path,))], []
        if now.daemon_backup is not None:
            content = now.daemon_backup.decode()
            return [Action("write-config", f"restore {path} from {backup}", (path,), content)], []
    adapter = engines.adapter_for_change(change)
    note = (
        f"{path} changed since install (or its backup is gone): left as it is; remove the "
        f"[{adapter.runtime_table}] tables (and a default runtime naming nvidia) by hand, "
        f"then restart {adapter.name}"
    )
    return [], [note]


def saved_copy(backup_dir: str, path: str) -> str:
    """Where ``path`` is saved: its whole path under ``backup_dir``."""
    return backup_dir.rstrip("/") + "/" + path.lstrip("/")


def plan_unowned_paths(
    record: InstallRecord, now: HostNow
) -> tuple[list[str], list[str], list[str]]:
    """(changed files to save, paths to remove, directories to remove once empty) of
    what the packages step made that dpkg does not own (``record.unowned_paths_created``)."""
    save, remove, dirs = [], [], []
    for path, seen in sorted(record.unowned_paths_created.items()):
        current = now.unowned_paths.get(path)
        if current is None:
            continue  # gone already (a purge took it, or the user did)
        if current == DIR:
            dirs.append(path)
            continue
        if is_file_digest(current) and seen is not None and current != seen:
            save.append(path)
        remove.append(path)
    # Deepest first, so a directory is empty when its turn comes.
    return save, remove, sorted(dirs, key=lambda d: d.count("/"), reverse=True)


def plan_uninstall(
    record: InstallRecord,
    now: HostNow,
    *,
    keep_images: bool = False,
    purge: bool = False,
    record_path: str = "",
    backup_dir: str,
) -> UninstallPlan:
    """``backup_dir``: where changed files are saved (``HostPaths.backups_dir`` / a stamp)."""
    actions: list[Action] = []
    notes: list[str] = []

    images = [i for i in record.images_loaded if i in now.images_present]
    if images and keep_images:
        notes.append(f"keeping {len(images)} image(s) loaded by install (--keep-images)")
    elif images:
        actions.append(Action("remove-images", f"remove {len(images)} image(s)", tuple(images)))

    remove, kept = [], []
    for name, version in sorted(record.packages_installed.items()):
        if name in record.packages_before:
            kept.append(name)
            notes.append(
                f"keeping {name}: it was installed before gpubundle "
                f"(version {record.packages_before[name]}, now {now.packages.get(name, version)}); "
                "apt cannot restore the old version offline"
            )
        elif name in now.packages:
            remove.append(name)
    runtime_removed = RUNTIME_PACKAGE in remove
    # Docker came with the bundle and goes with it: stop it first, never leave a
    # dockerd running from deleted files.
    engine_removed = ENGINE_PACKAGE in remove

    adapter = engines.adapter_for_change(record.runtime_change)
    label = adapter.label
    targets: tuple[str, ...] = ()
    if adapter.config_format == "json":
        config = plan_daemon_json(record, now, runtime_removed=runtime_removed)
    else:
        config, config_notes = plan_toml_file(record, now)
        notes += config_notes
        targets = (adapter.name,)
    actions += config
    if adapter.bundled_package in remove and now.engine_running:
        actions.append(
            Action("stop-engine", f"stop {label}: {adapter.bundled_package} is being removed")
        )
    elif config and now.engine_running:
        actions.append(
            Action(
                "restart-engine", f"restart {label} so it reads the restored configuration", targets
            )
        )
    elif config:
        notes.append(f"{label} is not running; it reads the restored configuration when it starts")
    if record.engine_started_by_gpubundle and not engine_removed:
        notes.append("gpubundle started Docker during install; it is left running")

    unmark = sorted(set(remove) & now.auto_marked)
    if unmark:
        actions.append(
            Action(
                "unmark-auto", "drop apt's auto-installed marks (apt-mark manual)", tuple(unmark)
            )
        )
    purged = set(remove)
    changed_conffiles = [c.path for c in now.conffiles if c.package in purged and c.changed]
    unowned_saves, unowned_removes, unowned_dirs = plan_unowned_paths(record, now)
    to_save = list(dict.fromkeys((*changed_conffiles, *unowned_saves)))
    # Each copy is named by the path as the host sees it, whatever the root.
    saved = {now.at(path): saved_copy(backup_dir, path) for path in to_save}
    if saved:  # first of all: a copy that cannot be made stops uninstall before any change
        actions.insert(
            0,
            Action(
                "save-files",
                f"save {len(saved)} file(s) changed since install under {backup_dir}",
                tuple(saved),
            ),
        )
    if remove:
        actions.append(
            Action(
                "remove-packages",
                f"purge {len(remove)} package(s) (their conffiles and scripts' state too)",
                tuple(remove),
            )
        )
    if unowned_removes:
        actions.append(
            Action(
                "remove-paths",
                "remove what install's packages made outside dpkg's lists (no purge does)",
                tuple(map(now.at, unowned_removes)),
            )
        )
    if unowned_dirs:
        actions.append(
            Action(
                "remove-empty-dirs",
                "remove the directories install's packages made outside dpkg's lists, if empty",
                tuple(map(now.at, unowned_dirs)),
            )
        )

    files = [p for p in record.files_created if p in now.existing_paths] + sorted(now.staging)
    if files:
        actions.append(
            Action("remove-paths", "remove the local repository, its source and key", tuple(files))
        )
    if now.apt_lists:
        actions.append(
            Action(
                "remove-apt-lists",
                "remove apt's lists of the local repository",
                tuple(sorted(now.apt_lists)),
            )
        )
    specs = [p for p in record.cdi_specs_created if p in now.existing_paths]
    if specs:
        actions.append(
            Action("remove-paths", "remove the CDI specs install generated", tuple(specs))
        )
    if record_path:
        actions.append(
            Action("remove-record", f"remove the install record {record_path}", (record_path,))
        )
    if now.state_dirs:
        actions.append(
            Action(
                "remove-empty-dirs",
                "remove gpubundle's state directories, those left empty",
                now.state_dirs,
            )
        )
    return UninstallPlan(tuple(actions), tuple(notes), purge, saved)
