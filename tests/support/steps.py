"""Install's step runner on a manifest alone (no bundle file), its host paths under a root."""

from __future__ import annotations

from pathlib import Path

from installer.bundle_reader import VerifiedBundle
from installer.console import Console
from installer.hostpaths import HostPaths
from installer.installsteps import StepRunner
from installer.manifest import Manifest
from installer.preflight import Options
from installer.trust import Trust
from tests.support.manifests import make_manifest
from tests.support.records import SHA


def verified(manifest: Manifest | None = None, sha: str = SHA) -> VerifiedBundle:
    """A bundle's verified facts as install passes them on; the file itself is never read."""
    return VerifiedBundle(
        Path("/nonexistent/bundle.tar.zst"), Trust(), manifest or make_manifest(), sha, "", b""
    )


def step_runner(
    root: Path,
    manifest: Manifest | None = None,
    *,
    runtime: str = "docker",
    skip_gpu_checks: bool = True,
    proof_rule: str = "default",
) -> StepRunner:
    """A StepRunner whose record, backups, logs, apt source and CDI spec lie under ``root``."""
    return StepRunner(
        verified(manifest),
        Options(runtime, skip_gpu_checks),
        Console(json_mode=True),
        HostPaths(root),
        proof_rule,
    )
