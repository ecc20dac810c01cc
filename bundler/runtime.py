"""The target's own python3.X and gpgv, carried as signed .debs for hosts without them.

No release's minbase has python3, and Debian 13's has no gpgv (apt 3 verifies with
sqv). The installer therefore carries the target distribution's own interpreter,
``python3.X-minimal`` and ``libpython3.X-stdlib``, with ``gpgv``, and every package
of their closure that a minbase host lacks: resolved as apt would on a host holding
``MINBASE_FLOOR`` and its closure (libc6 first), less anything ``Priority: required``
or Essential. ``runtime_python`` picks the interpreter: the target's stock
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
# What every host of every release has, with all it depends on: the core of a minbase
# (debootstrap's "required" set plus apt). Debian's index calls libc6 and zlib1g
# "optional", so Priority alone cannot say what a host lacks; this closure can.
MINBASE_FLOOR = (
    "apt", "base-files", "base-passwd", "bash", "coreutils", "dash", "debianutils",
    "diffutils", "dpkg", "findutils", "grep", "gzip", "libc-bin", "mawk", "perl-base",
    "sed", "tar", "util-linux",
)  # fmt: skip


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


def host_floor(floor: Iterable[PackageRecord]) -> dict[str, PackageRecord]:
    """What every host is taken to have when the runtime is resolved: the resolved
    ``MINBASE_FLOOR``, less gpgv and the libraries it depends on (libc6 stays): Debian 13's
    minbase has neither (apt 3 verifies with sqv), nor may a host upgraded to it."""
    records = {record.name: record for record in floor}
    gpgv = records.pop(CARRIED_GPGV, None)
    if gpgv is not None:
        for group in (*gpgv.pre_depends, *gpgv.depends):
            for relation in group:
                if relation.name != "libc6":
                    records.pop(relation.name, None)
    return records


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
