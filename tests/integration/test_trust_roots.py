"""Signature trust on real parts: a real Debian 12 root's apt, and a real full tmpfs as TMPDIR.

- A bundle signed by a key that has since expired is refused by ``install`` (exit 3)
  with the root unchanged; once the key's extended public key is copied into the
  root's /etc/gpubundle/trusted.d, the same bundle installs, and the root's own apt
  accepts the local repository with the keyring the installer wrote (the bundle
  carries only the expired copy: apt would refuse it with EXPKEYSIG).
- A TMPDIR on a tmpfs with no room left is reported as such (exit 1), never as a
  bad signature (exit 3): whether our own scratch files or gpgv's output do not fit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer import layout
from installer.aptlocal import keyring_path
from installer.bundle_reader import verify_bundle
from installer.errors import ExitCode, GpubundleError, VerificationError
from installer.hostpaths import HostPaths
from installer.openpgp import dearmor, key_blocks, merge_keys, verify_clearsigned
from tests.conftest import REPO_ROOT
from tests.support import inroot, testkeys
from tests.support.bundles import make_test_bundle
from tests.support.roots import debootstrap_root
from tests.support.rootsnapshot import capture, differences

pytestmark = [pytest.mark.integration, pytest.mark.root]

DAY = 86_400
INCLUDE = ("python3", "gpgv")
PAGE = 4096


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    path = debootstrap_root("debian12", "minbase", INCLUDE, dest=tmp_path / "root")
    with inroot.proc_mounted(path):
        yield path


@pytest.mark.archive
def test_expired_key_refused_then_extended_key_in_trusted_d_installs_and_apt_accepts(
    tmp_path: Path, root: Path, installer_pyz: Path
) -> None:
    now = int(time.time())
    key = testkeys.make_key(tmp_path / "gnupg", "expiring", created=now - 10 * DAY, expires="2d")
    bundle = make_test_bundle(
        tmp_path / "b", key, manifest_changes={"distro": "debian12", "python": "3.11"}
    )
    inroot.stage(root, bundle.path, installer_pyz)
    before = capture(root)
    args = ("install", inroot.BUNDLE, "--trust", key.fingerprint, "--runtime", "none",
            "--skip-gpu-checks", "--yes", "--json")  # fmt: skip

    refused = inroot.gpubundle(root, *args)
    assert refused.returncode == int(ExitCode.VERIFICATION), refused.stderr
    doc = json.loads(refused.stdout)
    assert f"the signing key {key.fingerprint} expired on" in doc["message"]
    # Nothing changed but the lock file every run takes.
    assert [d for d in differences(before, capture(root)) if layout.LOCK_FILE not in d] == []
    assert not (root / layout.STATE_DIR.lstrip("/") / "bundles").exists()

    extended = testkeys.set_expiry(key, "1y")
    trust_dir = root / layout.TRUST_DIR.lstrip("/")
    trust_dir.mkdir(parents=True)
    (trust_dir / "signer.asc").write_bytes(extended)
    done = inroot.ok_json(inroot.gpubundle(root, *args))
    assert done["warnings"] == []
    status = capture(root).packages
    for pin in bundle.manifest.packages:
        assert status[pin.name] == (pin.version, "install ok installed")
    # The keyring apt checked the local repository with is the extended key, merged.
    keyring = keyring_path(key.fingerprint, HostPaths(root).keyrings_dir)
    carried = key_blocks(key.public_armored)[0]
    assert keyring.read_bytes() == merge_keys(key_blocks(extended)[0], carried).to_bytes()
    assert keyring.read_bytes() != dearmor(key.public_armored)
    # And apt, reading only that source, still accepts it now.
    inroot.in_root(root, "apt-get", "update", "-q", "-o",
                   f"Dir::Etc::sourcelist={HostPaths.system().sources_list}",
                   "-o", "Dir::Etc::sourceparts=/nonexistent")  # fmt: skip


@pytest.fixture
def full_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs with one page left: room for Python's probe file, not for more."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        (mount / "filler").write_bytes(b"\0" * (64 * 1024 - PAGE))
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_full_tmpdir_is_said_as_such_not_as_a_bad_signature(
    tmp_path: Path, full_tmpfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = testkeys.make_key(tmp_path / "gnupg")
    bundle = make_test_bundle(tmp_path / "b", key)
    proc = subprocess.run(
        [sys.executable, "-m", "installer", "verify", str(bundle.path),
         "--trust", key.fingerprint, "--json"],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "TMPDIR": str(full_tmpfs)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == int(ExitCode.FAILURE), proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["message"].startswith(f"no space left in {full_tmpfs} for the signature check")
    assert "TMPDIR" in doc["hint"] and "copy" not in doc["hint"]

    monkeypatch.setattr(tempfile, "tempdir", str(full_tmpfs))
    with pytest.raises(GpubundleError) as err:
        verify_bundle(bundle.path, [key.fingerprint])
    assert err.value.code == ExitCode.FAILURE
    assert f"no space left in {full_tmpfs}" in err.value.message


def test_gpgv_that_cannot_write_its_output_is_said_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Room for the keyring and the document, none for the content gpgv writes out."""
    key = testkeys.make_key(tmp_path / "gnupg")
    make_test_bundle(tmp_path / "b", key)  # its repository's InRelease is what is checked
    inrelease = (tmp_path / "b" / "parts" / layout.REPO_DIR / "InRelease").read_bytes()
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        (mount / "filler").write_bytes(b"\0" * (64 * 1024 - 2 * PAGE))
        monkeypatch.setattr(tempfile, "tempdir", str(mount))
        with pytest.raises(GpubundleError) as err:
            verify_clearsigned(inrelease, [key.public_armored], [key.fingerprint], "InRelease")
    finally:
        subprocess.run(["umount", str(mount)], check=False)
    assert not isinstance(err.value, VerificationError)
    assert err.value.message.startswith(f"no space left in {mount} for the signature check")
    assert any("No space left on device" in line for line in err.value.details)
