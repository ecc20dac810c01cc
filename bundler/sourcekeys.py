"""The keys that must sign a source's metadata: loaded, and refused unless they are the pinned ones.

A source's key comes from a file shipped in manifests/keys/ or from a URL
fetched at build time (NVIDIA's). Either way the key material must hold every
fingerprint the manifest pins, so a replaced key file or a key server serving
another key stops the build here. ``--key ID=FILE`` adds the primary keys of a
file the user chose to trust.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import requests

from bundler.http import fetch_bytes
from bundler.targets import SourceSpec
from installer.errors import GpubundleError, VerificationError
from installer.openpgp import normalize_fingerprint
from installer.runner import run


@dataclass(frozen=True)
class SourceKeys:
    material: tuple[bytes, ...]  # key files, armoured or binary, handed to gpgv
    trusted: tuple[str, ...]  # primary fingerprints a signature must come from


def show_keys_argv(homedir: Path, key_file: Path) -> list[str]:
    return [
        "gpg",
        "--homedir",
        str(homedir),
        "--batch",
        "--with-colons",
        "--show-keys",
        str(key_file),
    ]


def parse_primary_fingerprints(colons: str) -> list[str]:
    """Primary-key fingerprints from ``gpg --with-colons`` output: the first fpr after each pub."""
    found: list[str] = []
    after_pub = False
    for line in colons.splitlines():
        kind = line.split(":", 1)[0]
        if kind == "pub":
            after_pub = True
        elif kind == "fpr" and after_pub:
            found.append(line.split(":")[9].upper())
            after_pub = False
    return found


def primary_fingerprints(key_bytes: bytes) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="gpubundle-keys-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir(mode=0o700)
        key_file = Path(tmp) / "key"
        key_file.write_bytes(key_bytes)
        proc = run(
            show_keys_argv(home, key_file),
            check=False,
            hint="gpg comes with the gnupg package; install it on the build machine",
        )
    return parse_primary_fingerprints(proc.stdout.decode(errors="replace"))


def load_source_keys(session: requests.Session, source: SourceSpec) -> SourceKeys:
    pinned = [normalize_fingerprint(f) for f in source.key.fingerprints]
    if source.key.file is not None:
        where = str(source.key.file)
        material = _read(source.key.file, f"key file of source {source.id}")
    else:
        where = source.key.url
        material = fetch_bytes(session, source.key.url)
    found = primary_fingerprints(material)
    missing = [f for f in pinned if f not in found]
    if missing:
        raise VerificationError(
            f"the key of source {source.id} from {where} is not the pinned key",
            hint="the published key changed or the download was altered; check the new key out "
            f"of band, then trust it explicitly with --key {source.id}=FILE",
            details=[f"expected: {', '.join(pinned)}", f"found:    {', '.join(found) or 'no key'}"],
        )
    extra_material: list[bytes] = []
    extra_trusted: list[str] = []
    for path in source.key.extra_files:
        data = _read(path, f"--key {source.id}={path}")
        fingerprints = primary_fingerprints(data)
        if not fingerprints:
            raise GpubundleError(
                f"--key {source.id}={path} holds no OpenPGP public key",
                hint="export the key with `gpg --export --armor FINGERPRINT > FILE`",
            )
        extra_material.append(data)
        extra_trusted += [f for f in fingerprints if f not in pinned + extra_trusted]
    return SourceKeys((material, *extra_material), (*pinned, *extra_trusted))


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise GpubundleError(
            f"cannot read the {what}: {exc}",
            hint="reinstall gpubundle, or give a readable key file",
        ) from exc
