"""The local apt source and the hermetic apt-get command lines."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from installer.aptlocal import (
    _advice,
    apt_install_argv,
    apt_update_argv,
    changed_packages,
    install_source,
    keyring_path,
    requested_pins,
    source_is_installed,
    sources_line,
)
from installer.errors import GpubundleError
from installer.openpgp import dearmor
from tests.support import testkeys
from tests.support.manifests import FPR, make_manifest

LIST = Path("/etc/apt/sources.list.d/gpubundle.list")


def _only_our_source(argv: list[str]) -> None:
    options = [argv[i + 1] for i, a in enumerate(argv) if a == "-o"]
    assert f"Dir::Etc::sourcelist={LIST}" in options
    assert "Dir::Etc::sourceparts=-" in options
    assert "APT::Get::List-Cleanup=0" in options
    assert "DPkg::Lock::Timeout=120" in options


def test_update_reads_only_the_bundle_source() -> None:
    argv = apt_update_argv(LIST)
    assert argv[:2] == ["apt-get", "update"]
    _only_our_source(argv)


def test_install_pins_the_requested_packages_and_keeps_configs() -> None:
    argv = apt_install_argv(LIST, {"nvidia-container-toolkit": "1.17.8-1", "docker.io": "24.0"})
    assert argv[:4] == ["apt-get", "install", "-y", "-q"]
    assert "--no-install-recommends" in argv
    assert "Dpkg::Options::=--force-confdef" in argv
    assert "Dpkg::Options::=--force-confold" in argv
    assert argv[-2:] == ["docker.io=24.0", "nvidia-container-toolkit=1.17.8-1"]
    _only_our_source(argv)


def test_requested_pins_come_from_the_manifest() -> None:
    assert requested_pins(make_manifest()) == {"nvidia-container-toolkit": "1.17.8-1"}
    with pytest.raises(GpubundleError, match="does not contain it"):
        requested_pins(make_manifest(requested=("nvidia-container-toolkit", "ghost")))


def test_source_line_is_a_signed_flat_file_repo() -> None:
    keyring = keyring_path(FPR, Path("/usr/share/keyrings"))
    assert keyring == Path("/usr/share/keyrings/gpubundle-89abcdef01234567.gpg")
    line = sources_line(Path("/var/lib/gpubundle/bundles/abc/repo/"), keyring)
    assert line == (f"deb [signed-by={keyring}] file:/var/lib/gpubundle/bundles/abc/repo/ /\n")


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("gnupg"))


def test_install_source_writes_a_readable_binary_keyring_once(
    tmp_path: Path, key: testkeys.TestKey
) -> None:
    lists, keyrings, repo = tmp_path / "gpubundle.list", tmp_path / "keyrings", tmp_path / "repo"
    paths = install_source(key.public_armored, key.fingerprint, repo, lists, keyrings)
    keyring = paths[0]
    assert keyring.read_bytes() == dearmor(key.public_armored)
    assert keyring.stat().st_mode & 0o777 == 0o644
    assert lists.read_text() == sources_line(repo, keyring)
    assert source_is_installed(key.public_armored, key.fingerprint, repo, lists, keyrings)
    mtime = keyring.stat().st_mtime_ns
    install_source(key.public_armored, key.fingerprint, repo, lists, keyrings)
    assert keyring.stat().st_mtime_ns == mtime
    # gpgv (what apt uses) accepts the keyring as written
    listing = subprocess.run(
        ["gpg", "--no-default-keyring", "--keyring", str(keyring), "--with-colons", "--list-keys"],
        capture_output=True, text=True, check=True, env={"GNUPGHOME": str(key.gnupghome)},
    ).stdout  # fmt: skip
    assert key.fingerprint in listing
    assert not source_is_installed(
        key.public_armored, key.fingerprint, tmp_path / "other", lists, keyrings
    )


def test_apt_failures_get_advice() -> None:
    assert "dpkg --configure -a" in _advice("E: dpkg was interrupted, you must manually run")
    assert "lock" in _advice("E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by")
    assert "apt-mark showhold" in _advice("The following packages have unmet dependencies:")


def test_changed_packages_are_new_or_other_versions() -> None:
    before = {"a": "1", "b": "1"}
    after = {"a": "1", "b": "2", "c": "1"}
    assert changed_packages(before, after) == {"b": "2", "c": "1"}
