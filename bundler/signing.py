"""Reproducible OpenPGP signatures made with the builder's own GnuPG key.

ed25519 and RSA (PKCS#1 v1.5) signatures are deterministic, so with the
signature's creation time pinned (``--faked-system-time EPOCH!``) the same
data and key give the same bytes on every run. The pinned time is the
bundle's ``source_date_epoch``, raised to the signing key's creation time
when the key is younger: a signature older than its key is refused by gpg
and gpgv ("time warp"), and the raise keeps the output a function of the
inputs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gnupg

from installer.errors import GpubundleError
from installer.openpgp import normalize_fingerprint

_CREATE_KEY_HINT = (
    "create a signing key with\n"
    '  gpg --quick-gen-key "gpubundle signing <you@example.org>" ed25519 sign never\n'
    "then pass its fingerprint (gpg --list-secret-keys --with-colons shows it) as "
    "--sign-key FINGERPRINT"
)


class Signer:
    """Signs with one secret key, named by its full fingerprint, from ``gnupghome``."""

    def __init__(self, fingerprint: str, gnupghome: Path | None = None) -> None:
        if not fingerprint.strip():
            raise GpubundleError(
                "no signing key given: a bundle is always signed, so the air-gapped host can "
                "check every byte against a key you trust",
                hint=_CREATE_KEY_HINT + " (or set GPUBUNDLE_SIGN_KEY)",
            )
        try:
            self.fingerprint = normalize_fingerprint(fingerprint)
        except ValueError as exc:
            raise GpubundleError(f"--sign-key: {exc}", hint=_CREATE_KEY_HINT) from exc
        try:
            self._gpg = gnupg.GPG(gnupghome=str(gnupghome) if gnupghome else None)
        except (OSError, ValueError) as exc:
            raise GpubundleError(
                f"cannot run gpg: {exc}", hint="install gnupg (apt-get install gnupg)"
            ) from exc
        self._gpg.encoding = "utf-8"
        self._key = self._find_secret_key(gnupghome)
        self._min_time = max(_creation_times(self._key))

    def _find_secret_key(self, gnupghome: Path | None) -> dict[str, Any]:
        for key in self._gpg.list_keys(secret=True):
            if key.get("fingerprint", "").upper() == self.fingerprint:
                return dict(key)
        where = str(gnupghome) if gnupghome else "the default GnuPG home (~/.gnupg or $GNUPGHOME)"
        raise GpubundleError(
            f"no secret key {self.fingerprint} in {where}",
            hint=_CREATE_KEY_HINT,
        )

    def signature_time(self, timestamp: int) -> int:
        """The creation time a signature made for ``timestamp`` carries."""
        return max(timestamp, self._min_time)

    def _sign(self, data: bytes, timestamp: int, *, detach: bool) -> bytes:
        when = self.signature_time(timestamp)
        # gpg freezes its clock at --faked-system-time T! unless T is the current second: then
        # it runs on the real clock, and a second that ticks over while it signs changes the
        # signature (seen with a key created moments ago). Wait for that second to pass.
        while int(time.time()) == when:
            time.sleep(0.05)
        result = self._gpg.sign(
            data,
            keyid=self.fingerprint,
            detach=detach,
            clearsign=not detach,
            extra_args=[
                "--faked-system-time",
                f"{when}!",
                "--digest-algo",
                "SHA512",
                "--no-emit-version",
                "--no-comments",
            ],
        )
        signed = bytes(result.data or b"")
        if not signed or not getattr(result, "fingerprint", None):
            raise GpubundleError(
                f"gpg could not sign with key {self.fingerprint}",
                hint="check that the key is not expired or revoked and has no passphrase "
                "(or that gpg-agent has it unlocked)",
                details=[line for line in str(result.stderr).splitlines() if line][-10:],
            )
        return signed

    def sign_detached(self, data: bytes, *, timestamp: int) -> bytes:
        """An ASCII-armoured detached signature over ``data``."""
        return self._sign(data, timestamp, detach=True)

    def clearsign(self, data: bytes, *, timestamp: int) -> bytes:
        """``data`` clear-signed (as an InRelease file is)."""
        return self._sign(data, timestamp, detach=False)

    def public_key(self) -> bytes:
        """The armoured public key, minimal: the key, its user IDs and self-signatures only."""
        exported = self._gpg.export_keys(self.fingerprint, minimal=True)
        if not exported:
            raise GpubundleError(
                f"gpg could not export public key {self.fingerprint}",
                hint="run gpg --export --armor FINGERPRINT to see why",
            )
        return exported.encode() if isinstance(exported, str) else bytes(exported)


def _creation_times(key: dict[str, Any]) -> list[int]:
    """Creation times of the primary key and of its signing-capable subkeys."""
    times = [int(key["date"])]
    for info in key.get("subkey_info", {}).values():
        if "s" in str(info.get("cap", "")):
            times.append(int(info["date"]))
    return times
