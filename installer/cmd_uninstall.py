"""``gpubundle uninstall``: undo exactly what install recorded, plan first.

A damaged record is read as ``installer.record`` rebuilds it (its mirror, then the
packages ledger): the plan then says what was damaged and lost, and still removes
every package the ledger shows gpubundle newly installed. The record, its mirror and
the ledger go together, and so do temporary files killed writes left beside the files
uninstall manages (``installer.atomicfile``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

import click

from installer import engine, engines, unownedpaths
from installer.aptlocal import (
    APT_ENV,
    apt_mark_manual_argv,
    auto_installed,
    source_lists,
)
from installer.atomicfile import sweep_leftovers, write_atomically
from installer.cli import handle_errors, host_paths, json_option
from installer.conffiles import read_conffiles
from installer.console import Console
from installer.doctor.toolkit import installed_packages
from installer.errors import GpubundleError
from installer.hostlock import host_lock
from installer.hostpaths import HostPaths
from installer.layout import BACKUPS_DIR, REPO_DIR
from installer.record import (
    InstallRecord,
    RecordDamage,
    companion_paths,
    read_record,
    staging_leftovers,
)
from installer.runner import run
from installer.uninstallplan import (
    NVIDIA_RUNTIMES,
    Action,
    HostNow,
    UninstallPlan,
    plan_uninstall,
)

DPKG_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None


def _image_present(ref: str) -> bool:
    return run(["docker", "image", "inspect", ref], check=False, timeout=60).returncode == 0


def bundle_dirs(record: InstallRecord, store: Path) -> list[Path]:
    """Every bundle store of the record: this bundle's and those of bundles installed before."""
    dirs = [store / record.bundle_sha256] if record.bundle_sha256 else []  # "": lost
    dirs += (Path(p) for p in record.files_created if Path(p).parent == store)
    return list(dict.fromkeys(dirs))


def read_auto_marked(names: set[str], path: Path) -> set[str]:
    try:
        return names & auto_installed(path.read_text(errors="replace"))
    except FileNotFoundError:
        return set()


def state_dirs(record_path: Path) -> tuple[str, ...]:
    """gpubundle's own directories beside the record, deepest first, those present."""
    top = record_path.parent
    dirs = (top / "backup", top / "bundles", top)
    return tuple(str(d) for d in dirs if d.is_dir() and not d.is_symlink())


def read_host(record: InstallRecord, host: HostPaths) -> HostNow:
    admindir = host.dpkg_admin_dir
    names = tuple(record.packages_installed)
    states = installed_packages(admindir, names) if names else {}
    # "rc" (removed, config files left) counts: purging still has work to do.
    packages = {n: s.version for n, s in states.items() if s.status[1:2] != "n"}
    unpacked = {n for n, s in states.items() if s.status[1:2] not in ("c", "n")}
    stores = bundle_dirs(record, host.bundles)
    lists = {str(p) for d in stores for p in source_lists(d / REPO_DIR, host.apt_lists_dir)}
    lists |= {p for p in record.apt_lists if os.path.lexists(p)}
    change = record.runtime_change or {}
    changed = engines.adapter_for_change(change)
    docker = engines.adapter_for("docker")  # the images are Docker's
    ask_docker = bool(record.images_loaded) or (bool(change) and changed is docker)
    running = docker.detect(host).running if ask_docker else False
    engine_running = running
    if change and changed is not docker:
        engine_running = changed.detect(host, Path(change["path"])).running
    paths = (*record.files_created, *record.cdi_specs_created)
    return HostNow(
        packages=packages,
        daemon_json=_read(change.get("path")),
        daemon_backup=_read(change.get("backup_path")),
        existing_paths=frozenset(p for p in paths if os.path.lexists(p)),
        images_present=frozenset(i for i in record.images_loaded if running and _image_present(i)),
        engine_running=engine_running,
        auto_marked=frozenset(read_auto_marked(unpacked, host.apt_extended_states)),
        apt_lists=frozenset(lists),
        staging=frozenset(str(p) for d in stores for p in staging_leftovers(d)),
        state_dirs=state_dirs(host.record),
        conffiles=read_conffiles(admindir, sorted(packages), host),
        unowned_paths=unownedpaths.fingerprints(host, record.unowned_paths_created),
        root="" if host.root == Path("/") else str(host.root),
    )


def dpkg_purge_argv(names: tuple[str, ...]) -> list[str]:
    return ["dpkg", "--purge", *names]


def save_copies(saved: dict[str, str]) -> None:
    """Copy each changed file (mode and times kept) to its place under the backup directory."""
    for path, copy in saved.items():
        dest = Path(copy)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest, follow_symlinks=False)
        except OSError as exc:
            raise GpubundleError(
                f"cannot save {path} to {dest} before removing it: {exc}",
                hint=f"copy {path} somewhere safe yourself, free space under {BACKUPS_DIR}, "
                "then re-run uninstall",
            ) from exc


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def execute(action: Action, plan: UninstallPlan, record: InstallRecord, host: HostPaths) -> None:
    if action.kind == "remove-images":
        run(
            ["docker", "image", "rm", *action.targets],
            timeout=300,
            hint="stop and remove the containers using these images (docker ps -a), then re-run",
        )
    elif action.kind in ("write-daemon-json", "write-config"):
        config = Path(action.targets[0])
        mode = config.stat().st_mode & 0o7777 if config.exists() else 0o644
        write_atomically(config, (action.content or "").encode(), mode)
    elif action.kind in ("delete-daemon-json", "delete-config"):
        Path(action.targets[0]).unlink(missing_ok=True)
    elif action.kind == "restart-engine":
        adapter = engines.adapter_for_change(record.runtime_change)
        facts = adapter.detect(host, Path(path) if (path := change_path(record)) else None)
        adapter.wait_ready(facts, adapter.restart(facts, host), 90)
    elif action.kind == "stop-engine":
        engine.stop_engine(engine.detect_engine(host), sysv_script=host.docker_sysv_script)
    elif action.kind == "save-files":
        save_copies({p: plan.saved[p] for p in action.targets})
    elif action.kind == "remove-packages":
        run(
            dpkg_purge_argv(action.targets),
            env=DPKG_ENV,
            timeout=600,
            hint="another package depends on these; remove it first or keep the toolkit",
        )
    elif action.kind == "unmark-auto":
        run(
            apt_mark_manual_argv(host.sources_list, action.targets),
            env=APT_ENV,
            timeout=300,
            hint="run `dpkg --audit` and `apt-mark showauto`, fix what they name, then re-run",
        )
    elif action.kind in ("remove-paths", "remove-apt-lists"):
        for path in action.targets:
            remove_path(Path(path))
    elif action.kind == "remove-empty-dirs":
        for path in action.targets:
            with contextlib.suppress(OSError):  # not empty: something else lives there
                os.rmdir(path)
    elif action.kind == "remove-record":
        backup = (record.runtime_change or {}).get("backup_path")
        if backup:
            Path(backup).unlink(missing_ok=True)
        for path in action.targets:
            # The record first, its mirror and the packages ledger last: a kill in between
            # leaves them for the next uninstall to read.
            for each in (Path(path), *companion_paths(Path(path))):
                each.unlink(missing_ok=True)
                sweep_leftovers(each)
    else:
        raise GpubundleError(f"unknown uninstall action {action.kind!r}", hint="report this bug")


def change_path(record: InstallRecord) -> str:
    return str((record.runtime_change or {}).get("path") or "")


def check_no_dangling_default(record: InstallRecord) -> None:
    """Never leave ``default-runtime: nvidia`` behind without the runtime it names."""
    if engines.adapter_for_change(record.runtime_change).config_format != "json":
        return  # gpubundle never sets containerd's or CRI-O's default runtime
    path = (record.runtime_change or {}).get("path")
    data = _read(path)
    if not data or not data.strip():
        return
    default = json.loads(data).get("default-runtime")
    if default in NVIDIA_RUNTIMES and shutil.which("nvidia-container-runtime") is None:
        raise GpubundleError(
            f"{path} still sets default-runtime {default!r}, whose runtime is gone",
            hint=f'remove "default-runtime" from {path} and restart Docker',
        )


def managed_files(record: InstallRecord, host: HostPaths) -> list[Path]:
    """Files uninstall removes or rewrites, whose killed atomic writes it sweeps up."""
    change = record.runtime_change or {}
    paths = [host.record, *companion_paths(host.record), host.sources_list]
    paths += (Path(p) for p in (*record.files_created, *record.cdi_specs_created))
    paths += (Path(str(change[k])) for k in ("path", "backup_path") if change.get(k))
    return paths


def damage_notes(damage: RecordDamage) -> tuple[str, ...]:
    head = f"the install record {damage.path} was damaged; this plan is from what survived it"
    lost = {
        "runtime_change": "the container runtime's configuration is left as it is: check it "
        "for nvidia entries by hand",
        "images_loaded": "images install loaded are kept: remove them with docker image rm",
        "cdi_specs_created": "CDI specs are kept: look in /etc/cdi and /var/run/cdi",
    }
    return (head, *damage.lines(), *(lost[f] for f in damage.lost if f in lost))


def render_plan(plan: UninstallPlan) -> str:
    if plan.nothing_to_do:
        return "nothing to do: everything install did is already undone"
    lines = ["uninstall plan:"]
    for i, action in enumerate(plan.actions, 1):
        lines.append(f"  {i}. {action.summary}")
        if action.kind == "save-files":
            lines.extend(f"       {t} -> {plan.saved[t]}" for t in action.targets)
            continue
        lines.extend(f"       {t}" for t in action.targets if action.kind != "remove-record")
    lines.extend(f"  note: {n}" for n in plan.notes)
    return "\n".join(lines)


@click.command()
@json_option
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--keep-images", is_flag=True, help="Keep the images install loaded.")
@click.option(
    "--purge",
    is_flag=True,
    help="Accepted for older scripts: packages install added are always purged.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def uninstall(json_mode: bool, dry_run: bool, keep_images: bool, purge: bool, yes: bool) -> None:
    """Undo what `gpubundle install` recorded: configuration, packages, repository, images."""
    console = Console(json_mode)
    host = host_paths()
    record_path = host.record

    def body() -> None:
        with host_lock(host.lock, "gpubundle uninstall"):
            read = read_record(record_path, host)
            record = read.record
            if record is None:
                sweep_leftovers(record_path, *companion_paths(record_path))
                console.result(
                    f"nothing to do: gpubundle has not installed anything here ({record_path})"
                )
                console.emit(
                    {"ok": True, "nothing_to_do": True, "actions": [], "notes": [], "saved": {}}
                )
                return
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            plan = plan_uninstall(
                record,
                read_host(record, host),
                keep_images=keep_images,
                purge=purge,
                record_path=str(record_path),
                backup_dir=str(host.backups_dir / stamp),
            )
            if read.damage is not None:
                plan = dataclasses.replace(plan, notes=(*damage_notes(read.damage), *plan.notes))
            console.result(render_plan(plan))
            if dry_run:
                console.emit({"ok": True, "dry_run": True, **plan.as_dict()})
                return
            if not yes and not json_mode:
                if not sys.stdin.isatty():
                    raise GpubundleError("uninstall needs confirmation", hint="re-run with --yes")
                click.confirm("carry out this plan?", abort=True, err=True)
            for action in plan.actions:
                console.step(action.summary)
                execute(action, plan, record, host)
            sweep_leftovers(*managed_files(record, host))
            check_no_dangling_default(record)
            for path, copy in plan.saved.items():
                console.info(f"saved {path} (changed since install) as {copy}")
            console.result("uninstall complete")
            console.emit({"ok": True, "dry_run": False, **plan.as_dict()})

    handle_errors(console, body)
