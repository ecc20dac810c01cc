"""Full disks, damaged install records and leftovers, in a real Debian 12 root, offline.

The world of test_install_roots.py: a debootstrap minbase root (plus python3 and gpgv),
the stand-in toolkit family in a signed bundle, and the shipped zipapp run by the
root's own python3 under ``unshare -n chroot``. Full filesystems are real tmpfs mounts
inside the root (``mount -t tmpfs -o size=…,nr_inodes=…``), unmounted in teardown.

- Caught ahead by preflight (exit 4, the place named, ``--json`` one document, no
  traceback, the root unchanged as data): the bundle store out of bytes, out of inodes,
  the temporary directory ($TMPDIR) full (the compiled modules cannot even unpack), and
  /var/lib/dpkg full.
- Filling after preflight (the GPUBUNDLE_TEST_FILL_BEFORE_EXTRACT hook fills the store
  as another process might): exit 1, "no space … left on <mount>", never "damaged
  bundle", no staging left; freed, the re-run completes and uninstall restores the root.
- A record damaged beyond its mirror: status and doctor say what was lost (exit 1, one
  JSON document); the hint's way (uninstall) removes every package the bundle brought.
  A record moved aside (the old advice): the re-install never calls gpubundle's packages
  pre-existing, so uninstall still removes them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from installer import layout
from tests.support import testkeys
from tests.support.inroot import BUNDLE, gpubundle, ok_json, prime_apt, proc_mounted, stage
from tests.support.installbundles import build_target_bundle
from tests.support.rootfiles import FAMILY, INCLUDE, VERSION
from tests.support.roots import debootstrap_root, minbase_status
from tests.support.rootsnapshot import RootState, capture, differences
from tests.support.standin_served import ServedStandin

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.archive]

KEPT = (layout.LOG_DIR, layout.LOCK_FILE)
STORE = "var/lib/gpubundle/bundles"
RECORD = "var/lib/gpubundle/install-record.json"
MIRROR = "var/lib/gpubundle/install-record.backup.json"
SMALL_TMP = "/var/tmp/small"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("signer"), name="gpubundle disk-full test")


@pytest.fixture(scope="module")
def bundle(
    tmp_path_factory: pytest.TempPathFactory, key: testkeys.TestKey, standin_repo: ServedStandin
) -> Path:
    """The toolkit family at VERSION: what a debian12 minbase root plus INCLUDE lacks."""
    return build_target_bundle(
        tmp_path_factory.mktemp("bundle"), key, standin_repo.url, standin_repo.armored_key,
        distro="debian12", target_status=minbase_status("debian12", INCLUDE),
        toolkit_version=VERSION,
    ).path  # fmt: skip


@pytest.fixture
def root(tmp_path: Path, bundle: Path, installer_pyz: Path) -> Iterator[Path]:
    root = debootstrap_root("debian12", "minbase", INCLUDE, dest=tmp_path / "root")
    stage(root, bundle, installer_pyz)
    with proc_mounted(root):
        prime_apt(root)
        yield root


@pytest.fixture
def tmpfs(root: Path) -> Iterator[Any]:
    """``mount(rel, options, keep=False)``: a tmpfs at ROOT/rel; with ``keep`` what was
    there is copied in first. All unmounted (and the contents restored) in teardown."""
    mounted: list[tuple[Path, Path | None]] = []

    def mount(rel: str, options: str, keep: bool = False) -> Path:
        where = root / rel
        where.mkdir(parents=True, exist_ok=True)
        saved = None
        if keep:
            saved = where.with_name(where.name + ".saved")
            shutil.copytree(where, saved, symlinks=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
        mounted.append((where, saved))
        if saved is not None:
            subprocess.run(["cp", "-a", f"{saved}/.", str(where)], check=True)
        return where

    yield mount
    for where, saved in reversed(mounted):
        subprocess.run(["umount", str(where)], check=False)
        if saved is not None:
            shutil.rmtree(saved)


def state(root: Path) -> RootState:
    return capture(root).without(KEPT)


def install(root: Path, fingerprint: str, env: dict[str, str] | None = None) -> Any:
    return gpubundle(
        root, "install", BUNDLE, "--trust", fingerprint, "--runtime", "none",
        "--skip-gpu-checks", "--yes", "--json", env=env,
    )  # fmt: skip


def failed_json(proc: subprocess.CompletedProcess[str], code: int) -> dict[str, Any]:
    """The single ``--json`` document of a run that failed with ``code``, cleanly."""
    assert proc.returncode == code, f"exit {proc.returncode}:\n{proc.stderr}\n{proc.stdout}"
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)  # exactly one document: loads() takes no more
    assert doc["ok"] is False and doc["exit_code"] == code
    return doc


def said(doc: dict[str, Any]) -> str:
    return "\n".join([doc["message"], *doc["details"], doc["hint"]])


# --- caught ahead: exit 4, nothing changed ------------------------------------------------


@pytest.mark.parametrize(
    ("where", "options", "expected"),
    [
        (STORE, "size=16k", "not enough space on /var/lib/gpubundle/bundles"),
        (STORE, "size=64m,nr_inodes=4", "not enough inodes on /var/lib/gpubundle/bundles"),
    ],
    ids=["store-bytes", "store-inodes"],
)
def test_a_full_bundle_store_is_refused_before_anything_is_written(
    root: Path, tmpfs: Any, key: testkeys.TestKey, where: str, options: str, expected: str
) -> None:
    tmpfs(where, options)
    before = state(root)
    doc = failed_json(install(root, key.fingerprint), 4)
    assert expected in said(doc) and "copy it again" not in said(doc)
    assert differences(before, state(root)) == []
    assert list((root / where).iterdir()) == []


@pytest.mark.parametrize("tmpdir", ["/tmp", SMALL_TMP])
def test_a_full_temporary_directory_is_refused_before_the_bundle_is_read(
    root: Path, tmpfs: Any, key: testkeys.TestKey, tmpdir: str
) -> None:
    """/tmp itself (holding the staged bundle and installer, copied in) or $TMPDIR: too
    small for gpgv's files and for the compiled modules, which then are not half-left."""
    if tmpdir == "/tmp":
        staged = sum(p.stat().st_size for p in (root / "tmp").rglob("*") if p.is_file())
        small = tmpfs("tmp", f"size={staged // 1024 + 1024}k", keep=True)
        env = None
    else:
        small = tmpfs(tmpdir.lstrip("/"), "size=512k")
        env = {"TMPDIR": tmpdir}
    inside = sorted(small.rglob("*"))
    before = state(root)
    doc = failed_json(install(root, key.fingerprint, env=env), 4)
    assert f"not enough space on {tmpdir} ({tmpdir})" in said(doc)
    assert differences(before, state(root)) == []
    assert sorted(small.rglob("*")) == inside  # nothing unpacked, nothing half-left


def test_a_full_dpkg_database_is_refused_before_anything_is_written(
    root: Path, tmpfs: Any, key: testkeys.TestKey
) -> None:
    used = sum(p.stat().st_size for p in (root / "var/lib/dpkg").rglob("*") if p.is_file())
    tmpfs("var/lib/dpkg", f"size={used // 1024 + 2048}k", keep=True)
    before = state(root)
    doc = failed_json(install(root, key.fingerprint), 4)
    assert "not enough space on /var/lib/dpkg (/var/lib/dpkg)" in said(doc)
    assert differences(before, state(root)) == []


# --- filling after preflight: exit 1, nothing half-done, a re-run completes ----------------


def test_a_store_that_fills_during_extraction_is_no_space_not_a_damaged_bundle(
    root: Path, tmpfs: Any, key: testkeys.TestKey
) -> None:
    store = tmpfs(STORE, "size=48m")
    before = state(root)
    # What killed runs left: an unpack directory of a process that is gone, and one
    # of a live process that must stay.
    gone = subprocess.Popen(["true"])
    gone.wait()
    live = subprocess.Popen(["sleep", "300"])
    dead_pylib = root / "tmp" / f"gpubundle-pylib-{gone.pid}-abcd1234" / "zstandard"
    live_pylib = root / "tmp" / f"gpubundle-pylib-{live.pid}-efgh5678" / "zstandard"
    for path in (dead_pylib, live_pylib):
        path.mkdir(parents=True)
    filler = f"/{STORE}/filler"
    doc = failed_json(
        install(root, key.fingerprint, env={"GPUBUNDLE_TEST_FILL_BEFORE_EXTRACT": filler}), 1
    )
    assert doc["message"].startswith("no space (or no inodes) left on /var/lib/gpubundle/bundles")
    assert "damaged" not in said(doc) and "copy it again" not in said(doc)
    assert sorted(p.name for p in store.iterdir()) == ["filler"]  # no staging, no bundle
    assert not dead_pylib.parent.exists() and live_pylib.is_dir()
    live.kill()
    live.wait()
    (store / "filler").unlink()
    done = ok_json(install(root, key.fingerprint))
    assert done["record"]["packages_installed"] == dict.fromkeys(FAMILY, VERSION)
    ok_json(gpubundle(root, "uninstall", "--purge", "--yes", "--json"))
    assert differences(before, state(root)) == []


def test_dpkg_filling_up_during_apt_is_no_space_on_var_lib_dpkg(
    root: Path, tmpfs: Any, key: testkeys.TestKey
) -> None:
    used = sum(p.stat().st_size for p in (root / "var/lib/dpkg").rglob("*") if p.is_file())
    dpkg = tmpfs("var/lib/dpkg", f"size={used // 1024 + 64 * 1024}k", keep=True)
    filler = "/var/lib/dpkg/filler"
    doc = failed_json(
        install(root, key.fingerprint, env={"GPUBUNDLE_TEST_FILL_BEFORE_EXTRACT": filler}), 1
    )
    assert doc["message"].startswith("no space (or no inodes) left on /var/lib/dpkg"), said(doc)
    assert "installing the packages failed" in doc["message"]
    (dpkg / "filler").unlink()
    done = ok_json(install(root, key.fingerprint))
    assert done["record"]["packages_installed"] == dict.fromkeys(FAMILY, VERSION)


# --- damaged records -------------------------------------------------------------------------


DAMAGES = {
    "truncated": lambda text: text[:100],
    "wrong types": lambda text: json.dumps(
        {**json.loads(text), "packages_installed": [], "files_created": "/", "steps_completed": 3}
    ),
    "missing fields": lambda text: json.dumps(
        {k: v for k, v in json.loads(text).items() if not k.startswith("packages_")}
    ),
    "not an object": lambda text: json.dumps([json.loads(text)]),
}


def damage_both(root: Path, how: str) -> None:
    for rel in (RECORD, MIRROR):
        (root / rel).write_text(DAMAGES[how]((root / rel).read_text()))


@pytest.mark.parametrize("how", DAMAGES)
def test_a_record_damaged_beyond_its_mirror_still_uninstalls_what_the_bundle_brought(
    root: Path, key: testkeys.TestKey, how: str
) -> None:
    before = state(root)
    ok_json(install(root, key.fingerprint))
    damage_both(root, how)

    doc = failed_json(gpubundle(root, "status", "--json"), 1)
    assert "could not be read" in doc["message"] and "uninstall" in doc["hint"]
    text = gpubundle(root, "status")
    assert text.returncode == 1 and "Traceback" not in text.stderr and "hint:" in text.stderr
    doctor = gpubundle(root, "doctor", "--json")
    assert "Traceback" not in doctor.stderr
    findings = {f["check_id"]: f for f in json.loads(doctor.stdout)["findings"]}
    assert findings["install-record"]["status"] == "failure"

    # The hint's first way: install the same bundle again: a whole record, the packages
    # still gpubundle's (never "there before").
    again = ok_json(install(root, key.fingerprint))
    assert again["record_damage"]["lost"]
    assert again["record"]["packages_before"] == {}
    assert again["record"]["packages_installed"] == dict.fromkeys(FAMILY, VERSION)
    assert ok_json(gpubundle(root, "status", "--json"))["record_damage"] is None

    # The other way, on a record damaged again: uninstall, from the readable fields and
    # the packages ledger; it also sweeps what killed atomic writes left.
    damage_both(root, how)
    for rel in ("etc/apt/sources.list.d/.gpubundle.list.gpubundle-tmp-k1ll3d",
                "var/lib/gpubundle/.install-record.json.gpubundle-tmp-k1ll3d"):  # fmt: skip
        (root / rel).write_text("half")
    plan = ok_json(gpubundle(root, "uninstall", "--purge", "--dry-run", "--json"))
    removed = {a["kind"]: a["targets"] for a in plan["actions"]}["remove-packages"]
    assert sorted(removed) == sorted(FAMILY)
    assert "damaged" in plan["notes"][0]
    ok_json(gpubundle(root, "uninstall", "--purge", "--yes", "--json"))
    assert differences(before, state(root)) == [], "uninstall left something behind"


def test_a_record_moved_aside_never_makes_gpubundles_packages_pre_existing(
    root: Path, key: testkeys.TestKey
) -> None:
    before = state(root)
    ok_json(install(root, key.fingerprint))
    for rel in (RECORD, MIRROR):  # what gpubundle 0.x told users to do
        (root / rel).rename(root / "root" / Path(rel).name)
    again = ok_json(install(root, key.fingerprint))
    assert again["record"]["packages_before"] == {}
    assert again["record"]["packages_installed"] == dict.fromkeys(FAMILY, VERSION)
    ok_json(gpubundle(root, "uninstall", "--purge", "--yes", "--json"))
    assert differences(before, state(root)) == []
