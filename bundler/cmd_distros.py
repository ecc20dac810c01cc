"""``gpubundle distros``: the targets a bundle can be built for, their sources and keys."""

from __future__ import annotations

from typing import Any

import click

from bundler.targets import Target, list_targets, load_target
from installer.cli import handle_errors, json_option
from installer.console import Console


def describe(target: Target) -> dict[str, Any]:
    """One target as data: what ``--json`` prints and the table is drawn from."""
    return {
        "name": target.name,
        "distro": {"id": target.distro_id, "version": target.version, "codename": target.codename},
        "python": target.python,
        # The installer runs on the host's python3 when it is 3.8+, else on this one,
        # which every bundle carries (docs/installing.md).
        "carried_python": target.carried_python,
        "arches": list(target.arches),
        "images": list(target.images),
        "sources": [
            {
                "id": s.id,
                "urls": {arch: s.url_for(arch) for arch in target.arches},
                "suite": s.suite,
                "components": list(s.components),
                "key_fingerprints": list(s.key.fingerprints),
                "key_from": s.key.url or (s.key.file.name if s.key.file else ""),
            }
            for s in target.sources
        ],
    }


def table_rows(targets: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for t in targets:
        rows.append(
            [
                t["name"],
                f"{t['distro']['id']} {t['distro']['version']} ({t['distro']['codename']})",
                t["python"],
                ",".join(t["arches"]),
                " ".join(s["id"] for s in t["sources"]),
                f"python{t['carried_python']}",
            ]
        )
    return rows


@click.command()
@click.option("--sources", "show_sources", is_flag=True, help="Also list every source's URLs.")
@json_option
def distros(show_sources: bool, json_mode: bool) -> None:
    """List the target distributions, their apt sources, python and architectures."""
    console = Console(json_mode=json_mode)

    def body() -> None:
        targets = [describe(load_target(name)) for name in list_targets()]
        console.table(
            ["target", "distro", "python3", "arches", "sources", "carried"],
            table_rows(targets),
        )
        if show_sources:
            for t in targets:
                for s in t["sources"]:
                    urls = " ".join(f"{arch}={url}" for arch, url in s["urls"].items())
                    console.result(f"{t['name']} {s['id']}: {urls} suite {s['suite']}")
        console.emit({"ok": True, "targets": targets})

    handle_errors(console, body)
