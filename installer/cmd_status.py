"""``gpubundle status``: what gpubundle installed on this host, from its install record.

A damaged record (``installer.record``) is reported: rebuilt whole from its mirror,
status shows it with a warning (exit 0, ``record_damage`` in the JSON); with fields
lost everywhere, status exits 1 naming them and the way back (uninstall, or install
of the same bundle again).
"""

from __future__ import annotations

import click

from installer import history
from installer.cli import handle_errors, host_paths, json_option
from installer.console import Console
from installer.record import InstallRecord, damaged_record_error, read_record


def render(record: InstallRecord) -> list[str]:
    state = (
        f"finished {record.finished_at}"
        if record.finished_at
        else "NOT finished (interrupted or failed)"
    )
    lines = [
        f"nvidia-container-toolkit {record.toolkit_version} for {record.distro}/{record.arch}",
        f"installed by gpubundle {record.gpubundle_version}: started {record.started_at}, {state}",
        f"bundle sha256 {record.bundle_sha256}",
        f"signed by {record.signer_fingerprint}",
        f"steps completed: {', '.join(record.steps_completed) or 'none'}",
    ]
    if record.packages_installed:
        lines.append("packages installed or upgraded:")
        for name, version in sorted(record.packages_installed.items()):
            before = record.packages_before.get(name)
            lines.append(f"  {name} {version}" + (f" (was {before})" if before else ""))
    if record.runtime_change:
        change = record.runtime_change
        backup = change.get("backup_path") or "none: the file did not exist"
        lines.append(f"engine configuration: {change.get('path')} (backup: {backup})")
    for title, items in (
        ("files created", record.files_created),
        ("CDI specs created", record.cdi_specs_created),
        ("images loaded", record.images_loaded),
    ):
        if items:
            lines.append(f"{title}:")
            lines.extend(f"  {item}" for item in items)
    if record.engine_started_by_gpubundle:
        lines.append("Docker was started by gpubundle")
    if record.history:
        lines.append("history (oldest first):")
        lines.extend(history.lines(record.history))
    return lines


@click.command()
@json_option
def status(json_mode: bool) -> None:
    """Show what gpubundle installed here: when, from which bundle, which steps finished."""
    console = Console(json_mode)
    host = host_paths()
    path = host.record

    def body() -> None:
        read = read_record(path, host)
        record, damage = read.record, read.damage
        if damage is not None and damage.lost:
            raise damaged_record_error(damage)
        if record is None:
            console.result(f"gpubundle has not installed anything on this host (no {path})")
            console.emit({"ok": True, "installed": False, "record": None, "history": []})
            return
        if damage is not None:
            console.warn(f"the install record {path} was damaged; rebuilt from what survived it:")
            for line in damage.lines():
                console.warn(f"  {line}")
        for line in render(record):
            console.result(line)
        console.emit(
            {
                "ok": True,
                "installed": True,
                "complete": record.finished_at is not None,
                "record": record.as_json(),
                "history": list(record.history),
                "record_damage": damage.as_json() if damage else None,
            }
        )

    handle_errors(console, body)
