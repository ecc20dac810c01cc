"""Throwaway GnuPG homes with signing keys, for tests only.

Besides plain keys (``make_key``), the key states the verifier must judge, all made
with the real gpg: a key created at another time (``created=``, with gpg's
``--faked-system-time``) and with an expiry (``expires=``), its expiry changed
(``set_expiry``: ``gpg --quick-set-expire``), its revocation (``revoke``: gpg's own
revocation certificate, imported), and detached signatures made at a given time
(``sign_detached``).
"""

from __future__ import annotations

import atexit
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bundler.signing import Signer


@dataclass(frozen=True)
class TestKey:
    gnupghome: Path
    fingerprint: str
    public_armored: bytes


def make_key(
    home: Path,
    name: str = "gpubundle test",
    algo: str = "ed25519",
    *,
    created: int | None = None,
    expires: str = "never",
) -> TestKey:
    """Create a GnuPG home under ``home`` holding one passphrase-less signing key.

    ``created`` (seconds since the epoch) backdates or postdates the key;
    ``expires`` is gpg's expiry argument ("never", "2d", "1y", …), counted from then.
    """
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    # gpg starts an agent per home; stop ours when the test process ends.
    atexit.register(
        subprocess.run,
        ["gpgconf", "--homedir", str(home), "--kill", "all"],
        check=False,
        capture_output=True,
    )
    env = {**os.environ, "GNUPGHOME": str(home), "LANG": "C.UTF-8"}
    uid = f"{name} <test@gpubundle.invalid>"
    faked = ["--faked-system-time", f"{created}!"] if created is not None else []
    subprocess.run(
        [
            "gpg",
            "--batch",
            *faked,
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            algo,
            "sign",
            expires,
        ],
        env=env,
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )
    listing = subprocess.run(
        ["gpg", "--batch", "--with-colons", "--list-secret-keys", uid],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    fingerprint = next(
        line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
    )
    # The public key exactly as a bundle carries it (keys/signer.asc, a split index's
    # signer_key): the Signer's own export-minimal. Not a plain `gpg --export`: gpg 2.4
    # writes the self-signature's EdDSA values back at their full 32 bytes when it rebuilds
    # the packet (export-minimal does), but stores them with a leading zero byte stripped,
    # so for about one key in a hundred the two exports differ by one byte in length
    # (gpg 2.2 strips it in both).
    public = Signer(fingerprint, home).public_key()
    return TestKey(home, fingerprint, public)


def _gpg(key: TestKey, *args: str, at: int | None = None) -> bytes:
    faked = ["--faked-system-time", f"{at}!"] if at is not None else []
    return subprocess.run(
        ["gpg", "--homedir", str(key.gnupghome), "--batch", *faked, *args],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    ).stdout


def export_public(key: TestKey) -> bytes:
    """The key's armoured public key as its home holds it now."""
    return _gpg(key, "--armor", "--export", key.fingerprint)


def set_expiry(key: TestKey, expires: str) -> bytes:
    """Change the key's expiry (``gpg --quick-set-expire``); the updated public key."""
    _gpg(key, "--pinentry-mode", "loopback", "--passphrase", "", "--quick-set-expire",
         key.fingerprint, expires)  # fmt: skip
    return export_public(key)


def revoke(key: TestKey) -> bytes:
    """Revoke the key with the certificate gpg made with it; the revoked public key."""
    cert = key.gnupghome / "openpgp-revocs.d" / f"{key.fingerprint}.rev"
    # gpg prefixes the armour with ':' so that the certificate is not imported by accident.
    armored = cert.read_text().replace(
        ":-----BEGIN PGP PUBLIC KEY BLOCK", "-----BEGIN PGP PUBLIC KEY BLOCK"
    )
    subprocess.run(
        ["gpg", "--homedir", str(key.gnupghome), "--batch", "--import"],
        input=armored.encode(),
        check=True,
        capture_output=True,
    )
    return export_public(key)


def sign_detached(key: TestKey, data: Path, at: int) -> Path:
    """An armoured detached signature over ``data`` made at time ``at``, as ``data``.asc."""
    sig = data.with_name(data.name + ".asc")
    _gpg(key, "--yes", "--armor", "--detach-sign", "--output", str(sig), str(data), at=at)
    return sig
