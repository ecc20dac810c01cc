"""bundler.localrepo: Packages from the .debs themselves, Release, InRelease signed by the bundle key."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from bundler.localrepo import packages_index, release_date, release_file, repo_files
from bundler.signing import Signer
from installer import layout
from installer.errors import GpubundleError
from installer.openpgp import verify_clearsigned
from tests.support import testkeys
from tests.support.bundles import EPOCH, DebSpec, deb_pin, make_deb


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("gnupg"))


def test_packages_stanzas_come_from_the_debs_sorted_by_name_then_version(tmp_path: Path) -> None:
    specs = [
        DebSpec("zeta", "10.0-1"),
        DebSpec("alpha", "9.0-1", depends="zeta (>= 10)"),
        DebSpec("alpha", "10.0~rc1-1"),
        DebSpec("alpha", "10.0-1", architecture="all"),
    ]
    debs = [(deb_pin(deb, spec), deb) for spec in specs for deb in [make_deb(tmp_path, spec)]]
    text = packages_index(debs).decode()
    stanzas = text.split("\n\n")
    order = [(s.split("\n")[0], s.split("\n")[1]) for s in stanzas]
    assert order == [
        ("Package: alpha", "Version: 9.0-1"),
        ("Package: alpha", "Version: 10.0~rc1-1"),
        ("Package: alpha", "Version: 10.0-1"),
        ("Package: zeta", "Version: 10.0-1"),
    ]
    first = stanzas[0] + "\n"
    _, deb = debs[1]
    assert "Depends: zeta (>= 10)\n" in first
    assert "Maintainer: gpubundle tests <test@gpubundle.invalid>\n" in first
    assert (
        "Description: gpubundle test package alpha\n Built by tests/support/bundles.py.\n" in first
    )
    assert f"Filename: debs/{deb.name}\n" in first
    assert f"Size: {deb.stat().st_size}\n" in first
    assert f"SHA256: {hashlib.sha256(deb.read_bytes()).hexdigest()}\n" in first
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_a_deb_that_is_not_what_its_pin_says_is_refused(tmp_path: Path) -> None:
    spec = DebSpec("alpha", "1.0-1")
    deb = make_deb(tmp_path, spec)
    pin = dataclasses.replace(deb_pin(deb, spec), version="1.0-2")
    with pytest.raises(GpubundleError, match=r"expected alpha_1\.0-2_amd64"):
        packages_index([(pin, deb)])


def test_a_broken_deb_is_refused(tmp_path: Path) -> None:
    spec = DebSpec("alpha")
    deb = tmp_path / "alpha_1.0-1_amd64.deb"
    deb.write_bytes(b"!<arch>\nnot really\n")
    with pytest.raises(GpubundleError, match=r"not a readable \.deb"):
        packages_index([(deb_pin(deb, spec), deb)])


def test_release_has_date_and_hash_and_never_expires() -> None:
    packages = b"Package: a\n"
    release = release_file(packages, EPOCH, ["amd64", "amd64"]).decode()
    assert "Date: Tue, 14 Nov 2023 22:13:20 UTC\n" in release
    assert "Architectures: amd64\n" in release
    assert "Valid-Until" not in release
    assert release.endswith(f"SHA256:\n {hashlib.sha256(packages).hexdigest()} 11 Packages\n")
    assert release_date(0) == "Thu, 01 Jan 1970 00:00:00 UTC"


def test_repo_files_are_signed_by_the_bundle_key_and_reproducible(
    tmp_path: Path, key: testkeys.TestKey
) -> None:
    debs = [
        (deb_pin(deb, spec), deb)
        for spec in [DebSpec("alpha"), DebSpec("beta")]
        for deb in [make_deb(tmp_path, spec)]
    ]
    signer = Signer(key.fingerprint, key.gnupghome)
    files = repo_files(debs, signer, EPOCH)
    assert list(files) == [layout.REPO_PACKAGES, layout.REPO_RELEASE, layout.REPO_INRELEASE]
    assert files == repo_files(debs, signer, EPOCH)
    result = verify_clearsigned(
        files[layout.REPO_INRELEASE], [key.public_armored], [key.fingerprint], "InRelease"
    )
    assert result.signed_data == files[layout.REPO_RELEASE]
