"""The target's own python3.X and gpgv, carried as signed .debs for hosts without them.

No release's minbase has python3, and Debian 13's has no gpgv (apt 3 verifies with
sqv). The installer therefore carries the target distribution's own interpreter,
``python3.X-minimal`` and ``libpython3.X-stdlib``, with ``gpgv``, and every package
of their closure that is not ``Priority: required`` (those are on every host, libc6
first). The closure is resolved as apt would from an empty status (the verification
image does the same); ``runtime_python`` picks the interpreter: the target's stock
python3, or 3.8 where the stock one is older (Ubuntu 18.04's 3.6: bionic-updates
carries python3.8). On the host, ``bundler/selfrun.sh`` verifies these .debs with
the key the user trusts before ``dpkg-deb -x`` unpacks them into a temporary
directory (docs/bundle-format.md): nothing is installed.

``runtime_tar`` packs them as one uncompressed tar (the host may have no zstd),
byte for byte the same for the same .debs.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from bundler.index import PackageRecord

OLDEST_PYTHON = (3, 8)  # the installer's floor (installer/compat.py)
CARRIED_GPGV = "gpgv"


def version_tuple(python: str) -> tuple[int, int]:
    major, minor = python.split(".")[:2]
    return int(major), int(minor)


def runtime_python(stock: str) -> str:
    """The python3.X the installer carries: the stock one, or 3.8 where that is older."""
    if version_tuple(stock) >= OLDEST_PYTHON:
        return ".".join(stock.split(".")[:2])
    return ".".join(map(str, OLDEST_PYTHON))


def runtime_roots(python: str) -> tuple[str, ...]:
    """The packages to resolve: the interpreter, its standard library, and gpgv."""
    return (f"python{python}-minimal", f"libpython{python}-stdlib", CARRIED_GPGV)


def carried(packages: Iterable[PackageRecord]) -> list[PackageRecord]:
    """The resolved packages a minbase host may lack: all but Priority: required/Essential."""
    return sorted(
        (p for p in packages if p.priority != "required" and not p.essential),
        key=lambda p: p.name,
    )


def runtime_tar(debs: Sequence[tuple[str, Path]], mtime: int) -> bytes:
    """An uncompressed ustar of ``(name, path)`` .debs, sorted, with fixed owners and modes."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, path in sorted(debs):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = path.stat().st_size, mtime, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    return out.getvalue()
