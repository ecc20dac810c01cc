"""``gpubundle verify BUNDLE --trust FPR``: check a bundle completely without changing the host.

Streams the bundle once through the same verifier ``install`` uses (nothing
is extracted), then prints what the bundle holds. Exit code 3 when anything
fails verification.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from installer.bundle_reader import verify_bundle
from installer.cli import handle_errors, host_paths, json_option, trust_option, trusted_keys
from installer.console import Console, Progress
from installer.manifest import Manifest
from installer.partstream import check_bundle_path, open_source
from installer.trust import warnings_in_errors


def summary(manifest: Manifest, bundle: Path, parts: int = 0) -> dict[str, Any]:
    """The verified bundle in a few fields, for people (table) and programs (--json).

    ``parts`` is the number of parts of a split bundle, 0 for one file.
    """
    return {
        "ok": True,
        "bundle": str(bundle),
        "parts": parts,
        "distro": manifest.distro,
        "arch": manifest.arch,
        "toolkit_version": manifest.toolkit_version,
        "signer": manifest.signer_fingerprint,
        "created_by": manifest.created_by,
        "source_date_epoch": manifest.source_date_epoch,
        "packages": [f"{p.name}={p.version}" for p in manifest.packages],
        "images": [p.ref for p in manifest.images],
        "files": len(manifest.files),
        "total_size": sum(entry.size for entry in manifest.files),
    }


def _rows(info: dict[str, Any]) -> list[list[str]]:
    return [
        ["distro", f"{info['distro']} ({info['arch']})"],
        ["toolkit", info["toolkit_version"]],
        ["signer", info["signer"]],
        ["packages", str(len(info["packages"]))],
        ["images", ", ".join(info["images"]) or "none"],
        ["files", f"{info['files']} ({info['total_size'] / 1e6:.1f} MB)"],
        *([["parts", f"{info['parts']}, every one intact"]] if info["parts"] else []),
    ]


@click.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@trust_option()
@json_option
def verify(bundle: Path, trust: tuple[str, ...], json_mode: bool) -> None:
    """Verify BUNDLE's signature and every byte of it; change nothing on this host.

    BUNDLE is a .tar.zst file, or for a bundle split with --split-size its
    NAME.parts.json or any of its parts (all of them must lie beside it).
    """
    console = Console(json_mode=json_mode)

    def body() -> None:
        check_bundle_path(bundle)
        trusted = trusted_keys(trust, host_paths().trust_dir, console)
        console.step(f"verifying {bundle.name}")
        with ExitStack() as stack, warnings_in_errors(trusted.warnings):
            bars: list[Progress] = []
            manifest = verify_bundle(
                bundle,
                trusted,
                on_total=lambda total: bars.append(
                    stack.enter_context(console.progress("verify", total))
                ),
                progress=lambda amount: bars[0].advance(amount),
            )
        index = open_source(bundle, trusted).index
        info = summary(manifest, bundle, len(index.parts) if index else 0)
        info["warnings"] = list(trusted.warnings)
        console.table(["field", "value"], _rows(info), title=f"{bundle.name}: verified")
        console.result("packages: " + " ".join(info["packages"]))
        console.emit(info)

    handle_errors(console, body)
