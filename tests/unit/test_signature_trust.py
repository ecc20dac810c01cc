"""Signature trust as strict as apt's, with real gpg-made keys and the real gpgv.

Keys are expired, revoked, extended or from the future exactly as gpg makes them
(``tests.support.testkeys``); signatures are made by gpg at chosen times. The
verifier must refuse each unusable key with its reason (exit code 3), honour a
revocation or an extended expiry placed in trusted.d although the bundle carries
the older copy, and hand apt the same key material gpgv checked.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from installer import layout
from installer.bundle_reader import read_verified, verify_bundle
from installer.cli import main
from installer.errors import ExitCode, GpubundleError, VerificationError
from installer.hostpaths import HostPaths
from installer.openpgp import key_blocks, merge_keys, verify_clearsigned, verify_detached
from installer.trust import BUNDLE_KEY_ADVICE, Trust, load_trust
from tests.conftest import REPO_ROOT
from tests.support import testkeys
from tests.support.bundles import make_test_bundle, split_test_bundle

DAY = 86_400
NOW = int(time.time())


def _expired_key(home: Path) -> testkeys.TestKey:
    """Created ten days ago, expired eight days ago."""
    return testkeys.make_key(home, "expired", created=NOW - 10 * DAY, expires="2d")


def _signed(tmp: Path, key: testkeys.TestKey, at: int) -> tuple[Path, Path]:
    data = tmp / "manifest.json"
    data.write_bytes(b'{"format": 1}\n')
    return data, testkeys.sign_detached(key, data, at)


def _verify(data: Path, sig: Path, keys: list[bytes], trusted: list[str] | Trust) -> str:
    """gpgv's acceptance of ``sig`` over ``data``: the primary fingerprint it was made by."""
    result = verify_detached(data, sig, keys, trusted, "bundle manifest", BUNDLE_KEY_ADVICE)
    return result.primary_fingerprint


def _refusal(call: Callable[[], object]) -> VerificationError:
    with pytest.raises(VerificationError) as err:
        call()
    assert err.value.code == ExitCode.VERIFICATION
    return err.value


def _trust_dir(tmp: Path, **files: bytes) -> Path:
    directory = tmp / "trusted.d"
    directory.mkdir(exist_ok=True)
    for name, data in files.items():
        (directory / name.replace("_", ".")).write_bytes(data)
    return directory


# --- each unusable key, refused with its reason -------------------------------------


def test_expired_key_is_refused_naming_the_expiry(tmp_path: Path) -> None:
    key = _expired_key(tmp_path / "gnupg")
    data, sig = _signed(tmp_path, key, at=NOW - 9 * DAY)
    err = _refusal(lambda: _verify(data, sig, [key.public_armored], [key.fingerprint]))
    expiry = time.strftime("%Y-%m-%d", time.gmtime(NOW - 8 * DAY))
    assert f"the signing key {key.fingerprint} expired on {expiry}" in err.message
    assert f"gpg --quick-set-expire {key.fingerprint}" in err.hint
    assert layout.TRUST_DIR in err.hint and "re-sign the bundle" in err.hint
    assert any(line.startswith("EXPKEYSIG") for line in err.details)


def test_signature_made_after_the_key_expired_is_refused_with_that_reason(tmp_path: Path) -> None:
    key = _expired_key(tmp_path / "gnupg")
    original = testkeys.export_public(key)  # expired eight days ago
    testkeys.set_expiry(key, "1y")  # only so that gpg agrees to sign at a later time
    data, sig = _signed(tmp_path, key, at=NOW - 5 * DAY)
    err = _refusal(lambda: _verify(data, sig, [original], [key.fingerprint]))
    assert "after the signing key" in err.message and "expired on" in err.message
    assert "signature made by an expired key is not accepted" in err.hint


def test_key_from_the_future_is_not_valid_yet(tmp_path: Path) -> None:
    key = testkeys.make_key(tmp_path / "gnupg", "future", created=NOW + DAY)
    data, sig = _signed(tmp_path, key, at=NOW + DAY + 60)
    err = _refusal(lambda: _verify(data, sig, [key.public_armored], [key.fingerprint]))
    assert f"the signing key {key.fingerprint} is not valid yet" in err.message
    assert "clock" in err.hint


def test_revocation_in_trusted_d_wins_over_the_bundles_unrevoked_copy(tmp_path: Path) -> None:
    key = testkeys.make_key(tmp_path / "gnupg", "revoked", created=NOW - DAY)
    carried = key.public_armored  # what the bundle holds: not revoked
    data, sig = _signed(tmp_path, key, at=NOW - 60)
    assert _verify(data, sig, [carried], [key.fingerprint]) == key.fingerprint  # before
    trust = load_trust([key.fingerprint], _trust_dir(tmp_path, signer_asc=testkeys.revoke(key)))
    err = _refusal(lambda: _verify(data, sig, trust.keyring([carried]), trust))
    assert f"the signing key {key.fingerprint} has been revoked" in err.message
    assert "--trust NEWFPR" in err.hint
    # Merged either way round, the revocation stays (gpgv would use the first copy it meets).
    revoked = key_blocks(testkeys.export_public(key))[0]
    plain = key_blocks(carried)[0]
    for merged in (merge_keys(plain, revoked), merge_keys(revoked, plain)):
        err = _refusal(lambda m=merged: _verify(data, sig, [m.to_bytes()], [key.fingerprint]))
        assert "revoked" in err.message


def test_revocation_certificate_copied_into_trusted_d_revokes_but_never_trusts(
    tmp_path: Path,
) -> None:
    key = testkeys.make_key(tmp_path / "gnupg", "revoked", created=NOW - DAY)
    other = testkeys.make_key(tmp_path / "gnupg2", "other", created=NOW - DAY)
    data, sig = _signed(tmp_path, key, at=NOW - 60)
    # gpg's own certificate file, copied as it is (its armour is guarded by a ':').
    directory = _trust_dir(tmp_path)
    for made in (key, other):
        cert = made.gnupghome / "openpgp-revocs.d" / f"{made.fingerprint}.rev"
        (directory / cert.name).write_bytes(cert.read_bytes())
    assert list(load_trust([], directory)) == []  # a revocation trusts nothing
    trust = load_trust([key.fingerprint], directory)
    assert trust.warnings == ()
    err = _refusal(lambda: _verify(data, sig, trust.keyring([key.public_armored]), trust))
    assert f"the signing key {key.fingerprint} has been revoked" in err.message
    # The other key's certificate does not touch this key: without this key's, it verifies.
    (directory / f"{key.fingerprint}.rev").unlink()
    trust = load_trust([key.fingerprint], directory)
    assert _verify(data, sig, trust.keyring([key.public_armored]), trust) == key.fingerprint
    assert trust.signer_key(key.fingerprint, key.public_armored) == key.public_armored


def test_signature_by_an_untrusted_expired_key_says_untrusted(tmp_path: Path) -> None:
    key = _expired_key(tmp_path / "gnupg")
    data, sig = _signed(tmp_path, key, at=NOW - 9 * DAY)
    err = _refusal(lambda: _verify(data, sig, [key.public_armored], ["0" * 40]))
    assert "which is not trusted" in err.message


# --- an extended key in trusted.d: verifies, and is what apt gets -------------------


def test_extended_key_in_trusted_d_verifies_and_is_the_key_apt_gets(tmp_path: Path) -> None:
    key = _expired_key(tmp_path / "gnupg")
    bundle = make_test_bundle(tmp_path / "b", key)  # carries the expired copy
    extended = testkeys.set_expiry(key, "1y")
    _refusal(lambda: verify_bundle(bundle.path, [key.fingerprint]))
    trust = load_trust([], _trust_dir(tmp_path, extended_asc=extended))
    assert list(trust) == [key.fingerprint]
    assert verify_bundle(bundle.path, trust).signer_fingerprint == key.fingerprint

    apt_key = read_verified(bundle.path, trust).apt_key()
    inrelease = (tmp_path / "b" / "parts" / layout.REPO_DIR / "InRelease").read_bytes()
    # apt checks the local repository with this key alone: it must be the extended one.
    assert verify_clearsigned(inrelease, [apt_key], [key.fingerprint], "InRelease").signed_data
    _refusal(lambda: verify_clearsigned(inrelease, [key.public_armored], [key.fingerprint], "x"))
    # Without a trusted.d copy, apt gets the bundle's copy byte for byte, as before.
    verified = read_verified(bundle.path, trust)
    assert verified.carried_key == key.public_armored
    without_copy = dataclasses.replace(verified, trust=Trust((key.fingerprint,)))
    assert without_copy.apt_key() == key.public_armored


def test_split_bundle_index_is_held_to_the_same_rules(tmp_path: Path) -> None:
    key = _expired_key(tmp_path / "gnupg")
    bundle = make_test_bundle(
        tmp_path / "b", key, files={layout.IMAGES_ARCHIVE: os.urandom(200_000)}
    )
    split = split_test_bundle(bundle, key, tmp_path / "split", 64 * 1024)
    err = _refusal(lambda: verify_bundle(split.index, [key.fingerprint], extract_to=tmp_path / "x"))
    assert err.message.startswith(f"parts index {split.index.name}: the signing key")
    assert "expired on" in err.message
    assert not (tmp_path / "x").exists()
    trust = load_trust([], _trust_dir(tmp_path, k_asc=testkeys.set_expiry(key, "1y")))
    assert verify_bundle(split.index, trust) == bundle.manifest
    assert b"BEGIN PGP PUBLIC KEY" in read_verified(split.index, trust).apt_key()


# --- trusted.d read file by file ----------------------------------------------------


@pytest.mark.timeout(60)
def test_damaged_trusted_d_files_are_named_and_skipped(tmp_path: Path) -> None:
    good = testkeys.make_key(tmp_path / "gnupg", "good")
    other = testkeys.make_key(tmp_path / "gnupg2", "other")
    directory = _trust_dir(
        tmp_path,
        a_asc=os.urandom(300) + b"\x00",
        b_gpg=b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!not base64!!\n"
        b"-----END PGP PUBLIC KEY BLOCK-----\n",
        c_pgp=b"",
        other_asc=other.public_armored,
        notes_txt=b"not a key file name: ignored",
    )
    (directory / "d.asc").mkdir()
    (directory / "e.asc").symlink_to(tmp_path / "nowhere.asc")
    os.mkfifo(directory / "f.asc")  # reading it would hang: refused by kind
    trust = load_trust([good.fingerprint], directory)
    assert list(trust) == [good.fingerprint, other.fingerprint]
    named = {Path(w.split(":", 1)[0]).name: w for w in trust.warnings}
    assert sorted(named) == ["a.asc", "b.gpg", "c.pgp", "d.asc", "e.asc", "f.asc"]
    assert "a directory" in named["d.asc"] and "a FIFO" in named["f.asc"]
    assert "does not exist" in named["e.asc"] and "no OpenPGP" in named["c.pgp"]
    assert all("not trusted" in w for w in trust.warnings)


def _as_nobody(action: Callable[[], object]) -> object:
    """``action()`` run by a child process as user nobody (so permissions apply to root too)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, report the result as JSON, never return
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, json.dumps(action()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        out = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(out)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may traverse (pytest's tmp_path is private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="gpubundle-trust-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def test_unreadable_key_file_is_named_and_the_valid_trust_still_works(
    tmp_path: Path, open_dir: Path
) -> None:
    good = testkeys.make_key(tmp_path / "gnupg", "good")
    other = testkeys.make_key(tmp_path / "gnupg2", "other")
    directory = open_dir / "trusted.d"
    directory.mkdir(mode=0o755)
    (directory / "secret.asc").write_bytes(other.public_armored)
    (directory / "secret.asc").chmod(0o000)

    def load() -> list[list[str]]:
        trust = load_trust([good.fingerprint], directory)
        return [list(trust), list(trust.warnings)]

    fingerprints, warnings = load() if os.geteuid() else _as_nobody(load)
    assert fingerprints == [good.fingerprint]
    assert warnings == [
        f"{directory}/secret.asc: skipped, Permission denied; its keys are not trusted"
    ]


# --- the command line -----------------------------------------------------------------


def test_verify_command_refuses_an_expired_key_with_one_json_document(tmp_path: Path) -> None:
    key = _expired_key(tmp_path / "gnupg")
    bundle = make_test_bundle(tmp_path, key)
    result = CliRunner().invoke(
        main, ["verify", str(bundle.path), "--trust", key.fingerprint, "--json"]
    )
    assert result.exit_code == int(ExitCode.VERIFICATION), result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and "expired on" in doc["message"]
    assert "--quick-set-expire" in doc["hint"]


def test_verify_command_warns_about_damaged_trusted_d_and_trusts_the_valid_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = testkeys.make_key(tmp_path / "gnupg")
    bundle = make_test_bundle(tmp_path, key)
    host = HostPaths(tmp_path / "host")  # the command's trusted.d lies under it
    host.trust_dir.parent.mkdir(parents=True)
    directory = _trust_dir(tmp_path, garbage_asc=b"\x99garbage").rename(host.trust_dir)
    (directory / "dir.asc").mkdir()
    argv = ["verify", str(bundle.path), "--trust", key.fingerprint]
    doc = CliRunner().invoke(main, [*argv, "--json"], obj=host)
    assert doc.exit_code == 0, doc.output
    warnings = json.loads(doc.stdout)["warnings"]  # stdout is one JSON document
    assert [Path(w.split(":", 1)[0]).name for w in warnings] == ["dir.asc", "garbage.asc"]
    text = CliRunner().invoke(main, argv, obj=host)
    assert text.exit_code == 0
    assert f"warning: {directory}/garbage.asc: skipped" in text.stderr
    # When nothing else is trusted, the refusal carries the warnings as evidence.
    untrusted = CliRunner().invoke(main, ["verify", str(bundle.path), "--json"], obj=host)
    assert untrusted.exit_code == int(ExitCode.USAGE), untrusted.output
    details = json.loads(untrusted.stdout)["details"]
    assert f"warning: {directory}/garbage.asc: skipped, not an OpenPGP public key file" in " ".join(
        details
    )


@pytest.mark.parametrize("command", ["verify", "install"])
def test_endless_stream_as_bundle_is_a_usage_error_at_once(command: str, tmp_path: Path) -> None:
    fifo = tmp_path / "bundle.tar.zst"
    os.mkfifo(fifo)
    for bundle in ("/dev/zero", str(fifo)):
        proc = subprocess.run(
            [sys.executable, "-m", "installer", command, bundle, "--trust", "A" * 40, "--json"],
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            capture_output=True,
            text=True,
            timeout=30,  # a hang fails the test
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert proc.returncode == int(ExitCode.USAGE), proc.stderr
        doc = json.loads(proc.stdout)
        assert "is not a regular file but a " in doc["message"]


@pytest.mark.timeout(60)
def test_split_part_that_is_a_fifo_is_named_not_read(tmp_path: Path) -> None:
    key = testkeys.make_key(tmp_path / "gnupg")
    bundle = make_test_bundle(
        tmp_path / "b", key, files={layout.IMAGES_ARCHIVE: os.urandom(200_000)}
    )
    split = split_test_bundle(bundle, key, tmp_path / "split", 64 * 1024)
    part = split.index.with_name("bundle.tar.zst.part002")
    part.unlink()
    os.mkfifo(part)
    err = _refusal(lambda: verify_bundle(split.index, [key.fingerprint]))
    assert "bundle.tar.zst.part002: not a regular file but a FIFO" in err.details


def test_scratch_errors_are_not_signature_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = testkeys.make_key(tmp_path / "gnupg")
    bundle = make_test_bundle(tmp_path, key)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-dir"))
    with pytest.raises(GpubundleError) as err:
        verify_bundle(bundle.path, [key.fingerprint])
    assert not isinstance(err.value, VerificationError)
    assert err.value.code == ExitCode.FAILURE
    assert f"cannot write in {tmp_path / 'no-such-dir'}" in err.value.message
    assert "TMPDIR" in err.value.hint
