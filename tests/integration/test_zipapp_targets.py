"""The installer zipapp on the stock python3 of real target roots, with no network.

Each root is a debootstrap minbase (plus python3 and gpgv, which apt hosts
have) of the target distribution; nothing else is installed, in particular no
zstandard module and no zstd program. The pyz must start, unpack the
zstandard wheel that fits that python, and verify a real signed bundle, all
inside ``unshare -n`` so no network is reachable.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support import testkeys
from tests.support.bundles import make_test_bundle
from tests.support.roots import debootstrap_root

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.archive]

PYTHONS = {"ubuntu20.04": "3.8", "debian11": "3.9", "ubuntu22.04": "3.10", "debian12": "3.11"}
INCLUDE = ("python3", "gpgv")  # the same roots as the install tests: one cache entry
DROP = "/opt/gpubundle-test"
CHROOT_ENV = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "HOME=/root"]
PROBE = (
    "import sys; sys.path.insert(0, sys.argv[1]);"
    "import installer.bootstrap as b; where = b.activate();"
    "from installer.zstd_stream import backend; import zstandard;"
    "print(where, backend(), zstandard.__file__, '%d.%d' % sys.version_info[:2])"
)


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("signer"), name="gpubundle zipapp test")


def in_root(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` chrooted into ``root`` with no network and a bare environment."""
    return subprocess.run(
        ["unshare", "--net", "--", "chroot", str(root), *CHROOT_ENV, *argv],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


@pytest.mark.parametrize("distro", sorted(PYTHONS))
def test_pyz_runs_and_verifies_on_stock_python(
    distro: str, tmp_path: Path, installer_pyz: Path, key: testkeys.TestKey
) -> None:
    root = debootstrap_root(distro, "minbase", INCLUDE, dest=tmp_path / "root")
    assert not (root / "usr/bin/zstd").exists(), "the root must not offer the zstd fallback"
    bundle = make_test_bundle(tmp_path / "bundle", key)
    drop = root / DROP.lstrip("/")
    drop.mkdir(parents=True)
    shutil.copyfile(installer_pyz, drop / installer_pyz.name)
    shutil.copyfile(bundle.path, drop / "bundle.tar.zst")
    target_pyz = f"{DROP}/{installer_pyz.name}"

    helped = in_root(root, "python3", target_pyz, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "verify" in helped.stdout and "install" in helped.stdout

    probe = in_root(root, "python3", "-c", PROBE, target_pyz)
    assert probe.returncode == 0, probe.stderr
    where, backend, module, version = probe.stdout.split()
    assert version == PYTHONS[distro]
    assert backend == "zstandard"
    # Unpacked into a private temporary directory, gone when the process exits:
    # verify and --dry-run must leave the host as they found it.
    assert where.startswith(tempfile.gettempdir() + "/gpubundle-pylib-") and module.startswith(
        where
    )
    assert not (root / where.lstrip("/")).exists()
    assert not (root / "var/lib/gpubundle").exists()

    verified = in_root(
        root, "python3", target_pyz, "verify", f"{DROP}/bundle.tar.zst",
        "--trust", key.fingerprint,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr + verified.stdout

    tampered = drop / "bundle.tar.zst"
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    refused = in_root(
        root, "python3", target_pyz, "verify", f"{DROP}/bundle.tar.zst",
        "--trust", key.fingerprint,
    )  # fmt: skip
    assert refused.returncode == 3, refused.stderr + refused.stdout
