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
installer/unownedpaths.py), history (one entry per completed install, oldest first:
the bundle, the toolkit and its family's versions before and after, and whether it was an
install, upgrade, downgrade or reinstall; see installer/history.py) and pending_history
(the entry of the run under way, written ahead, or null).

Write-ahead: a step first records what it is about to change (``with_intent``:
the paths it will create, the packages it may install, a runtime change marked
``pending``) and only then changes the host; its completion is recorded after.
So a run killed at any point leaves a record that names everything it may have
changed: a re-run completes it, and ``uninstall`` undoes it.

A damaged record never loses the install. Three layers, all beside the record:

1. Validation as data: every field's type and shape is checked (``validate``);
   unknown fields are tolerated (a later gpubundle may add some), a missing
   required field, a wrong type, truncated JSON or a document that is not an
   object are problems, each named with its field.
2. A mirror: every save writes the record and then the same bytes to
   ``install-record.backup.json``. A kill between the two leaves the primary
   whole; damage to one file (an editor, a bad block) leaves the other. Fields
   the primary lost are taken from the mirror.
3. A ledger: before apt runs, the packages gpubundle may newly install (absent
   before gpubundle first ran) are appended to ``installed-packages.ledger``
   ("name version" lines, append-only, fsynced). Should both files be damaged or
   gone, the ledger still says which packages are gpubundle's: ``uninstall``
   removes them, and a new install never records them as ``packages_before``
   (pre-existing) because the record was lost. Without ``packages_before``, only
   ledger packages count as gpubundle's: a package that was there before is
   never removed on a guess.

``read_record`` returns the record rebuilt that way plus a ``RecordDamage``
saying which fields could not be read and where they came from instead;
``install`` rewrites a whole record (and mirror) on its first save, ``uninstall``
works from the rebuilt record and removes all three files, ``status`` reports the
damage (exit 1 when fields are lost), ``doctor`` reads what it can.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Tuple

from installer import history as install_history
from installer.atomicfile import write_json_atomic
from installer.diskspace import is_no_space, no_space_error
from installer.errors import GpubundleError
from installer.hostpaths import LEDGER_NAME, RECORD_MIRROR_NAME, HostPaths

RECORD_FORMAT = 1


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
    history: tuple[dict[str, Any], ...] = ()
    pending_history: dict[str, Any] | None = None
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

    def finished(self, at: str, family_after: dict[str, str]) -> InstallRecord:
        """This record completed at ``at``: the run's pending entry moved to ``history``."""
        done = self.history
        if self.pending_history is not None:
            entry = install_history.finished_entry(self.pending_history, family_after, at)
            done = (*done, entry)
        return dataclasses.replace(self, finished_at=at, history=done, pending_history=None)

    def with_files(self, *paths: str) -> InstallRecord:
        merged = tuple(dict.fromkeys((*self.files_created, *paths)))
        return dataclasses.replace(self, files_created=merged)


_TUPLE_FIELDS = {
    "steps_completed",
    "files_created",
    "cdi_specs_created",
    "images_loaded",
    "apt_lists",
    "history",
}


def backup_path(path: Path) -> Path:
    """The record's mirror (``HostPaths.record_mirror`` for the host's record)."""
    return path.with_name(RECORD_MIRROR_NAME)


def ledger_path(path: Path) -> Path:
    """The packages ledger beside the record (``HostPaths.ledger``)."""
    return path.with_name(LEDGER_NAME)


def companion_paths(path: Path) -> tuple[Path, Path]:
    """The files kept beside the record: its mirror and the packages ledger."""
    return backup_path(path), ledger_path(path)


# --- the schema, as data -----------------------------------------------------------------

Shape = Tuple[str, Callable[[Any], bool]]  # typing.Tuple: an alias runs on 3.8


def _str_list(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)


def _str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(x, str) for x in v.values())


def _runtime_change(v: Any) -> bool:
    if v is None:
        return True
    if not isinstance(v, dict) or not isinstance(v.get("path"), str) or not v["path"]:
        return False
    optional_str = ("backup_path", "sha256_before", "sha256_after")
    return (
        all(v.get(k) is None or isinstance(v[k], str) for k in optional_str)
        and all(isinstance(v.get(k, True), bool) for k in ("changed", "pending"))
        and isinstance(v.get("kind", ""), str)
    )


def _unowned_map(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(k, str) and (x is None or isinstance(x, str)) for k, x in v.items()
    )


_STR: Shape = ("a string", lambda v: isinstance(v, str))
_OPT_STR: Shape = ("a string or null", lambda v: v is None or isinstance(v, str))
_LIST: Shape = ("a list of strings", _str_list)
_MAP: Shape = ("an object of name: version strings", _str_map)
# field -> (shape, required). Required: every field format 1 was written with from the start.
SCHEMA: dict[str, tuple[Shape, bool]] = {
    "format": (("the integer 1", lambda v: v == RECORD_FORMAT and type(v) is int), True),
    "gpubundle_version": (_STR, True),
    "bundle_sha256": (_STR, True),
    "signer_fingerprint": (_STR, True),
    "distro": (_STR, True),
    "arch": (_STR, True),
    "toolkit_version": (_STR, True),
    "started_at": (_STR, True),
    "finished_at": (_OPT_STR, True),
    "steps_completed": (_LIST, True),
    "packages_before": (_MAP, True),
    "packages_installed": (_MAP, True),
    "files_created": (_LIST, True),
    "runtime_change": (("null or a runtime change with a path", _runtime_change), True),
    "engine_started_by_gpubundle": (("true or false", lambda v: isinstance(v, bool)), True),
    "cdi_specs_created": (_LIST, True),
    "images_loaded": (_LIST, True),
    "apt_lists": (_LIST, False),
    "in_progress": (_OPT_STR, False),
    "unowned_paths_created": (
        ('an object of path: sha256, "dir", "-> TARGET" or null', _unowned_map),
        False,
    ),
    "history": (
        ("a list of history entries (installer/history.py)", install_history.valid_history),
        False,
    ),
    "pending_history": (
        ("null or a history entry under way", install_history.valid_pending),
        False,
    ),
}


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(v), "null" if v is None else type(v).__name__
    )


def validate(data: Any) -> tuple[dict[str, Any], list[str]]:
    """The fields of ``data`` that have their schema's shape, and a problem per other field.

    A missing optional field is no problem (its default applies); unknown fields are
    ignored. Pure: used on the record, its mirror, and any JSON a user hands us.
    """
    if not isinstance(data, dict):
        return {}, [f"the record is {_kind(data)}, not a JSON object"]
    good: dict[str, Any] = {}
    problems: list[str] = []
    for name, ((shape, ok), required) in SCHEMA.items():
        if name not in data:
            if required:
                problems.append(f"{name}: missing")
            continue
        value = data[name]
        if ok(value):
            good[name] = tuple(value) if name in _TUPLE_FIELDS else value
        else:
            problems.append(f"{name}: must be {shape}, is {_kind(value)}")
    return good, problems


def record_from_json(data: Any) -> InstallRecord:
    """Build a record from decoded JSON; unknown keys are ignored, any problem is a ValueError."""
    good, problems = validate(data)
    if problems:
        raise ValueError(f"not an install record of format {RECORD_FORMAT}: " + "; ".join(problems))
    good.pop("format")
    return InstallRecord(**good)


# --- damage, and what survives it -------------------------------------------------------


@dataclass(frozen=True)
class RecordDamage:
    """What was wrong with the record, which fields are lost, and what stood in."""

    path: str
    problems: tuple[str, ...]
    lost: tuple[str, ...] = ()  # fields read neither from the record nor its mirror
    used: tuple[str, ...] = ()  # what the record was rebuilt from (the mirror, the ledger)

    def lines(self) -> list[str]:
        lines = [f"problem: {p}" for p in self.problems]
        if self.used:
            lines.append("rebuilt from: " + ", ".join(self.used))
        if self.lost:
            lines.append("lost (could not be read anywhere): " + ", ".join(self.lost))
        return lines

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RecordRead:
    record: InstallRecord | None
    damage: RecordDamage | None = None


def parse_ledger(text: str) -> dict[str, str]:
    """{name: version} of whole "name version" lines; a torn last line is ignored."""
    found: dict[str, str] = {}
    for line in text.split("\n")[:-1]:
        parts = line.split()
        if len(parts) == 2:
            found.setdefault(parts[0], parts[1])
    return found


def read_ledger(path: Path) -> dict[str, str]:
    try:
        return parse_ledger(path.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return {}


def append_ledger(packages: dict[str, str], path: Path) -> None:
    """Add ``packages`` not yet listed to the ledger at ``path``, durably, before apt runs."""
    known = read_ledger(path)
    new = "".join(f"{n} {v}\n" for n, v in sorted(packages.items()) if n not in known)
    if not new:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, new.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        if is_no_space(exc):
            raise no_space_error(path, exc, "recording the packages gpubundle installs") from exc
        raise


_PLACEHOLDER = {name: "" for name in ("gpubundle_version", "bundle_sha256", "signer_fingerprint",
                                      "distro", "arch", "toolkit_version", "started_at")}  # fmt: skip


def salvage(
    primary: dict[str, Any], mirror: dict[str, Any], ledger: dict[str, str]
) -> tuple[InstallRecord, tuple[str, ...], tuple[str, ...]]:
    """A record from the primary's readable fields, then the mirror's, then the ledger.

    Returns the record, the fields lost (defaults stand in) and what was used. Pure.
    """
    fields = {**mirror, **primary}
    used = [] if set(fields) == set(primary) else ["the mirror"]
    lost = [n for n, (_, required) in SCHEMA.items() if required and n not in fields]
    fields.pop("format", None)
    if ledger:
        before = fields.get("packages_before")
        if before is None:
            # Which packages were there before is unknown: only the ledger's are ours.
            fields["packages_installed"] = dict(ledger)
        else:
            gpubundles = {n: v for n, v in ledger.items() if n not in before}
            fields["packages_installed"] = {**gpubundles, **fields.get("packages_installed", {})}
        used.append("the packages ledger")
    elif "packages_before" not in fields:
        fields["packages_installed"] = {}  # none can be told apart from pre-existing ones
    record = InstallRecord(**{**_PLACEHOLDER, **fields})
    return record, tuple(lost), tuple(used)


def _read_json(path: Path) -> tuple[bool, Any, str]:
    """(exists, decoded document or None, problem)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return False, None, ""
    except OSError as exc:
        raise GpubundleError(
            f"cannot read the install record {path}: {exc.strerror or exc}",
            hint=f"check {path} and its directory (ls -l {path.parent}), then run again",
        ) from exc
    try:
        return True, json.loads(raw), ""
    except (ValueError, UnicodeDecodeError) as exc:
        return True, None, f"not valid JSON (truncated or overwritten?): {exc}"


def _newer_format(data: Any, path: Path) -> None:
    version = data.get("format") if isinstance(data, dict) else None
    if type(version) is int and version > RECORD_FORMAT:
        raise GpubundleError(
            f"the install record {path} is of format {version}, written by a newer gpubundle",
            hint="use the gpubundle-installer.pyz that installed it (or a newer one)",
        )


def read_record(path: Path, host: HostPaths) -> RecordRead:
    """The record at ``path``, rebuilt if damaged (module docstring); None: never installed.

    ``host`` (default: the system's) says where the apt source and its keyrings lie,
    claimed by name when the record lost its ``files_created``."""
    exists, data, problem = _read_json(path)
    _newer_format(data, path)
    primary, problems = validate(data) if exists and not problem else ({}, [problem])
    if exists and not problems:
        return RecordRead(record_from_json(data))
    if not exists:
        problems = ["missing"]
    mirror_path = backup_path(path)
    mirror_exists, mirror_data, mirror_problem = _read_json(mirror_path)
    mirror = validate(mirror_data)[0] if mirror_exists and not mirror_problem else {}
    ledger = read_ledger(ledger_path(path))
    if not exists and not mirror and not ledger:
        return RecordRead(None)
    record, lost, used = salvage(primary, mirror, ledger)
    if "bundle_sha256" in lost or "files_created" in lost:
        record = record.with_files(*owned_by_name(path.parent / "bundles", host))
    used = tuple(f"the mirror {mirror_path}" if u == "the mirror" else u for u in used)
    damage = RecordDamage(str(path), tuple(problems), lost, used)
    return RecordRead(record, damage)


def owned_by_name(store: Path, host: HostPaths) -> list[str]:
    """Paths that are gpubundle's by their very name: the bundle stores, the apt source
    and its keyrings. What uninstall removes when the record lost ``files_created``."""
    paths = sorted(p for p in store.glob("*") if p.is_dir()) if store.is_dir() else []
    paths += [host.sources_list] if host.sources_list.exists() else []
    paths += sorted(host.keyrings_dir.glob("gpubundle-*.gpg"))
    return [str(p) for p in paths]


def load_record(path: Path, host: HostPaths) -> InstallRecord | None:
    """The record at ``path`` (rebuilt if damaged), or None when gpubundle never installed."""
    return read_record(path, host).record


def damaged_record_error(damage: RecordDamage) -> GpubundleError:
    """What to tell a user whose record lost fields: which, and the way back."""
    record = Path(damage.path)
    return GpubundleError(
        f"the install record {record} is damaged: {len(damage.lost)} field(s) could not be "
        f"read from it or its mirror ({', '.join(damage.lost)})",
        hint=(
            "run `sh gpubundle-installer.pyz uninstall` to remove what gpubundle installed "
            f"(the readable fields and the ledger {ledger_path(record)} name its packages), or "
            "`sh gpubundle-installer.pyz install BUNDLE --trust FINGERPRINT` again with the "
            "same bundle to complete the install and write a whole record; do not delete "
            f"{record.parent}"
        ),
        details=damage.lines(),
    )


def save_record(record: InstallRecord, path: Path) -> None:
    """The record, then its mirror: at any moment one of them is whole."""
    write_json_atomic(path, record.as_json())
    write_json_atomic(backup_path(path), record.as_json())


def staging_leftovers(bundle_dir: Path) -> list[Path]:
    """Staging trees that an extraction of ``bundle_dir``, killed midway, left beside it.

    ``installer.bundle_reader`` extracts into ``.<name>.staging-*`` next to the target
    and renames it onto the target once complete; only SIGKILL or power loss leaves one.
    """
    if not bundle_dir.parent.is_dir():
        return []
    return sorted(bundle_dir.parent.glob(f".{bundle_dir.name}.staging-*"))


def original_packages(
    previous: InstallRecord | None,
    current: dict[str, str],
    ledger: dict[str, str] | None = None,
) -> dict[str, str]:
    """packages_before for a new record: what the host had before gpubundle ever ran.

    Packages an earlier gpubundle install put in place keep that install's
    "before"; packages the ledger lists were put there by gpubundle, record or no
    record; everything else is as the host has it now.
    """
    ours = set(ledger or ())
    if previous is None:
        return {n: v for n, v in current.items() if n not in ours}
    touched = set(previous.packages_installed) | ours
    merged = {n: v for n, v in current.items() if n not in touched}
    merged.update(previous.packages_before)
    return dict(sorted(merged.items()))


def carried_over(previous: InstallRecord) -> dict[str, Any]:
    """What an install of another bundle recorded and a new record must keep, so that
    uninstall still undoes it: its files, apt lists, runtime change, images and specs, and
    the packages it newly installed (still gpubundle's, in this bundle or not)."""
    ours = {
        n: v for n, v in previous.packages_installed.items() if n not in previous.packages_before
    }
    return {
        "packages_installed": ours,
        "files_created": previous.files_created,
        "apt_lists": previous.apt_lists,
        "runtime_change": previous.runtime_change,
        "engine_started_by_gpubundle": previous.engine_started_by_gpubundle,
        "images_loaded": previous.images_loaded,
        "cdi_specs_created": previous.cdi_specs_created,
        "unowned_paths_created": previous.unowned_paths_created,
        "history": previous.history,
    }
