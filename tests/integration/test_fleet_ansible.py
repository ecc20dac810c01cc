"""The gpubundle.airgap collection driven by a real ``ansible-playbook`` over SSH against
four real hosts of mixed targets, one with a damaged copy of its bundle.

The hosts are debootstrap roots (Ubuntu 22.04, Ubuntu 24.04, Debian 12, and a second
Ubuntu 22.04) with their own sshd, each in a network namespace of its own reached only
from this machine (tests/support/sshhosts.py): the controller is this machine, the
hosts reach nothing. Their bundles are real ``gpubundle build``s of the stand-in NVIDIA
toolkit against each root's dpkg status; Debian 12's is split into parts (the role
copies the index, its signature and every part); the fourth host's bundle is a copy of
Ubuntu 22.04's with one byte changed, as a bad transfer leaves it.

The collection's own playbooks run, with the fingerprint given once (group vars) and
``--runtime none`` (these roots have no container engine):

- check mode on the fresh fleet changes nothing on any host;
- the install: three hosts install, the damaged one fails with the verification message
  (exit 3) and is left as it was;
- a second run changes nothing anywhere; check mode after it neither;
- doctor returns findings as data and fetches each host's support archive;
- uninstall returns every host to its state before (tests/support/rootsnapshot.py);
- a rollout one host per batch (the playbook's default max_fail_percentage) stops at the
  damaged host: the hosts before it are installed, the one after it is never touched.
"""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer import layout
from tests.support import inroot, testkeys
from tests.support.ansibleplay import PlaybookRun, run_playbook
from tests.support.installbundles import gpubundle
from tests.support.rootfiles import FAMILY, VERSION, dpkg_status
from tests.support.rootsnapshot import capture, differences
from tests.support.sshhosts import Fleet, ssh_fleet, unpack_roots
from tests.support.standin_served import ServedStandin

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.archive]

HOSTS = (  # in rollout order: one host per batch puts the damaged one in the third
    ("jammy", "ubuntu22.04"),
    ("noble", "ubuntu24.04"),
    ("damaged", "ubuntu22.04"),
    ("bookworm", "debian12"),
)
SPLIT = {"debian12"}  # built with --split-size: the role copies index and parts
DROP = "/var/tmp/gpubundle"
# All four hosts in one batch, tolerating one failed host of four (the damaged one).
ROLLOUT = ("-e", "gpubundle_serial=4", "-e", "gpubundle_max_fail_percentage=25")
# Kept by design: install reports and the lock file (see test_uninstall_roots.py).
KEPT = (layout.LOG_DIR, layout.LOCK_FILE)


def build(
    out: Path, distro: str, key: testkeys.TestKey, standin: ServedStandin, status: Path
) -> Path:
    """``gpubundle build`` for ``distro`` against ``status``; the bundle (or its parts index)."""
    out.mkdir(parents=True)
    (out / "nvidia.asc").write_bytes(standin.armored_key)
    split = ["--split-size", "1M"] if distro in SPLIT else []
    proc = gpubundle(
        "build", "--distro", distro, "--mirror", f"nvidia={standin.url}",
        "--key", f"nvidia={out / 'nvidia.asc'}", "--sign-key", key.fingerprint,
        "--gnupghome", str(key.gnupghome), "--output", str(out / f"{distro}.tar.zst"),
        "--target-status", str(status), "--toolkit-version", VERSION, "--no-images",
        "--cache-dir", str(Path(".cache/build").resolve()), "--json", *split,
    )  # fmt: skip
    assert proc.returncode == 0, f"gpubundle build failed:\n{proc.stderr}\n{proc.stdout}"
    index = out / f"{distro}.parts.json"
    return index if distro in SPLIT else out / f"{distro}.tar.zst"


def damage(source: Path, out: Path) -> Path:
    """A copy of ``source``'s bundle and installer with one byte of the bundle flipped."""
    out.mkdir(parents=True)
    shutil.copyfile(source.with_name("gpubundle-installer.pyz"), out / "gpubundle-installer.pyz")
    copy = out / source.name
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    return copy


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("signer"), name="gpubundle fleet test")


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    roots = unpack_roots(HOSTS, tmp_path)
    for root in roots.values():  # as a host where apt has run before (rootsnapshot compares)
        with inroot.proc_mounted(root):
            inroot.prime_apt(root)
    with ssh_fleet(HOSTS, roots, tmp_path) as up:
        yield up


def playbook(name: str) -> str:
    return f"gpubundle.airgap.{name}"


def test_rolling_install_over_four_hosts(
    tmp_path: Path, fleet: Fleet, key: testkeys.TestKey, standin_repo: ServedStandin
) -> None:
    bundles: dict[str, Path] = {}
    for name, distro in HOSTS:
        if name == "damaged":
            continue
        status = fleet.host(name).root / "var/lib/dpkg/status"
        bundles[name] = build(tmp_path / "bundles" / name, distro, key, standin_repo, status)
    bundles["damaged"] = damage(bundles["jammy"], tmp_path / "bundles" / "damaged")
    inventory = fleet.inventory(
        tmp_path / "inventory.json", "gpu_hosts",
        {name: {"gpubundle_bundle": str(path)} for name, path in bundles.items()},
        gpubundle_trust=[key.fingerprint], gpubundle_runtime="none",
        gpubundle_skip_gpu_checks=True, gpubundle_become=False,
    )  # fmt: skip
    before = {h.name: capture(h.root).without(KEPT) for h in fleet.hosts}
    times: dict[str, float] = {}

    def play(label: str, name: str, *args: str) -> PlaybookRun:
        run = run_playbook(playbook(name), inventory, tmp_path, *ROLLOUT, *args)
        times[label] = run.seconds
        (tmp_path / f"{label.replace(' ', '-').replace(',', '')}.log").write_text(str(run))
        assert set(run.recap) == {h.name for h in fleet.hosts}, str(run)
        return run

    def unchanged(label: str, reference: dict[str, object]) -> None:
        for h in fleet.hosts:
            now = capture(h.root).without(KEPT)
            assert differences(reference[h.name], now) == [], f"{label}: {h.name}"  # type: ignore[arg-type]

    # Check mode on the fresh fleet: it would copy, and changes nothing.
    dry = play("check mode, fresh fleet", "install", "--check", "--diff")
    assert dry.returncode == 0, str(dry)
    assert dry.failed() == set(), str(dry)
    unchanged("check mode", before)  # type: ignore[arg-type]
    for h in fleet.hosts:
        assert not (h.root / DROP.lstrip("/")).exists(), h.name

    # The install: three hosts install, the damaged one fails verification, untouched.
    first = play("install", "install", "--diff")
    assert first.failed() == {"damaged"}, str(first)
    assert first.returncode == 2, str(first)
    for name in ("jammy", "noble", "bookworm"):
        assert first.recap[name]["changed"] > 0, str(first)
        packages = dpkg_status(fleet.host(name).root)
        for pkg in FAMILY:
            assert packages.get(pkg) == (VERSION, "install ok installed"), (name, pkg, str(first))
    assert "gpubundle verify failed (exit 3: the bundle failed verification" in first.stdout, str(
        first
    )
    # Diff mode shows each installed host's plan: the pending steps' changes.
    assert first.stdout.count("gpubundle install plan (") == 3, str(first)
    assert "+ packages: " in first.stdout, str(first)
    damaged = fleet.host("damaged").root
    assert differences(before["damaged"], capture(damaged).without(KEPT)) == []
    assert "install-record.json" not in {p.name for p in (damaged / "var/lib").rglob("*.json")}
    # The fleet summary names every host, the failed one with the installer's message.
    assert "damaged: gpubundle verify failed (exit 3" in first.stdout, str(first)

    # A second run: no change anywhere (the damaged host still fails, changing nothing).
    installed = {h.name: capture(h.root).without(KEPT) for h in fleet.hosts}
    again = play("second run", "install", "--diff")
    assert again.changed() == dict.fromkeys(installed, 0), str(again)
    assert again.failed() == {"damaged"}, str(again)
    unchanged("second run", installed)  # type: ignore[arg-type]

    # Check mode on the installed fleet: the dry run's plan has nothing to do.
    dry_again = play("check mode, installed fleet", "install", "--check", "--diff")
    assert dry_again.changed() == dict.fromkeys(installed, 0), str(dry_again)
    unchanged("check mode after install", installed)  # type: ignore[arg-type]
    assert "gpubundle install plan (" not in dry_again.stdout, str(dry_again)

    # doctor: findings as data, each host's support archive fetched to the controller.
    fetched = tmp_path / "doctor"
    doctor = play("doctor", "doctor", "-e", "gpubundle_doctor_collect=true",
                  "-e", f"gpubundle_doctor_fetch_dir={fetched}")  # fmt: skip
    assert doctor.returncode == 0, str(doctor)
    assert doctor.failed() == set(), str(doctor)
    unchanged("doctor", installed)  # type: ignore[arg-type]
    assert "doctor: failure, " in doctor.stdout  # no GPU driver in these roots: data, not failure
    for h in fleet.hosts:
        archive = fetched / h.name / "doctor.tar.gz"
        with tarfile.open(archive) as tar:
            assert tar.getnames(), h.name
        assert not (h.root / DROP.lstrip("/") / "doctor.tar.gz").exists(), h.name

    # uninstall through the role: every host back to its state before, the drop removed.
    removed = play("uninstall", "uninstall", "--diff")
    assert removed.returncode == 0, str(removed)
    assert removed.failed() == set(), str(removed)
    assert removed.stdout.count("gpubundle uninstall plan") == 3, str(removed)  # not "damaged"
    for h in fleet.hosts:
        assert differences(before[h.name], capture(h.root).without(KEPT)) == [], h.name
        assert not (h.root / DROP.lstrip("/")).exists(), h.name

    # A rollout one host at a time with the playbook's own max_fail_percentage (10): the
    # damaged host's batch fails, the rollout stops there; the host after it is untouched.
    rolling = run_playbook(playbook("install"), inventory, tmp_path, "-e", "gpubundle_serial=1")
    times["rolling, one host per batch"] = rolling.seconds
    (tmp_path / "rolling.log").write_text(str(rolling))
    assert rolling.returncode == 2, str(rolling)
    assert set(rolling.recap) == {"jammy", "noble", "damaged"}, str(rolling)
    assert rolling.failed() == {"damaged"}, str(rolling)
    assert differences(before["bookworm"], capture(fleet.host("bookworm").root).without(KEPT)) == []
    assert not (fleet.host("bookworm").root / DROP.lstrip("/")).exists()
    for name in ("jammy", "noble"):
        assert dpkg_status(fleet.host(name).root).get(FAMILY[0]) == (
            VERSION,
            "install ok installed",
        )
    cleanup = play("uninstall after the rollout", "uninstall")
    assert cleanup.failed() == set(), str(cleanup)
    for h in fleet.hosts:
        assert differences(before[h.name], capture(h.root).without(KEPT)) == [], h.name
    print("\nfleet timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))
