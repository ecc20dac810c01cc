"""bundler.releasefile: parsing, freshness and file checks, on real and synthetic Release texts."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bundler.releasefile import check_file, check_fresh, check_suite, parse_release
from installer.errors import VerificationError
from installer.openpgp import verify_clearsigned

NVIDIA_FPR = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)

DISTS_RELEASE = b"""Origin: Ubuntu
Suite: jammy-updates
Codename: jammy
Date: Thu, 21 Apr 2022 17:16:08 UTC
Valid-Until: Fri, 22 Apr 2022 17:16:08 UTC
Description: Ubuntu Jammy
 with a continued description
MD5Sum:
 00000000000000000000000000000000 5 main/binary-amd64/Packages
SHA256:
 %(sha256)s 5 main/binary-amd64/Packages
 %(sha256)s 5 main/binary-amd64/Packages.xz
"""


def dists_release(data: bytes = b"hello") -> bytes:
    return DISTS_RELEASE % {b"sha256": hashlib.sha256(data).hexdigest().encode()}


def nvidia_release(nvidia_fixtures: Path) -> bytes:
    signed = (nvidia_fixtures / "stable/deb/amd64/InRelease").read_bytes()
    key = (nvidia_fixtures / "gpgkey").read_bytes()
    return verify_clearsigned(signed, [key], [NVIDIA_FPR], "nvidia InRelease").signed_data


def test_nvidia_release_has_only_sha512_and_an_old_date(nvidia_fixtures: Path) -> None:
    release = parse_release(nvidia_release(nvidia_fixtures), "nvidia")
    assert release.get("Codename") == "stable"
    assert set(release.files) == {"Packages", "Packages.xz"}
    entry = release.files["Packages"]
    assert entry.size == 178415 and set(entry.hashes) == {"SHA512"}
    assert entry.strongest()[0] == "SHA512"
    assert release.date is not None and release.date.year == 2018
    assert release.valid_until is None
    check_fresh(release, NOW, "nvidia")  # no Valid-Until: accepted however old the Date


def test_nvidia_packages_matches_its_release(nvidia_fixtures: Path) -> None:
    release = parse_release(nvidia_release(nvidia_fixtures), "nvidia")
    check_file(release.files["Packages"], nvidia_fixtures / "stable/deb/amd64/Packages", "nvidia")


def test_a_changed_byte_is_refused_with_expected_and_got(
    nvidia_fixtures: Path, tmp_path: Path
) -> None:
    release = parse_release(nvidia_release(nvidia_fixtures), "nvidia")
    data = bytearray((nvidia_fixtures / "stable/deb/amd64/Packages").read_bytes())
    data[100] ^= 1
    (tmp_path / "Packages").write_bytes(data)
    with pytest.raises(VerificationError) as err:
        check_file(release.files["Packages"], tmp_path / "Packages", "nvidia")
    assert "Packages does not match" in err.value.message
    assert err.value.details[0].startswith("SHA512: expected 6ed6287c")


def test_dists_release_fields_lists_and_sizes(tmp_path: Path) -> None:
    release = parse_release(dists_release(), "ubuntu")
    assert release.get("Suite") == "jammy-updates"
    assert release.get("Description") == "Ubuntu Jammy"
    assert "MD5Sum" not in release.fields and "SHA256" not in release.fields
    assert set(release.files["main/binary-amd64/Packages"].hashes) == {"SHA256"}
    (tmp_path / "p").write_bytes(b"hellO")
    with pytest.raises(VerificationError):
        check_file(release.files["main/binary-amd64/Packages"], tmp_path / "p", "ubuntu")
    (tmp_path / "p").write_bytes(b"hello!")
    with pytest.raises(VerificationError) as err:
        check_file(release.files["main/binary-amd64/Packages"], tmp_path / "p", "ubuntu")
    assert "size: expected 5, got 6" in err.value.details


def test_expired_release_is_refused_with_a_hint() -> None:
    release = parse_release(dists_release(), "ubuntu")
    with pytest.raises(VerificationError) as err:
        check_fresh(release, NOW, "ubuntu-updates")
    assert "Valid-Until" in err.value.message and "mirror" in err.value.hint
    check_fresh(release, datetime(2022, 4, 22, tzinfo=timezone.utc), "ubuntu-updates")


def test_suite_must_match_suite_or_codename() -> None:
    release = parse_release(dists_release(), "ubuntu")
    check_suite(release, "jammy-updates", "x")
    check_suite(release, "jammy", "x")
    with pytest.raises(VerificationError):
        check_suite(release, "focal", "x")


@pytest.mark.parametrize(
    "text",
    [
        b"Origin: x\nMD5Sum:\n 00 5 Packages\n",  # no strong hash at all
        b"Origin: x\nSHA256:\n abc five Packages\n",
        b" orphan continuation\n",
        b"no colon here\n",
        b"SHA256:\n aa 5 P\nSHA512:\n bb 6 P\n",  # two sizes for one file
    ],
)
def test_malformed_release_is_refused(text: bytes) -> None:
    with pytest.raises(VerificationError):
        parse_release(text, "x")
