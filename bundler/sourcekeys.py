"""The keys that must sign a source's metadata: loaded, and refused unless they are the pinned ones.

A source's key comes from a file shipped in manifests/keys/ or from a URL
fetched at build time (NVIDIA's). Either way the key material must hold every
fingerprint the manifest pins, so a replaced key file or a key server serving
another key stops the build here. ``--key ID=FILE`` replaces the pin with the
primary keys of a file the user chose to trust (bundler.targets.apply_overrides).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bundler.http import fetch_bytes
from bundler.httpclient import HttpClient
from bundler.targets import SourceSpec
from installer.errors import GpubundleError, VerificationError
from installer.openpgp import normalize_fingerprint, primary_fingerprints


@dataclass(frozen=True)
class SourceKeys:
    material: tuple[bytes, ...]  # key files, armoured or binary, handed to gpgv
    trusted: tuple[str, ...]  # primary fingerprints a signature must come from


def load_source_keys(session: HttpClient, source: SourceSpec) -> SourceKeys:
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
    return SourceKeys((material,), tuple(pinned))


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise GpubundleError(
            f"cannot read the {what}: {exc}",
            hint="reinstall gpubundle, or give a readable key file",
        ) from exc
