"""The bundle's flat apt repository: Packages, Release and InRelease signed by the bundle key.

Each ``Packages`` stanza is the .deb's own control file, read from the .deb
itself (not from the upstream index, so what apt sees is what dpkg will
install), plus ``Filename`` (``debs/<file>``, relative to the repository
directory), ``Size`` and ``SHA256``. Stanzas are sorted by name, then by
version. ``Release`` carries the date of ``source_date_epoch`` and no
``Valid-Until`` (an offline repository never expires); ``InRelease`` is the
same text clear-signed by the bundle key, so the installer points apt at it
with ``signed-by`` rather than ``trusted=yes``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Protocol

from debian.debfile import DebError, DebFile
from debian.debian_support import Version

from installer import layout
from installer.errors import GpubundleError
from installer.manifest import PackagePin

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_GENERATED = ("Filename", "Size", "SHA256", "MD5sum", "SHA1", "SHA512", "Description-md5")


class ClearSigner(Protocol):
    def clearsign(self, data: bytes, *, timestamp: int) -> bytes: ...


def release_date(epoch: int) -> str:
    """RFC 2822 date in UTC, as apt expects, independent of the locale."""
    t = time.gmtime(epoch)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} UTC"
    )


def control_fields(deb: Path) -> list[tuple[str, str]]:
    """The control fields of ``deb``, in the order its control file has them."""
    try:
        control = DebFile(str(deb)).debcontrol()
    except (DebError, OSError, EOFError, KeyError) as exc:
        raise GpubundleError(
            f"{deb.name} is not a readable .deb: {exc}",
            hint="delete it from the download cache and rebuild",
        ) from exc
    return [(key, str(value)) for key, value in control.items()]


def stanza(pin: PackagePin, deb: Path) -> str:
    """One ``Packages`` stanza for ``deb``, checked against its pin."""
    fields = [(k, v) for k, v in control_fields(deb) if k not in _GENERATED]
    found = {k: v for k, v in fields}
    stated = (found.get("Package"), found.get("Version"), found.get("Architecture"))
    if stated != (pin.name, pin.version, pin.architecture):
        raise GpubundleError(
            f"{deb.name} is {'_'.join(map(str, stated))}, expected "
            f"{pin.name}_{pin.version}_{pin.architecture}",
            hint="the download cache holds a wrong file; delete it and rebuild",
        )
    filename = f"debs/{PurePosixPath(pin.filename).name}"
    fields += [("Filename", filename), ("Size", str(pin.size)), ("SHA256", pin.sha256)]
    lines = []
    for key, value in fields:
        text = value.rstrip("\n")
        # Continuation lines keep their leading space; a value may start on the next line.
        lines.append(f"{key}:{text}" if text.startswith("\n") else f"{key}: {text}")
    return "\n".join(lines) + "\n"


def packages_index(debs: Sequence[tuple[PackagePin, Path]]) -> bytes:
    """The ``Packages`` file: stanzas sorted by name, then version, separated by blank lines."""
    ordered = sorted(debs, key=lambda item: (item[0].name, Version(item[0].version)))
    return "\n".join(stanza(pin, path) for pin, path in ordered).encode()


def release_file(packages: bytes, source_date_epoch: int, architectures: Sequence[str]) -> bytes:
    digest = hashlib.sha256(packages).hexdigest()
    lines = [
        "Origin: gpubundle",
        "Label: gpubundle",
        "Suite: gpubundle",
        "Codename: gpubundle",
        f"Date: {release_date(source_date_epoch)}",
        f"Architectures: {' '.join(sorted(set(architectures)))}",
        "Description: gpubundle offline repository",
        "SHA256:",
        f" {digest} {len(packages)} Packages",
    ]
    return ("\n".join(lines) + "\n").encode()


def repo_files(
    debs: Sequence[tuple[PackagePin, Path]], signer: ClearSigner, source_date_epoch: int
) -> dict[str, bytes]:
    """{bundle path: content} of the repository's metadata (the .debs themselves not included)."""
    packages = packages_index(debs)
    arches = [pin.architecture for pin, _ in debs if pin.architecture != "all"] or ["all"]
    release = release_file(packages, source_date_epoch, arches)
    return {
        layout.REPO_PACKAGES: packages,
        layout.REPO_RELEASE: release,
        layout.REPO_INRELEASE: signer.clearsign(release, timestamp=source_date_epoch),
    }
