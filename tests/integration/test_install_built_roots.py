"""Bundles made by the real ``gpubundle build``, installed offline in Ubuntu 22.04, 24.04
and 26.04 and Debian 12 and 13 roots (apt 2.4 … 3.2, gpgv and sqv) by the
``gpubundle-installer.pyz`` that build shipped beside them.

The build is the user's: ``--distro``, the stand-in NVIDIA repository on loopback
(``--mirror nvidia=… --key nvidia=…``), the distro archive, ``--no-images``. The
root is a debootstrap minbase (plus python3 and gpgv), made to look like a host
where apt has run (``prime_apt``); the installer runs in it under ``unshare -n
chroot``, so nothing can be fetched.

- Built with ``--target-status ROOT/var/lib/dpkg/status``: the bundle holds what
  the root lacks; after install dpkg lists every bundled package at the bundle's
  version, exactly the planned packages changed, every changed file is one the plan
  named or a file of an installed package; ``uninstall --purge`` puts the root back.
- Built without it (the full closure from an empty status: libc6, dpkg and the rest
  that the root has already, at the same or an older version): apt accepts the
  bundle, installs only what is missing and leaves the root's own packages alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from installer import layout
from tests.support import testkeys
from tests.support.inroot import BUNDLE, gpubundle, ok_json, prime_apt, proc_mounted, stage
from tests.support.installbundles import HostBundle, build_target_bundle
from tests.support.rootfiles import (
    FAMILY,
    INCLUDE,
    changed_paths,
    dpkg_status,
    package_files,
    snapshot,
    unexplained,
)
from tests.support.roots import debootstrap_root
from tests.support.rootsnapshot import capture, differences
from tests.support.standin_served import ServedStandin

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.archive]

GPUBUNDLE_PATHS = (layout.STATE_DIR, layout.LOG_DIR, layout.LOCK_FILE)
KEPT = (layout.LOG_DIR, layout.LOCK_FILE)  # why: see test_uninstall_roots.py
INSTALLED = "install ok installed"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("signer"), name="gpubundle built roots")


def build(tmp: Path, key: testkeys.TestKey, standin: ServedStandin, distro: str,
          status: Path | None) -> HostBundle:  # fmt: skip
    return build_target_bundle(
        tmp / "out", key, standin.url, standin.armored_key, distro=distro, target_status=status
    )


def install(root: Path, bundle: HostBundle, *extra: str) -> dict[str, Any]:
    return ok_json(
        gpubundle(root, "install", BUNDLE, "--trust", bundle.fingerprint, "--runtime", "none",
                  "--skip-gpu-checks", "--json", *extra)
    )  # fmt: skip


def staged_root(tmp: Path, distro: str) -> Path:
    return debootstrap_root(distro, "minbase", INCLUDE, dest=tmp / "root")


# Targets whose stock python3 the installer runs on today (the rest: #11's runtime half).
@pytest.mark.parametrize(
    "distro", ["ubuntu22.04", "ubuntu24.04", "ubuntu26.04", "debian12", "debian13"]
)
def test_built_for_the_root_installs_offline(
    distro: str, tmp_path: Path, key: testkeys.TestKey, standin_repo: ServedStandin
) -> None:
    root = staged_root(tmp_path, distro)
    bundle = build(tmp_path, key, standin_repo, distro, root / "var/lib/dpkg/status")
    assert bundle.manifest.distro == distro and bundle.installer is not None
    assert set(FAMILY) <= set(bundle.packages)
    stage(root, bundle.path, bundle.installer)
    with proc_mounted(root):
        prime_apt(root)
        before, files0, packages0 = capture(root).without(KEPT), snapshot(root), dpkg_status(root)
        # Built against the root's status: nothing in it is there already.
        assert not set(bundle.packages) & set(packages0)

        plan = install(root, bundle, "--dry-run")["plan"]
        assert plan["packages"] == bundle.packages
        install(root, bundle, "--yes")

        packages1 = dpkg_status(root)
        for name, version in bundle.packages.items():
            assert packages1[name] == (version, INSTALLED), name
        changed = {n for n in packages0.keys() | packages1.keys()
                   if packages0.get(n) != packages1.get(n)}  # fmt: skip
        assert changed == set(plan["packages"])
        planned = {p for s in plan["steps"] if s["pending"] for p in s["paths"]}
        extra = unexplained(
            changed_paths(files0, snapshot(root)),
            planned | set(GPUBUNDLE_PATHS),
            package_files(root, changed),
        )
        assert extra == [], f"changed but not in the plan: {extra}"

        ok_json(gpubundle(root, "uninstall", "--purge", "--yes", "--json"))
        assert differences(before, capture(root).without(KEPT)) == []


def test_full_closure_bundle_installs_over_what_the_root_has(
    tmp_path: Path, key: testkeys.TestKey, standin_repo: ServedStandin
) -> None:
    distro = "debian12"
    root = staged_root(tmp_path, distro)
    bundle = build(tmp_path, key, standin_repo, distro, None)
    assert bundle.installer is not None
    stage(root, bundle.path, bundle.installer)
    with proc_mounted(root):
        prime_apt(root)
        before, packages0 = capture(root).without(KEPT), dpkg_status(root)
        # The bundle carries packages the root has already, at the same or an older version.
        shared = set(bundle.packages) & set(packages0)
        assert "libc6" in shared, sorted(shared)
        same = {n for n in shared if packages0[n][0] == bundle.packages[n]}
        assert same, "the root and the bundle share no package at one version"

        plan = install(root, bundle, "--dry-run")["plan"]
        assert set(FAMILY) <= set(plan["packages"])
        assert not set(plan["packages"]) & shared  # what the root has is left alone
        doc = install(root, bundle, "--yes")

        packages1 = dpkg_status(root)
        for name in plan["packages"]:
            assert packages1[name] == (bundle.packages[name], INSTALLED), name
        for name in shared:
            assert packages1[name] == packages0[name], f"{name} changed"
        changed = {n for n in packages0.keys() | packages1.keys()
                   if packages0.get(n) != packages1.get(n)}  # fmt: skip
        assert changed == set(plan["packages"])
        assert set(doc["record"]["packages_installed"]) == changed

        ok_json(gpubundle(root, "uninstall", "--purge", "--yes", "--json"))
        assert differences(before, capture(root).without(KEPT)) == []
