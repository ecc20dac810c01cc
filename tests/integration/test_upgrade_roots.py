"""Upgrades and rollbacks as first-class flows, in a real Debian 12 root, each step offline.

Two real bundles made by ``gpubundle build`` from the stand-in NVIDIA repository for
what a minbase Debian 12 root has (``bundle_for_root``): toolkit 1.17.8-1 and 1.20.1-1.
Inside the root (``unshare -n chroot``, the shipped installer): install 1.17.8-1, then
1.20.1-1 over it (an upgrade in place, the whole family up); 1.17.8-1 again is refused
without ``--allow-downgrade`` (exit 4, the root unchanged, both versions and the flag
named); with it the family goes down together (apt's ``--allow-downgrades``); ``status
--json`` shows the three entries in order; uninstall leaves the root as it was before the
first install (``tests/support/rootsnapshot.py``). A second root is uninstalled straight
after the upgrade, to the same pristine state.

The installer runs with ``--runtime none`` (the host's dockerd is visible from a chroot).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support import testkeys
from tests.support.inroot import DROP, gpubundle, ok_json, prime_apt, proc_mounted, stage
from tests.support.installbundles import HostBundle, build_target_bundle, bundle_for_root
from tests.support.rootfiles import FAMILY, INCLUDE, VERSION, dpkg_status
from tests.support.roots import debootstrap_root
from tests.support.rootsnapshot import listing, listing_differences
from tests.support.standin_served import ServedStandin

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.archive]

OLD = "1.17.8-1"
NEW = VERSION  # 1.20.1-1, the stand-in's newest
RECORD = "var/lib/gpubundle/install-record.json"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("signer"), name="gpubundle upgrade test")


@pytest.fixture(scope="module")
def bundles(
    tmp_path_factory: pytest.TempPathFactory, key: testkeys.TestKey, standin_repo: ServedStandin
) -> dict[str, HostBundle]:
    """Both bundles, built once for what a minbase Debian 12 root has."""
    where = tmp_path_factory.mktemp("bundles")
    root = debootstrap_root("debian12", "minbase", INCLUDE, dest=where / "root")
    return {
        version: bundle_for_root(
            root, "debian12", where / version, key, standin_repo, toolkit_version=version
        )
        for version in (OLD, NEW)
    }


def staged_root(dest: Path, bundles: dict[str, HostBundle], installer_pyz: Path) -> Path:
    """A fresh minbase Debian 12 root with both bundles in /tmp/gpubundle as VERSION.tar.zst."""
    root = debootstrap_root("debian12", "minbase", INCLUDE, dest=dest)
    stage(root, bundles[OLD].path, installer_pyz)
    for version, bundle in bundles.items():
        shutil.copyfile(bundle.path, root / DROP.lstrip("/") / f"{version}.tar.zst")
    return root


def install(root: Path, version: str, fingerprint: str, *extra: str) -> Any:
    return gpubundle(
        root, "install", f"{DROP}/{version}.tar.zst", "--trust", fingerprint,
        "--runtime", "none", "--skip-gpu-checks", "--yes", "--json", *extra,
    )  # fmt: skip


def family(root: Path) -> dict[str, str]:
    status = dpkg_status(root)
    return {n: status[n][0] for n in FAMILY if n in status}


def uninstall_to_pristine(root: Path, before: dict[str, Any]) -> None:
    done = ok_json(gpubundle(root, "uninstall", "--yes", "--json"))
    removed = next(a for a in done["actions"] if a["kind"] == "remove-packages")
    assert sorted(removed["targets"]) == sorted(FAMILY)
    assert not (root / RECORD).exists()
    left = listing_differences(before, listing(root))
    assert left == [], "uninstall left the root changed:\n" + "\n".join(left)


def test_upgrade_then_rollback_then_uninstall_to_pristine(
    tmp_path: Path, key: testkeys.TestKey, installer_pyz: Path, bundles: dict[str, HostBundle]
) -> None:
    root = staged_root(tmp_path / "root", bundles, installer_pyz)
    fpr = key.fingerprint
    with proc_mounted(root):
        prime_apt(root)
        pristine = listing(root)

        first = ok_json(install(root, OLD, fpr))
        assert first["plan"]["toolkit"] == {"change": "install", "from": None, "to": OLD}
        assert family(root) == dict.fromkeys(FAMILY, OLD)

        # The newer bundle: the plan says upgrade, before anything changes.
        dry = ok_json(install(root, NEW, fpr, "--dry-run"))
        lines = [c for s in dry["plan"]["steps"] if s["id"] == "packages" for c in s["changes"]]
        for name in FAMILY:
            assert f"upgrade {name} {OLD} -> {NEW}" in lines, lines
        assert family(root) == dict.fromkeys(FAMILY, OLD)
        up = ok_json(install(root, NEW, fpr))
        assert up["plan"]["toolkit"] == {"change": "upgrade", "from": OLD, "to": NEW}
        assert family(root) == dict.fromkeys(FAMILY, NEW)

        # The older bundle again: refused, nothing changed, both versions and the flag named.
        at_new = listing(root)
        refused = install(root, OLD, fpr)
        assert refused.returncode == 4, refused.stderr
        assert f"installed {NEW} is newer than the bundle's {OLD}" in refused.stdout
        assert "--allow-downgrade" in refused.stdout
        assert listing_differences(at_new, listing(root), ("/var/log",)) == []

        dry = ok_json(install(root, OLD, fpr, "--allow-downgrade", "--dry-run"))
        lines = [c for s in dry["plan"]["steps"] if s["id"] == "packages" for c in s["changes"]]
        for name in FAMILY:
            assert f"downgrade {name} {NEW} -> {OLD} (--allow-downgrade)" in lines, lines
        down = ok_json(install(root, OLD, fpr, "--allow-downgrade"))
        assert down["plan"]["toolkit"] == {"change": "downgrade", "from": NEW, "to": OLD}
        assert family(root) == dict.fromkeys(FAMILY, OLD)

        status = ok_json(gpubundle(root, "status", "--json"))
        history = status["history"]
        assert [(e["change"], e["toolkit_version"]) for e in history] == [
            ("install", OLD), ("upgrade", NEW), ("downgrade", OLD),
        ]  # fmt: skip
        assert [e["bundle_sha256"] for e in history] == [
            bundles[OLD].sha256, bundles[NEW].sha256, bundles[OLD].sha256,
        ]  # fmt: skip
        assert history[0]["before"] == {}
        assert history[1]["before"] == history[0]["after"] == dict.fromkeys(FAMILY, OLD)
        assert history[2]["before"] == history[1]["after"] == dict.fromkeys(FAMILY, NEW)
        assert history[2]["after"] == dict.fromkeys(FAMILY, OLD)
        assert all(e["distro"] == "debian12" and e["finished_at"] for e in history)
        assert status["record"]["history"] == history
        table = gpubundle(root, "status")
        assert f"downgrade nvidia-container-toolkit {NEW} -> {OLD}" in table.stdout, table.stdout

        uninstall_to_pristine(root, pristine)


def test_uninstall_straight_after_upgrade_is_pristine(
    tmp_path: Path, key: testkeys.TestKey, installer_pyz: Path, bundles: dict[str, HostBundle]
) -> None:
    root = staged_root(tmp_path / "root", bundles, installer_pyz)
    with proc_mounted(root):
        prime_apt(root)
        pristine = listing(root)
        ok_json(install(root, OLD, key.fingerprint))
        ok_json(install(root, NEW, key.fingerprint))
        assert family(root) == dict.fromkeys(FAMILY, NEW)
        uninstall_to_pristine(root, pristine)


def test_target_status_round_trip_upgrades_and_refuses_a_split_rollback(
    tmp_path: Path,
    key: testkeys.TestKey,
    installer_pyz: Path,
    bundles: dict[str, HostBundle],
    standin_repo: ServedStandin,
) -> None:
    """The host's /var/lib/dpkg/status carried out, ``build --target-status`` against it,
    the bundle carried in: what the host lacks only, and an upgrade in place. A rollback
    bundle built the same way lacks the tools and libraries (1.20.1-1 meets 1.17.8-1's
    ">="), so installing it would split the family: refused, nothing changed."""
    root = staged_root(tmp_path / "root", bundles, installer_pyz)
    fpr = key.fingerprint
    with proc_mounted(root):
        prime_apt(root)
        pristine = listing(root)
        ok_json(install(root, OLD, fpr))

        def build_against_host(version: str) -> HostBundle:
            carried = tmp_path / f"status-for-{version}"  # what the site copies out
            shutil.copyfile(root / "var/lib/dpkg/status", carried)
            bundle = build_target_bundle(
                tmp_path / f"target-{version}", key, standin_repo.url, standin_repo.armored_key,
                distro="debian12", target_status=carried, toolkit_version=version,
            )  # fmt: skip
            shutil.copyfile(bundle.path, root / DROP.lstrip("/") / f"target-{version}.tar.zst")
            return bundle

        upgrade = build_against_host(NEW)
        assert set(FAMILY) <= set(upgrade.packages)
        assert "libc6" not in upgrade.packages and "python3" not in upgrade.packages
        ok_json(install(root, f"target-{NEW}", fpr))
        assert family(root) == dict.fromkeys(FAMILY, NEW)

        rollback = build_against_host(OLD)
        assert "libnvidia-container-tools" not in rollback.packages
        before = listing(root)
        refused = install(root, f"target-{OLD}", fpr, "--allow-downgrade")
        assert refused.returncode == 4, refused.stdout
        assert f"would leave libnvidia-container-tools {NEW}" in refused.stdout
        assert listing_differences(before, listing(root), ("/var/log",)) == []

        uninstall_to_pristine(root, pristine)
