"""The README's one command, ``sh gpubundle-installer.pyz install BUNDLE --trust FPR``, in
real roots with the network cut: on a Debian 12 minbase with no python3 and no zstd (the
installer runs on the python3.11 and gpgv .debs it carries, checked first and unpacked
into a temporary directory), and on the stock python3 of Ubuntu 20.04 (3.8) and Debian 11
(3.9), the oldest the installer supports; where those targets exist in manifests/, also on
Ubuntu 18.04 (stock 3.6: the carried 3.8 from bionic-updates runs it), a Debian 13 minbase
(no python3, sqv instead of gpgv: the carried python3.13 and gpgv) and an Ubuntu 26.04
minbase (the carried python3.14 decodes the bundle with its own compression.zstd).

Each bundle is a real ``gpubundle build`` of the stand-in NVIDIA family against the root's
own dpkg status. Checked as data: dpkg lists the family at the bundle's versions; the
carried runtime leaves nothing behind (no python3 installed, no temporary directory);
uninstall, also run by ``sh``, returns the root's packages, apt sources, keyrings, apt
state and gpubundle's paths to what they were; and an installer whose carried runtime was
altered by one byte is refused (exit 3) before anything is unpacked: every path of the
root is as it was.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bundler.targets import list_targets
from installer import layout
from tests.support import testkeys
from tests.support.inroot import BUNDLE, PYZ, gpubundle_sh, ok_json, prime_apt, proc_mounted, stage
from tests.support.installbundles import HostBundle, build_target_bundle
from tests.support.rootfiles import FAMILY, INCLUDE, VERSION, dpkg_status
from tests.support.roots import debootstrap_root
from tests.support.rootsnapshot import capture, differences, listing, listing_differences
from tests.support.standin_served import ServedStandin

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.archive]

KEPT_BY_DESIGN = (layout.LOG_DIR, layout.LOCK_FILE)  # see test_uninstall_roots.py
INSTALL_ARGS = ("--runtime", "none", "--skip-gpu-checks", "--yes", "--json")
# distro: (what the root has besides minbase, the python3 the installer runs on there)
ROOTS = {
    "debian12": ((), "carried 3.11"),
    "ubuntu20.04": (INCLUDE, "stock 3.8"),
    "debian11": (INCLUDE, "stock 3.9"),
    # Where the target exists (manifests/): its stock python3 3.6 is too old.
    "ubuntu18.04": (INCLUDE, "carried 3.8"),
    # No python3, and sqv instead of gpgv (apt 3).
    "debian13": ((), "carried 3.13"),
    # No python3; the carried 3.14 reads the bundle with its own compression.zstd.
    "ubuntu26.04": ((), "carried 3.14"),
}
ROOTS = {name: spec for name, spec in ROOTS.items() if name in list_targets()}


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("signer"), name="gpubundle runtime test")


def built(
    root: Path, out: Path, key: testkeys.TestKey, repo: ServedStandin, distro: str
) -> HostBundle:
    bundle = build_target_bundle(
        out, key, repo.url, repo.armored_key, distro=distro,
        target_status=root / "var/lib/dpkg/status", toolkit_version=VERSION,
    )  # fmt: skip
    assert bundle.installer is not None
    stage(root, bundle.path, bundle.installer)
    return bundle


def leftovers(root: Path) -> list[str]:
    """Temporary directories of the preamble or the wheel bootstrap left in the root."""
    return sorted(p.name for p in (root / "tmp").iterdir() if p.name.startswith("gpubundle-"))


@pytest.mark.parametrize("distro", sorted(ROOTS))
def test_install_and_uninstall_by_the_readme_command(
    distro: str, tmp_path: Path, key: testkeys.TestKey, standin_repo: ServedStandin
) -> None:
    include, runs_on = ROOTS[distro]
    root = debootstrap_root(distro, "minbase", include, dest=tmp_path / "root")
    has_python = (root / "usr/bin/python3").exists()
    assert has_python is bool(include), "the root is not the host it stands for"
    assert not (root / "usr/bin/zstd").exists(), "the root must not offer a zstd program"
    bundle = built(root, tmp_path / "out", key, standin_repo, distro)
    with proc_mounted(root):
        prime_apt(root, auto="sqv" if (root / "usr/bin/sqv").exists() else "gpgv")
        before = capture(root).without(KEPT_BY_DESIGN)
        packages0 = dpkg_status(root)

        dry = ok_json(gpubundle_sh(root, "install", BUNDLE, "--trust", key.fingerprint,
                                   *INSTALL_ARGS, "--dry-run"))  # fmt: skip
        # The family, and what the root lacks of its closure (a newer libcap2 on 20.04).
        assert dry["plan"]["packages"] == bundle.packages
        assert dict.fromkeys(FAMILY, VERSION).items() <= bundle.packages.items()
        doc = ok_json(
            gpubundle_sh(root, "install", BUNDLE, "--trust", key.fingerprint, *INSTALL_ARGS)
        )
        assert doc["record"]["packages_installed"] == bundle.packages
        packages1 = dpkg_status(root)
        for name in FAMILY:
            assert packages1[name] == (VERSION, "install ok installed"), name
        changed = {
            n for n in packages0.keys() | packages1.keys() if packages0.get(n) != packages1.get(n)
        }
        assert changed == set(bundle.packages), "nothing of the carried runtime is installed"
        assert (root / "usr/bin/python3").exists() is has_python
        assert leftovers(root) == []
        python, decoder = ran_on(root, key.fingerprint).rsplit(" ", 1)
        assert python == runs_on
        # No zstd program anywhere: the carried wheel, or Python 3.14's own module.
        assert decoder == ("compression.zstd" if runs_on.endswith("3.14") else "zstandard")

        # uninstall (no --trust: the carried runtime is checked with the key install put in
        # place) takes the root back.
        ok_json(gpubundle_sh(root, "uninstall", "--yes", "--json"))
        assert differences(before, capture(root).without(KEPT_BY_DESIGN)) == []
        assert leftovers(root) == []


def ran_on(root: Path, fingerprint: str) -> str:
    """Which python3 the README's command runs the installer on here, and its zstd decoder:
    "stock 3.8 zstandard", "carried 3.14 compression.zstd" (the carried one lives under
    the preamble's temporary directory)."""
    probe = gpubundle_sh(root, "--debug", "verify", BUNDLE, "--trust", fingerprint)
    assert probe.returncode == 0, probe.stderr
    found = re.search(r"python (\S+) \(([^)]*)\)", probe.stderr)
    decoder = re.search(r"^zstd: (\S+)$", probe.stderr, re.M)
    assert found and decoder, probe.stderr
    where = "carried" if "/gpubundle-runtime-" in found[2] else "stock"
    return f"{where} {'.'.join(found[1].split('.')[:2])} {decoder[1]}"


def runtime_span(pyz: bytes) -> tuple[int, int]:
    """Where the carried runtime's tar lies in the installer, as its preamble says."""
    fields = dict(re.findall(rb"^(GB_TAR_AT|GB_TAR_SIZE)=([0-9]+)", pyz[:8192], re.M))
    return int(fields[b"GB_TAR_AT"]), int(fields[b"GB_TAR_SIZE"])


def test_an_altered_runtime_is_refused_before_anything_is_unpacked(
    tmp_path: Path, key: testkeys.TestKey, standin_repo: ServedStandin
) -> None:
    root = debootstrap_root("debian12", "minbase", dest=tmp_path / "root")
    built(root, tmp_path / "out", key, standin_repo, "debian12")
    pyz = root / PYZ.lstrip("/")
    data = bytearray(pyz.read_bytes())
    start, size = runtime_span(bytes(data))
    assert size > 1_000_000, "the debian12 installer carries python3.11's .debs"
    data[start + size // 2] ^= 0x01  # one bit, in the middle of some .deb
    pyz.write_bytes(bytes(data))
    with proc_mounted(root):
        before = listing(root)
        refused = gpubundle_sh(root, "install", BUNDLE, "--trust", key.fingerprint, *INSTALL_ARGS)
        assert refused.returncode == 3, refused.stderr
        assert "not signed by the key you trust" in refused.stderr
        assert "nothing on this host was changed" in refused.stderr
        assert listing_differences(before, listing(root)) == []
        assert leftovers(root) == []
        # A key other than the signer's: refused the same way.
        other = gpubundle_sh(root, "verify", BUNDLE, "--trust", "0" * 40)
        assert other.returncode == 3 and leftovers(root) == []


def test_stock_python_runs_the_pyz_directly(
    tmp_path: Path, key: testkeys.TestKey, standin_repo: ServedStandin
) -> None:
    """``python3 gpubundle-installer.pyz`` still works where python3 is 3.8: the preamble is
    only sh's; Python reads the zip from its end."""
    root = debootstrap_root("ubuntu20.04", "minbase", INCLUDE, dest=tmp_path / "root")
    built(root, tmp_path / "out", key, standin_repo, "ubuntu20.04")
    proc = subprocess.run(
        ["unshare", "-n", "chroot", str(root), "python3", PYZ, "verify", BUNDLE,
         "--trust", key.fingerprint, "--json"],
        capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=600,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
    )  # fmt: skip
    doc: dict[str, Any] = ok_json(proc)
    assert doc["ok"] is True


def test_sqv_checks_the_runtime_where_there_is_no_gpgv(
    tmp_path: Path, key: testkeys.TestKey, standin_repo: ServedStandin
) -> None:
    """Debian 13's minbase has sqv and no gpgv (apt 3 verifies with sqv) and no python3:
    the preamble checks the carried runtime with sqv, and the installer then checks the
    bundle with the gpgv it carries. A debian12 bundle, verified only (install would
    rightly refuse a debian12 bundle on a Debian 13 host)."""
    root = debootstrap_root("debian13", "minbase", dest=tmp_path / "root")
    assert (root / "usr/bin/sqv").exists() and not (root / "usr/bin/gpgv").exists()
    assert not (root / "usr/bin/python3").exists()
    built(root, tmp_path / "out", key, standin_repo, "debian12")
    with proc_mounted(root):
        before = listing(root)
        doc = ok_json(gpubundle_sh(root, "verify", BUNDLE, "--trust", key.fingerprint, "--json"))
        assert doc["ok"] is True
        wrong = gpubundle_sh(root, "verify", BUNDLE, "--trust", "F" * 40)
        assert wrong.returncode == 3, wrong.stderr
        assert "not signed by the key you trust" in wrong.stderr
        assert listing_differences(before, listing(root)) == []
        assert leftovers(root) == []
