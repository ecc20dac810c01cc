"""``gpubundle diff OLD NEW --trust FPR``: what a new bundle changes against an old one.

Both bundles are verified completely first (signature and every member, as ``verify``
checks them); then their signed manifests are compared: packages added, removed,
upgraded and downgraded, images added, removed and changed. A table on stdout, or one
JSON document with ``--json``. Nothing on the host changes.
"""

from __future__ import annotations

from pathlib import Path

import click

from installer.bundle_reader import verify_bundle
from installer.bundlediff import diff
from installer.cli import handle_errors, host_paths, json_option, trust_option, trusted_keys
from installer.console import Console
from installer.partstream import check_bundle_path
from installer.trust import warnings_in_errors


@click.command(name="diff")
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@trust_option(
    "Full fingerprint of a key whose signature you accept (repeatable; both bundles "
    "must verify with the keys given); keys in /etc/gpubundle/trusted.d are trusted too."
)
@json_option
def diff_command(old: Path, new: Path, trust: tuple[str, ...], json_mode: bool) -> None:
    """Verify OLD and NEW, then list what NEW changes: packages added, removed,
    upgraded or downgraded, and images added, removed or changed.

    \b
    Example (for the change ticket before carrying a bundle in):
      gpubundle diff gpubundle-debian12-amd64-1.17.8-1.tar.zst \\
          gpubundle-debian12-amd64-1.20.1-1.tar.zst --trust 0123...CDEF
    """
    console = Console(json_mode=json_mode)

    def body() -> None:
        for bundle in (old, new):
            check_bundle_path(bundle)
        trusted = trusted_keys(trust, host_paths().trust_dir, console)
        with warnings_in_errors(trusted.warnings):
            console.step(f"verifying {old.name}")
            before = verify_bundle(old, trusted)
            console.step(f"verifying {new.name}")
            after = verify_bundle(new, trusted)
        changes = diff(before, after)
        title = (
            f"{old.name} ({before.distro}, toolkit {before.toolkit_version}) -> "
            f"{new.name} ({after.distro}, toolkit {after.toolkit_version})"
        )
        if changes.empty:
            console.result(f"{title}: no package or image changes")
        else:
            console.table(["change", "name", "old", "new"], changes.rows(), title=title)
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(changes.counts().items()))
        console.result(
            f"packages: {counts or 'none changed'}; {changes.unchanged_packages} unchanged; "
            f"images: {len(changes.images)} changed"
        )
        if before.distro != after.distro or before.arch != after.arch:
            console.warn(
                f"the bundles are for different targets: {before.distro}/{before.arch} and "
                f"{after.distro}/{after.arch}"
            )
        console.emit(
            {
                "ok": True,
                "old": {"bundle": str(old), "distro": before.distro, "arch": before.arch},
                "new": {"bundle": str(new), "distro": after.distro, "arch": after.arch},
                **changes.as_json(),
                "warnings": list(trusted.warnings),
            }
        )

    handle_errors(console, body)
