"""bundler.signing: reproducible signatures that installer.openpgp (gpgv) accepts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bundler.signing import Signer
from installer.errors import GpubundleError, VerificationError
from installer.openpgp import primary_fingerprints, verify_clearsigned, verify_detached
from tests.support import testkeys
from tests.support.testkeys import make_key

LATER = 2_000_000_000  # after any test key's creation


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return make_key(tmp_path_factory.mktemp("gnupg"))


def test_detached_signature_is_reproducible_and_verifies(
    key: testkeys.TestKey, tmp_path: Path
) -> None:
    signer = Signer(key.fingerprint, key.gnupghome)
    first = signer.sign_detached(b"manifest\n", timestamp=LATER)
    assert first == Signer(key.fingerprint, key.gnupghome).sign_detached(
        b"manifest\n", timestamp=LATER
    )
    assert first.startswith(b"-----BEGIN PGP SIGNATURE-----")
    assert first != signer.sign_detached(b"manifest\n", timestamp=LATER + 1)
    data, sig = tmp_path / "data", tmp_path / "data.asc"
    data.write_bytes(b"manifest\n")
    sig.write_bytes(first)
    result = verify_detached(data, sig, [signer.public_key()], [key.fingerprint], "test")
    assert (result.primary_fingerprint, result.timestamp) == (key.fingerprint, LATER)
    data.write_bytes(b"manifest!\n")
    with pytest.raises(VerificationError):
        verify_detached(data, sig, [signer.public_key()], [key.fingerprint], "test")


def test_clearsign_is_reproducible_and_covers_exactly_the_data(key: testkeys.TestKey) -> None:
    signer = Signer(key.fingerprint, key.gnupghome)
    text = b"Origin: gpubundle\nSHA256:\n abc 1 Packages\n"
    signed = signer.clearsign(text, timestamp=LATER)
    assert signed == signer.clearsign(text, timestamp=LATER)
    result = verify_clearsigned(signed, [signer.public_key()], [key.fingerprint], "InRelease")
    assert result.signed_data == text


def test_timestamp_before_the_key_is_raised_to_the_key_creation(key: testkeys.TestKey) -> None:
    signer = Signer(key.fingerprint, key.gnupghome)
    created = signer.signature_time(0)
    assert 1_600_000_000 < created <= signer.signature_time(LATER) == LATER
    # Still reproducible, and still accepted by gpgv (no "time warp").
    assert signer.clearsign(b"x\n", timestamp=0) == signer.clearsign(b"x\n", timestamp=created)
    result = verify_clearsigned(
        signer.clearsign(b"x\n", timestamp=0), [key.public_armored], [key.fingerprint], "old"
    )
    assert result.timestamp == created


def test_rsa_signatures_are_reproducible_too(tmp_path: Path) -> None:
    rsa = make_key(tmp_path / "rsa", algo="rsa2048")
    signer = Signer(rsa.fingerprint, rsa.gnupghome)
    assert signer.sign_detached(b"x", timestamp=LATER) == signer.sign_detached(
        b"x", timestamp=LATER
    )


def test_public_key_export_is_minimal_and_has_the_fingerprint(key: testkeys.TestKey) -> None:
    exported = Signer(key.fingerprint, key.gnupghome).public_key()
    assert exported.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert b"PRIVATE" not in exported
    assert primary_fingerprints(exported) == [key.fingerprint]


def test_missing_secret_key_says_how_to_make_one(key: testkeys.TestKey) -> None:
    with pytest.raises(GpubundleError) as err:
        Signer("0" * 40, key.gnupghome)
    assert "no secret key 0000" in err.value.message
    assert "gpg --quick-gen-key" in err.value.hint and "--sign-key" in err.value.hint


def test_short_key_id_is_refused(key: testkeys.TestKey) -> None:
    with pytest.raises(GpubundleError, match="--sign-key"):
        Signer(key.fingerprint[-16:], key.gnupghome)


def test_no_sign_key_says_why_and_how(key: testkeys.TestKey) -> None:
    with pytest.raises(GpubundleError) as err:
        Signer("", gnupghome=key.gnupghome)
    assert "no signing key given" in err.value.message
    assert "gpg --quick-gen-key" in err.value.hint


def test_a_signature_made_for_the_current_second_is_reproducible(key: testkeys.TestKey) -> None:
    """gpg ignores a faked time equal to the current second (its clock then runs): the
    signer waits that second out, so the same input still gives the same bytes."""
    signer = Signer(key.fingerprint, key.gnupghome)
    now = max(int(time.time()), signer.signature_time(0))
    first = signer.clearsign(b"x\n", timestamp=now)
    # gpg ran only once its clock could be frozen at ``now`` (a later second).
    assert int(time.time()) > now
    assert first == signer.clearsign(b"x\n", timestamp=now)
    result = verify_clearsigned(first, [key.public_armored], [key.fingerprint], "now")
    assert result.timestamp == now
