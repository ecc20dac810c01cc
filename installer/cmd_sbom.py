"""``gpubundle sbom BUNDLE --trust FPR``: the bundle's CycloneDX SBOM, once all of it verified.

The SBOM is a member of the bundle listed in its signed manifest: it is printed only
after the signature and every member checked out, exactly as ``verify`` checks them,
byte for byte as the build wrote it. Standard library only, like every target command.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from installer import layout
from installer.bundle_reader import read_members
from installer.cli import handle_errors, host_paths, trust_option, trusted_keys
from installer.console import Console
from installer.errors import GpubundleError
from installer.partstream import check_bundle_path
from installer.trust import warnings_in_errors


@click.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@trust_option()
def sbom(bundle: Path, trust: tuple[str, ...]) -> None:
    """Verify BUNDLE completely, then print its SBOM (CycloneDX JSON) on stdout.

    Every .deb (with its purl, sha256 and source repository), every image (with its
    digest) and the toolkit's known vulnerabilities as VEX entries. The output is
    JSON already, so there is no --json.

    \b
    Example:
      gpubundle sbom gpubundle-ubuntu22.04-amd64-1.20.1-1.tar.zst --trust 0123...CDEF \\
          > gpubundle-ubuntu22.04-amd64-1.20.1-1.cdx.json
    """
    console = Console()

    def body() -> None:
        check_bundle_path(bundle)
        trusted = trusted_keys(trust, host_paths().trust_dir, console)
        console.step(f"verifying {bundle.name}")
        with warnings_in_errors(trusted.warnings):
            manifest, kept = read_members(bundle, trusted, [layout.SBOM])
        if layout.SBOM not in kept:
            raise GpubundleError(
                f"{bundle.name} is verified but holds no SBOM ({layout.SBOM}): it was built "
                f"by {manifest.created_by or 'an older gpubundle'}",
                hint="rebuild the bundle with a gpubundle that writes one",
            )
        sys.stdout.buffer.write(kept[layout.SBOM])
        sys.stdout.flush()

    handle_errors(console, body)
