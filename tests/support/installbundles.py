"""Bundles made with the real ``gpubundle build``: the one bundle builder of the
integration tests (the unit tier, which has no network, makes small signed bundles from
tiny .debs with the bundler's own modules: tests/support/bundles.py).

``build_target_bundle`` builds for any target (``--distro``), against a given status
file or none (the full closure, libc6 and all). Against a debootstrap root's
``var/lib/dpkg/status`` (or ``tests.support.roots.minbase_status``) the bundle holds
the NVIDIA packages plus only what that root lacks; for this very host, pass
``distro=host_distro()`` and ``target_status=HOST_DPKG_STATUS``
(``--target-status /var/lib/dpkg/status``), exactly as a user builds for a known
target. NVIDIA's repository is the test world's
stand-in (tests/support/standin_nvidia.py) and the images come from the loopback
registry (tests/support/registry.py), or there are none (``--no-images``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bundler.buildplan import INSTALLER_NAME
from installer.bundle_reader import verify_bundle
from installer.hostinfo import distro_name, read_os_release
from installer.hostpaths import HostPaths
from installer.manifest import Manifest
from tests.conftest import CACHE_DIR
from tests.support.inroot import stage
from tests.support.standin_served import ServedStandin
from tests.support.testkeys import TestKey

BUILD_CACHE = CACHE_DIR / "build"  # shared with tests/integration/test_build.py
HOST_DPKG_STATUS = Path("/var/lib/dpkg/status")
CLI = [sys.executable, "-c", "from bundler.cli import main; main()"]


@dataclass(frozen=True)
class HostBundle:
    path: Path
    fingerprint: str  # what --trust takes
    sha256: str
    manifest: Manifest
    installer: Path | None = None  # the gpubundle-installer.pyz the build wrote beside it

    @property
    def packages(self) -> dict[str, str]:
        return {p.name: p.version for p in self.manifest.packages}


def gpubundle(
    *args: str, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """The real ``gpubundle`` command line as a subprocess, stdin closed, output captured."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


def host_distro() -> str:
    """The host's target name, e.g. "debian12", as gpubundle's manifests/ name targets."""
    return distro_name(read_os_release(HostPaths.system().os_release_files))


def build_target_bundle(
    out_dir: Path,
    signer: TestKey,
    nvidia_url: str,
    nvidia_key: bytes,
    *,
    distro: str,
    target_status: Path | None,
    images: Sequence[str] = (),
    toolkit_version: str | None = None,
    extra: Sequence[str] = (),
) -> HostBundle:
    """``gpubundle build --distro DISTRO [EXTRA]`` signed by ``signer``, against
    ``target_status`` (None: the full closure); no images unless given; the newest toolkit
    unless ``toolkit_version``. Fails the test if the build fails."""
    out_dir.mkdir(parents=True, exist_ok=True)
    key_file = out_dir / "nvidia-source-key.asc"
    key_file.write_bytes(nvidia_key)
    bundle = out_dir / f"{distro}.tar.zst"
    args = [
        "build", "--distro", distro,
        "--mirror", f"nvidia={nvidia_url}", "--key", f"nvidia={key_file}",
        "--sign-key", signer.fingerprint, "--gnupghome", str(signer.gnupghome),
        "--cache-dir", str(BUILD_CACHE), "--output", str(bundle), "--json",
    ]  # fmt: skip
    if target_status is not None:
        args += ["--target-status", str(target_status)]
    for ref in images:
        args += ["--image", ref]
    if not images:
        args.append("--no-images")
    if toolkit_version is not None:
        args += ["--toolkit-version", toolkit_version]
    proc = gpubundle(*args, *extra)
    assert proc.returncode == 0, f"gpubundle build failed:\n{proc.stderr}\n{proc.stdout}"
    manifest = verify_bundle(bundle, [signer.fingerprint])
    sha = hashlib.sha256(bundle.read_bytes()).hexdigest()
    pyz = bundle.with_name(INSTALLER_NAME)  # the build writes it beside the bundle
    assert pyz.is_file(), f"gpubundle build wrote no {pyz}"
    return HostBundle(bundle, signer.fingerprint, sha, manifest, pyz)


def install(
    bundle: HostBundle, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``gpubundle install BUNDLE --trust FPR --runtime docker --skip-gpu-checks --yes EXTRA``."""
    return gpubundle(
        "install", str(bundle.path), "--trust", bundle.fingerprint,
        "--runtime", "docker", "--skip-gpu-checks", "--yes", *extra, env=env,
    )  # fmt: skip


def ok_document(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The ``--json`` document of a run that must have succeeded."""
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stderr}\n{proc.stdout}"
    doc: dict[str, Any] = json.loads(proc.stdout)
    assert doc["ok"] is True, doc
    return doc


def bundle_for_root(
    root: Path,
    distro: str,
    out_dir: Path,
    signer: TestKey,
    standin: ServedStandin,
    *,
    pyz: Path | None = None,
    **build: Any,
) -> HostBundle:
    """The bundle ``gpubundle build`` makes for exactly what ``root`` has (its dpkg status),
    from the stand-in NVIDIA repository; with ``pyz``, staged in the root with the
    installer (``inroot.stage``). ``build``: more of ``build_target_bundle``'s options."""
    bundle = build_target_bundle(
        out_dir, signer, standin.url, standin.armored_key, distro=distro,
        target_status=root / "var/lib/dpkg/status", **build,
    )  # fmt: skip
    if pyz is not None:
        stage(root, bundle.path, pyz)
    return bundle
