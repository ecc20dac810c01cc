"""dpkg's state before and after ``gpubundle install``, in real Debian 12 (and, for the
kills, Ubuntu 22.04) roots, offline.

The bundle is made by the real ``gpubundle build`` (stand-in NVIDIA repository, against
the root's dpkg status) and installed by the ``gpubundle-installer.pyz`` it shipped, under
``unshare -n chroot``. dpkg is held at a known point of its work (tests/support/dpkgfreeze.py:
mid-unpack, by a ``dpkg-deb`` wrapper, with the package half-installed in the journal;
mid-configure, in the trigger of a watcher package, the toolkit's packages awaiting it),
then:

- the installer process alone is SIGKILLed: apt and dpkg, in a session of their own,
  go on once dpkg is let go, and a re-run waits for dpkg's lock, then completes;
- every process of the run is SIGKILLed (a power cut) while dpkg unpacks and while it
  configures: a re-run finishes dpkg's work itself (``dpkg --configure -a``, a planned
  step) and completes.

Each ends equal to a clean install (dpkg's status of every package, its journal empty,
apt's sources, lists and keyrings, gpubundle's record) and uninstalls to pristine.
Preflight refuses, with exit 4 and nothing changed: a held package, a family that
would be half-downgraded, and dpkg work interrupted on a package that is not the
bundle's. A real apt failure shows apt's own first ``E:`` line.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from installer import layout
from installer.dpkgstate import read_dpkg_facts
from installer.hostpaths import HostPaths
from installer.record import parse_ledger
from tests.support import dpkgfreeze, testkeys
from tests.support.inroot import (
    BUNDLE,
    CHROOT_ENV,
    gpubundle,
    gpubundle_argv,
    in_root,
    ok_json,
    prime_apt,
    proc_mounted,
    stage,
)
from tests.support.installbundles import HostBundle, build_target_bundle
from tests.support.rootfiles import INCLUDE
from tests.support.roots import debootstrap_root
from tests.support.rootsnapshot import RootState, capture, differences
from tests.support.standin_served import ServedStandin

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.archive]

DISTRO = "debian12"
INSTALLED = "install ok installed"
RECORD = f"{layout.STATE_DIR}/install-record.json"
# The record's mirror (timestamps) and the ledger (a killed run may append twice) are
# compared as data by record_of, not byte for byte.
RECORD_MIRROR = f"{layout.STATE_DIR}/install-record.backup.json"
LEDGER = f"{layout.STATE_DIR}/installed-packages.ledger"
KEPT = (layout.LOG_DIR, layout.LOCK_FILE)  # why: see test_uninstall_roots.py
# Where dpkg is held (tests/support/dpkgfreeze.py), and what it has journaled then.
HOLDS = {
    # mid-unpack: the package's files not yet extracted
    "unpack": ("nvidia-container-toolkit-base", "nvidia-container-toolkit-base", "half-installed"),
    # mid-configure: processing the trigger the toolkit's files activated
    "configure": ("", dpkgfreeze.WATCHER, "half-configured"),
}


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("signer"), name="gpubundle dpkg test")


def fresh_root(tmp: Path, distro: str = DISTRO) -> Path:
    return debootstrap_root(distro, "minbase", INCLUDE, dest=tmp / "root")


def build(
    tmp: Path,
    key: testkeys.TestKey,
    standin: ServedStandin,
    status: Path,
    distro: str = DISTRO,
    **kw: Any,
) -> HostBundle:
    out = tmp / f"out-{kw.get('toolkit_version', 'newest')}"
    return build_target_bundle(
        out, key, standin.url, standin.armored_key, distro=distro, target_status=status, **kw
    )


def install_args(bundle: HostBundle, *extra: str) -> list[str]:
    return [
        "install", BUNDLE, "--trust", bundle.fingerprint, "--runtime", "none",
        "--skip-gpu-checks", "--yes", *extra,
    ]  # fmt: skip


def install(root: Path, bundle: HostBundle) -> dict[str, Any]:
    return ok_json(gpubundle(root, *install_args(bundle, "--json")))


def uninstall(root: Path) -> None:
    ok_json(gpubundle(root, "uninstall", "--purge", "--yes", "--json"))


def record_of(root: Path) -> dict[str, Any]:
    """gpubundle's record without its timestamps, checked against its mirror, and the
    packages its ledger names."""
    record: dict[str, Any] = json.loads((root / RECORD.lstrip("/")).read_text())
    mirror: dict[str, Any] = json.loads((root / RECORD_MIRROR.lstrip("/")).read_text())
    assert mirror == record, "the record's mirror is not the record"
    ledger = parse_ledger((root / LEDGER.lstrip("/")).read_text())
    kept = {k: v for k, v in record.items() if k not in ("started_at", "finished_at")}
    history = [{k: v for k, v in e.items() if k != "finished_at"} for e in record["history"]]
    return kept | {"ledger": ledger, "history": history}


def journal(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "var/lib/dpkg/updates").iterdir())


def host_state(root: Path) -> tuple[RootState, dict[str, Any]]:
    """The root as compared with a clean install: packages, sources, keyrings, apt's state,
    gpubundle's files (the record apart, compared without its timestamps)."""
    assert journal(root) == [], "dpkg's journal is not empty"
    return capture(root).without((*KEPT, RECORD, RECORD_MIRROR, LEDGER)), record_of(root)


def start_install(root: Path, bundle: HostBundle, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        gpubundle_argv(root, *install_args(bundle, *extra)),
        env=CHROOT_ENV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("distro", ["debian12", "ubuntu22.04"])
def test_killed_while_dpkg_unpacks_or_configures_a_rerun_completes(
    distro: str, tmp_path: Path, key: testkeys.TestKey, standin_repo: ServedStandin
) -> None:
    root = fresh_root(tmp_path, distro)
    bundle = build(tmp_path, key, standin_repo, root / "var/lib/dpkg/status", distro)
    assert bundle.installer is not None
    stage(root, bundle.path, bundle.installer)
    with proc_mounted(root):
        prime_apt(root)
        dpkgfreeze.install_holds(root)
        pristine = capture(root).without(KEPT)
        install(root, bundle)
        clean = host_state(root)
        for name, version in bundle.packages.items():
            assert clean[0].packages[name] == (version, INSTALLED), name
        uninstall(root)
        assert differences(pristine, capture(root).without(KEPT)) == []

        for phase, (package, held, status) in HOLDS.items():
            # The installer process alone is killed; apt and dpkg go on by themselves.
            where = f"installer killed while dpkg {phase}s"
            dpkgfreeze.arm(root, phase, package)
            run = start_install(root, bundle, "--json")
            dpkgfreeze.wait_held(root, phase, run)
            run.kill()
            run.communicate()
            assert run.returncode == -9, where
            rerun = start_install(root, bundle)  # human output: it says that it waits
            assert rerun.stderr is not None
            waited = ""
            while "waiting" not in waited:
                waited = rerun.stderr.readline()
                assert waited, f"{where}: the re-run did not wait for dpkg's lock"
            assert "dpkg's lock, held by pid" in waited, waited
            dpkgfreeze.release(root, phase)
            out, err = rerun.communicate(timeout=600)
            assert rerun.returncode == 0, f"{where}:\n{err}\n{out}"
            assert host_state(root) == clean, where
            uninstall(root)
            assert differences(pristine, capture(root).without(KEPT)) == [], where

            # A power cut: every process of the run dies; dpkg's work is left half done.
            where = f"power cut while dpkg {phase}s"
            dpkgfreeze.arm(root, phase, package)
            run = start_install(root, bundle, "--json")
            dpkgfreeze.wait_held(root, phase, run)
            assert dpkgfreeze.kill_root(root), where
            run.communicate()
            dpkgfreeze.release(root, phase)
            left = read_dpkg_facts(
                HostPaths(root).dpkg_admin_dir, HostPaths(root).proc
            )  # the journal applied, as dpkg reads it
            assert left.packages[held].state == status, f"{where}: {left.packages[held]}"
            assert left.journal, f"{where}: dpkg's journal is empty"
            doc = install(root, bundle)
            steps = {s["id"]: s for s in doc["plan"]["steps"]}
            assert steps["dpkg-recover"]["pending"], where
            assert "dpkg --configure -a" in steps["dpkg-recover"]["changes"][0], where
            result = {s["id"]: s["result"] for s in doc["result"]["steps"]}
            assert result["dpkg-recover"] == "done", where
            assert host_state(root) == clean, where
            uninstall(root)
            assert differences(pristine, capture(root).without(KEPT)) == [], where


def preflight_failure(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The --json document of a run refused by preflight (exit 4)."""
    assert proc.returncode == 4, f"exit {proc.returncode}:\n{proc.stderr}\n{proc.stdout}"
    doc: dict[str, Any] = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 4, doc
    return doc


def finding(doc: dict[str, Any], check: str) -> str:
    """The failed check's line in a preflight refusal: "name: detail (hint)"."""
    return next(line for line in doc["details"] if line.startswith(f"{check}: "))


def test_preflight_refuses_holds_downgrades_and_foreign_dpkg_work(
    tmp_path: Path, key: testkeys.TestKey, standin_repo: ServedStandin
) -> None:
    root = fresh_root(tmp_path)
    status = root / "var/lib/dpkg/status"
    newest = build(tmp_path, key, standin_repo, status)
    older = build(tmp_path, key, standin_repo, status, toolkit_version="1.17.8-1")
    assert newest.installer is not None and older.installer is not None
    assert newest.manifest.toolkit_version != older.manifest.toolkit_version
    with proc_mounted(root):
        prime_apt(root)
        # A hold on a package the bundle would upgrade (with the toolkit it depends on).
        stage(root, older.path, older.installer)
        install(root, older)
        in_root(root, "apt-mark", "hold", "nvidia-container-toolkit-base")
        stage(root, newest.path, newest.installer)
        before = capture(root)
        doc = preflight_failure(gpubundle(root, *install_args(newest, "--json")))
        assert "apt-mark unhold nvidia-container-toolkit-base" in finding(doc, "holds"), doc
        assert differences(before, capture(root)) == []
        in_root(root, "apt-mark", "unhold", "nvidia-container-toolkit-base")

        # The family half removed: the bundle's older toolkit would need a downgrade.
        install(root, newest)
        in_root(root, "dpkg", "-r", "nvidia-container-toolkit")
        stage(root, older.path, older.installer)
        before = capture(root)
        doc = preflight_failure(gpubundle(root, *install_args(older, "--json")))
        new, old = newest.manifest.toolkit_version, older.manifest.toolkit_version
        line = finding(doc, "toolkit family")
        assert f"nvidia-container-toolkit-base {new} installed, bundle has {old}" in line, line
        assert differences(before, capture(root)) == []

        # dpkg cut short (a power cut) while it unpacked a package that is not the bundle's.
        uninstall(root)
        deb = foreign_deb(root)
        dpkgfreeze.install_holds(root)
        dpkgfreeze.arm(root, "unpack", FOREIGN)
        cut = subprocess.Popen(
            ["unshare", "-n", "chroot", str(root), "dpkg", "-i", deb],
            env=CHROOT_ENV, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        dpkgfreeze.wait_held(root, "unpack", cut)
        dpkgfreeze.kill_root(root)
        cut.wait()
        dpkgfreeze.release(root, "unpack")
        dpkg = read_dpkg_facts(HostPaths(root).dpkg_admin_dir, HostPaths(root).proc)
        assert dpkg.journal and dpkg.packages[FOREIGN].state == "half-installed", dpkg
        stage(root, newest.path, newest.installer)
        before = capture(root)
        doc = preflight_failure(gpubundle(root, *install_args(newest, "--json")))
        line = finding(doc, "dpkg state")
        assert FOREIGN in line and "dpkg --configure -a" in line and "dpkg -i" in line, line
        assert differences(before, capture(root)) == []
        assert journal(root), "preflight touched dpkg's journal"
        # What the hint says works, offline; then install goes ahead.
        in_root(root, "dpkg", "-i", deb)
        install(root, newest)


FOREIGN = "gpubundle-test-foreign"


def foreign_deb(root: Path) -> str:
    """A small package that is not the bundle's, built with dpkg-deb, inside the root."""
    tree = root / "tmp" / FOREIGN
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {FOREIGN}\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: gpubundle tests <tests@example.invalid>\nDescription: not the bundle's\n"
    )
    (tree / "usr/share/doc" / FOREIGN).mkdir(parents=True)
    (tree / "usr/share/doc" / FOREIGN / "README").write_text("a package of someone else\n")
    deb = f"/tmp/{FOREIGN}_1.0_all.deb"  # named as apt names them: the unpack hold matches it
    in_root(root, "dpkg-deb", "--root-owner-group", "--build", f"/tmp/{FOREIGN}", deb)
    return deb


def test_an_apt_failure_shows_apts_first_error_line(
    tmp_path: Path, key: testkeys.TestKey, standin_repo: ServedStandin
) -> None:
    """A .deb of the extracted bundle damaged after extraction: apt refuses it, and the
    error says so in apt's own words, with the log that holds the rest."""
    root = fresh_root(tmp_path)
    bundle = build(tmp_path, key, standin_repo, root / "var/lib/dpkg/status")
    assert bundle.installer is not None
    stage(root, bundle.path, bundle.installer)
    with proc_mounted(root):
        prime_apt(root)
        killed = gpubundle(
            root, *install_args(bundle, "--json"), env={"GPUBUNDLE_TEST_KILL_AFTER": "apt-source"}
        )
        assert killed.returncode == -9, killed.stderr
        debs = (
            root / layout.STATE_DIR.lstrip("/") / "bundles" / bundle.sha256 / layout.REPO_DEBS_DIR
        )
        damaged = next(debs.glob("nvidia-container-toolkit-base_*.deb"))
        damaged.write_bytes(damaged.read_bytes()[:-100] + b"\0" * 100)
        proc = gpubundle(root, *install_args(bundle, "--json"))
        assert proc.returncode == 1, f"{proc.stderr}\n{proc.stdout}"
        error = json.loads(proc.stdout)
        assert "installing the packages failed (apt-get exit code 100): E: " in error["message"]
        assert "Hash Sum mismatch" in error["message"] + " ".join(error["details"]), error
        log = error["details"][-1].removeprefix("full output: ")
        assert log.startswith(f"{layout.LOG_DIR}/apt-"), error
        assert "E: " in (root / log.lstrip("/")).read_text()
        uninstall(root)
