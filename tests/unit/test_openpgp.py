"""installer.openpgp against NVIDIA's real, published repository metadata and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from installer.errors import ExitCode, VerificationError
from installer.openpgp import dearmor, normalize_fingerprint, verify_clearsigned, verify_detached
from tests.support.testkeys import make_key

NVIDIA_FPR = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"


def test_real_nvidia_inrelease_verifies_with_pinned_key(nvidia_fixtures: Path) -> None:
    key = (nvidia_fixtures / "gpgkey").read_bytes()
    for arch in ("amd64", "arm64"):
        signed = (nvidia_fixtures / "stable/deb" / arch / "InRelease").read_bytes()
        result = verify_clearsigned(signed, [key], [NVIDIA_FPR], f"nvidia {arch}")
        assert result.primary_fingerprint == NVIDIA_FPR
        assert result.signed_data.startswith(f"Architectures: {arch}\nCodename: stable\n".encode())
        assert b"SHA512:" in result.signed_data
        assert b"-----BEGIN PGP" not in result.signed_data


def test_tampered_inrelease_is_refused(nvidia_fixtures: Path) -> None:
    key = (nvidia_fixtures / "gpgkey").read_bytes()
    signed = (nvidia_fixtures / "stable/deb/amd64/InRelease").read_bytes()
    tampered = signed.replace(b"Codename: stable", b"Codename: stabla")
    with pytest.raises(VerificationError) as err:
        verify_clearsigned(tampered, [key], [NVIDIA_FPR], "nvidia amd64 InRelease")
    assert err.value.code == ExitCode.VERIFICATION
    assert "BADSIG" in "\n".join(err.value.details)
    assert "nvidia amd64 InRelease" in err.value.message


def test_valid_signature_by_untrusted_key_is_refused(nvidia_fixtures: Path) -> None:
    key = (nvidia_fixtures / "gpgkey").read_bytes()
    signed = (nvidia_fixtures / "stable/deb/amd64/InRelease").read_bytes()
    with pytest.raises(VerificationError, match="not trusted"):
        verify_clearsigned(signed, [key], ["0" * 40], "nvidia")


def test_signature_without_matching_key_is_refused(nvidia_fixtures: Path, tmp_path: Path) -> None:
    other = make_key(tmp_path / "gnupg")
    signed = (nvidia_fixtures / "stable/deb/amd64/InRelease").read_bytes()
    with pytest.raises(VerificationError) as err:
        verify_clearsigned(signed, [other.public_armored], [NVIDIA_FPR], "nvidia")
    assert any("NO_PUBKEY" in line or "ERRSIG" in line for line in err.value.details)


def test_detached_signature_round_trip(tmp_path: Path) -> None:
    import subprocess

    key = make_key(tmp_path / "gnupg")
    data = tmp_path / "manifest.json"
    data.write_bytes(b'{"format": 1}\n')
    sig = tmp_path / "manifest.json.asc"
    subprocess.run(
        [
            "gpg",
            "--homedir",
            str(key.gnupghome),
            "--batch",
            "--armor",
            "--detach-sign",
            "--output",
            str(sig),
            str(data),
        ],
        check=True,
        capture_output=True,
    )
    result = verify_detached(data, sig, [key.public_armored], [key.fingerprint], "manifest")
    assert result.primary_fingerprint == key.fingerprint
    data.write_bytes(b'{"format": 2}\n')
    with pytest.raises(VerificationError):
        verify_detached(data, sig, [key.public_armored], [key.fingerprint], "manifest")


def test_dearmor_matches_gpg_dearmor(nvidia_fixtures: Path, tmp_path: Path) -> None:
    import subprocess

    armored = (nvidia_fixtures / "gpgkey").read_bytes()
    expected = subprocess.run(
        ["gpg", "--dearmor"], input=armored, capture_output=True, check=True
    ).stdout
    assert dearmor(armored) == expected
    assert dearmor(expected) == expected  # binary input passes through


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("C95B 321B 61E8 8C18 09C4  F759 DDCA E044 F796 ECB0", NVIDIA_FPR),
        ("0xc95b321b61e88c1809c4f759ddcae044f796ecb0", NVIDIA_FPR),
    ],
)
def test_normalize_fingerprint(raw: str, expected: str) -> None:
    assert normalize_fingerprint(raw) == expected


@pytest.mark.parametrize("raw", ["F796ECB0", "DDCAE044F796ECB0", "zz" * 20, ""])
def test_short_or_bad_fingerprints_are_rejected(raw: str) -> None:
    with pytest.raises(ValueError):
        normalize_fingerprint(raw)


def test_key_packets_parse_strictly(nvidia_fixtures: Path) -> None:
    from installer.openpgp import key_blocks, primary_fingerprints

    armored = (nvidia_fixtures / "gpgkey").read_bytes()
    [block] = key_blocks(armored)
    assert block.fingerprint == NVIDIA_FPR
    assert block.to_bytes() == dearmor(armored)  # every packet kept, byte for byte
    for damaged in (dearmor(armored)[:-7], b"\x00garbage", b"\x99"):
        with pytest.raises(ValueError):
            key_blocks(damaged)
        assert primary_fingerprints(damaged) == []


def test_merging_copies_of_one_key(nvidia_fixtures: Path, tmp_path: Path) -> None:
    from installer.openpgp import key_blocks, merge_keys

    [nvidia] = key_blocks((nvidia_fixtures / "gpgkey").read_bytes())
    assert merge_keys(nvidia, nvidia) == nvidia  # nothing doubled
    [other] = key_blocks(make_key(tmp_path / "gnupg").public_armored)
    with pytest.raises(ValueError, match="cannot merge"):
        merge_keys(nvidia, other)


def test_damaged_key_data_raises_only_value_error(nvidia_fixtures: Path, tmp_path: Path) -> None:
    import contextlib
    import random

    from installer.openpgp import key_blocks, revocations

    key = make_key(tmp_path / "gnupg")
    cert = (key.gnupghome / "openpgp-revocs.d" / f"{key.fingerprint}.rev").read_bytes()
    sources = [dearmor((nvidia_fixtures / "gpgkey").read_bytes()), dearmor(cert)]
    rng = random.Random(8)
    for _ in range(3000):
        data = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = data[: rng.randint(1, len(data))]
        for parse in (key_blocks, revocations):
            with contextlib.suppress(ValueError):
                parse(bytes(data))


@pytest.mark.parametrize(
    "hashed_area",
    [b"\xc0", b"\xff\x00\x00", b"\x05\x21\x04", b"\x00"],  # lengths that end past the area
)
def test_revocation_with_damaged_subpackets_names_no_issuer(hashed_area: bytes) -> None:
    from installer.openpgp import Packet, revocation_issuer

    body = b"\x04\x20\x16\x0a" + len(hashed_area).to_bytes(2, "big") + hashed_area + b"\x00\x00"
    assert revocation_issuer(Packet(2, body, b"")) == ""
