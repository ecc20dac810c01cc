"""``gpubundle install`` in real Ubuntu 22.04 and Debian 12 roots with the network cut.

Each root is a debootstrap minbase (plus python3 and gpgv) from the shared cache.
The installer runs inside it as users run it: ``python3 gpubundle-installer.pyz``
(the zipapp with its zstandard wheels), under ``unshare -n chroot`` so there is
no network at all. The bundle is the real ``gpubundle build`` of the stand-in
NVIDIA toolkit family (real package names, versions and dependencies;
tests/support/standin_nvidia.py) against the root's own dpkg status, signed with
a throwaway key: it holds the family and nothing the root has already.

Checked as data: dpkg lists the family at the bundle's versions; every file and
package that changed on the root is one the plan named (or a file of an
installed package); a dry run and a re-run change nothing; a run SIGKILLed
right after the apt step (the GPUBUNDLE_TEST_KILL_AFTER test hook) completes
when run again; and a run killed before, inside or after any step (the
GPUBUNDLE_TEST_KILL_BEFORE / _UNRECORDED / _AFTER hooks) leaves a record from
which uninstall puts the root back exactly and a re-run finishes the install.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from installer import layout
from tests.support import inroot, testkeys
from tests.support.inroot import BUNDLE, gpubundle, ok_json, prime_apt
from tests.support.installbundles import bundle_for_root
from tests.support.rootfiles import (
    FAMILY,
    INCLUDE,
    VERSION,
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

# Ours by design: the state directory (bundle store, record, unpacked wheels), logs, lock.
GPUBUNDLE_PATHS = ("/var/lib/gpubundle", "/var/log/gpubundle", "/run/gpubundle.lock")
CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("signer"), name="gpubundle install test")


# --- running the installer in the root --------------------------------------------------


@pytest.fixture
def proc_mounted(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "root"
    yield root
    if (root / "proc").is_mount():
        subprocess.run(["umount", "-l", str(root / "proc")], check=False)


def install_in_root(
    root: Path, fingerprint: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    if not (root / "proc").is_mount():
        subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    argv = [
        "unshare", "-n", "chroot", str(root),
        "python3", "/tmp/gpubundle/gpubundle-installer.pyz", "install", "/tmp/gpubundle/bundle.tar.zst",
        "--trust", fingerprint, "--runtime", "none", "--skip-gpu-checks", "--json", *extra,
    ]  # fmt: skip
    return subprocess.run(
        argv, env={**CHROOT_ENV, **(env or {})}, capture_output=True, text=True, timeout=900
    )


def ok_document(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, (
        f"install failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}"
    )
    doc: dict[str, Any] = json.loads(proc.stdout)
    assert doc["ok"] is True
    return doc


@pytest.mark.parametrize("distro", ["ubuntu22.04", "debian12"])
def test_offline_install_in_a_real_root(
    distro: str,
    tmp_path: Path,
    proc_mounted: Path,
    key: testkeys.TestKey,
    installer_pyz: Path,
    standin_repo: ServedStandin,
) -> None:
    root = debootstrap_root(distro, "minbase", INCLUDE, dest=proc_mounted)
    bundle_for_root(
        root, distro, tmp_path / "out", key, standin_repo, pyz=installer_pyz,
        toolkit_version=VERSION,
    )  # fmt: skip
    files0, packages0 = snapshot(root), dpkg_status(root)

    # A dry run prints the plan and changes nothing but gpubundle's own state.
    dry = ok_document(install_in_root(root, key.fingerprint, "--dry-run"))
    plan = dry["plan"]
    assert [s["id"] for s in plan["steps"] if s["pending"]] == ["extract", "apt-source", "packages"]
    assert plan["packages"] == dict.fromkeys(FAMILY, VERSION)
    assert unexplained(changed_paths(files0, snapshot(root)), set(GPUBUNDLE_PATHS), set()) == []
    assert not (root / "var/lib/gpubundle/install-record.json").exists()

    if distro == "ubuntu22.04":
        # Killed right after the apt step: the record says how far it got; a re-run finishes.
        killed = install_in_root(
            root, key.fingerprint, "--yes", env={"GPUBUNDLE_TEST_KILL_AFTER": "packages"}
        )
        assert killed.returncode == -9, killed.stderr
        record = json.loads((root / "var/lib/gpubundle/install-record.json").read_text())
        assert record["steps_completed"] == ["extract", "apt-source", "packages"]
        assert record["finished_at"] is None
    doc = ok_document(install_in_root(root, key.fingerprint, "--yes"))

    # dpkg has the family at the bundle's versions.
    packages1 = dpkg_status(root)
    for name in FAMILY:
        assert packages1[name] == (VERSION, "install ok installed"), name
    # Exactly the planned packages changed, and every changed file is accounted for.
    changed_packages = {
        n for n in packages0.keys() | packages1.keys() if packages0.get(n) != packages1.get(n)
    }
    assert changed_packages == set(plan["packages"])
    planned = {p for s in plan["steps"] if s["pending"] for p in s["paths"]}
    extra = unexplained(
        changed_paths(files0, snapshot(root)),
        planned | set(GPUBUNDLE_PATHS),
        package_files(root, changed_packages),
    )
    assert extra == [], f"changed but not in the plan: {extra}"
    # The record: what the schema promises.
    record = doc["record"]
    assert record["finished_at"]
    assert record["packages_installed"] == dict.fromkeys(FAMILY, VERSION)
    assert record["packages_before"] == {}
    assert "/etc/apt/sources.list.d/gpubundle.list" in record["files_created"]
    assert Path(doc["report"]).name.startswith("install-")
    assert (root / doc["report"].lstrip("/")).is_file()
    # The host's own apt sources were never read: no list of theirs was fetched or removed.
    assert (root / "etc/apt/sources.list").exists()

    # A second run finds everything done and changes nothing.
    files1 = snapshot(root)
    again = ok_document(install_in_root(root, key.fingerprint, "--yes"))
    assert again["result"]["changed"] is False
    assert not any(s["pending"] for s in again["plan"]["steps"])
    changes = changed_paths(files1, snapshot(root))
    assert unexplained(changes, {"/var/log/gpubundle", "/run/gpubundle.lock"}, set()) == []
    assert dpkg_status(root) == packages1


# --- killed at every step boundary ------------------------------------------------------------

KILL_HOOKS = {
    # hook: (the step is recorded as complete, the record says it is under way)
    "GPUBUNDLE_TEST_KILL_BEFORE": (False, True),  # intent recorded, nothing changed yet
    "GPUBUNDLE_TEST_KILL_UNRECORDED": (False, True),  # changes made, completion not recorded
    "GPUBUNDLE_TEST_KILL_AFTER": (True, False),  # changes made and recorded
}
RECORD = "var/lib/gpubundle/install-record.json"
# Left out of the comparison: install reports (kept for the administrator) and the lock
# file (a lock must outlive its holders); see test_uninstall_roots.py.
KEPT = (layout.LOG_DIR, layout.LOCK_FILE)


def killed_install(root: Path, fingerprint: str, hook: str, step: str) -> dict[str, Any]:
    """install SIGKILLed at ``hook``/``step``; returns the record it left."""
    proc = gpubundle(
        root, "install", BUNDLE, "--trust", fingerprint, "--runtime", "none",
        "--skip-gpu-checks", "--yes", "--json", env={hook: step},
    )  # fmt: skip
    assert proc.returncode == -9, f"{hook}={step} did not kill install:\n{proc.stderr}"
    record: dict[str, Any] = json.loads((root / RECORD).read_text())
    completed, under_way = KILL_HOOKS[hook]
    assert (step in record["steps_completed"]) is completed, record
    assert (record["in_progress"] == step) is under_way, record
    assert record["finished_at"] is None
    return record


@pytest.mark.parametrize("distro", ["ubuntu22.04", "debian12"])
def test_killed_at_every_step_boundary_reruns_and_uninstalls(
    distro: str,
    tmp_path: Path,
    key: testkeys.TestKey,
    installer_pyz: Path,
    standin_repo: ServedStandin,
) -> None:
    """Killed before, inside (changes made, not recorded) and after each step: the record
    left behind lets ``uninstall --purge`` put the root back exactly (apt's lists and
    extended_states included), and lets a re-run finish the install."""
    root = debootstrap_root(distro, "minbase", INCLUDE, dest=tmp_path / "root")
    bundle_for_root(
        root, distro, tmp_path / "out", key, standin_repo, pyz=installer_pyz,
        toolkit_version=VERSION,
    )  # fmt: skip
    with inroot.proc_mounted(root):
        prime_apt(root)
        before = capture(root).without(KEPT)
        for step in ("extract", "apt-source", "packages"):
            for hook in KILL_HOOKS:
                where = f"{hook}={step}"
                record = killed_install(root, key.fingerprint, hook, step)
                if step == "packages":  # written ahead: every package apt may install
                    assert set(record["packages_installed"]) == set(FAMILY), where
                ok_json(gpubundle(root, "uninstall", "--purge", "--yes", "--json"))
                assert differences(before, capture(root).without(KEPT)) == [], where

                killed_install(root, key.fingerprint, hook, step)
                done = ok_json(gpubundle(root, "install", BUNDLE, "--trust", key.fingerprint,
                                         "--runtime", "none", "--skip-gpu-checks", "--yes",
                                         "--json"))  # fmt: skip
                record = done["record"]
                assert record["finished_at"] and record["in_progress"] is None, where
                assert record["packages_installed"] == dict.fromkeys(FAMILY, VERSION), where
                packages = dpkg_status(root)
                for name in FAMILY:
                    assert packages[name] == (VERSION, "install ok installed"), where
                ok_json(gpubundle(root, "uninstall", "--purge", "--yes", "--json"))
                assert differences(before, capture(root).without(KEPT)) == [], where
