"""Throwaway GnuPG homes with signing keys, for tests only."""

from __future__ import annotations

import atexit
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TestKey:
    gnupghome: Path
    fingerprint: str
    public_armored: bytes


def make_key(home: Path, name: str = "gpubundle test", algo: str = "ed25519") -> TestKey:
    """Create a GnuPG home under ``home`` holding one passphrase-less signing key."""
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
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            algo,
            "sign",
            "never",
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
    public = subprocess.run(
        ["gpg", "--batch", "--armor", "--export", fingerprint],
        env=env,
        check=True,
        capture_output=True,
    ).stdout
    return TestKey(home, fingerprint, public)
