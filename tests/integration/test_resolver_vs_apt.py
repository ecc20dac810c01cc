"""apt is the oracle: resolve() must pick exactly the (name, version) set apt-get would.

Real indices (verified against the archives' keys), NVIDIA's real Packages,
from an empty dpkg status and from a debootstrap minbase status, with and
without docker.io as a second root.
"""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

import pytest

from bundler.dpkgstatus import installed_records, read_status
from bundler.index import PackageIndex
from bundler.resolver import resolve, toolkit_family_pins
from tests.support.aptoracle import (
    IndexFile,
    apt_install_set,
    distro_index_files,
    nvidia_index_file,
)
from tests.support.roots import minbase_status

pytestmark = [
    pytest.mark.integration,
    pytest.mark.archive,
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("apt-get") is None, reason="apt-get is the oracle"),
]

DISTROS = ("ubuntu22.04", "ubuntu24.04", "debian12")
ROOTS = {
    "toolkit": ("nvidia-container-toolkit",),
    "with-docker": ("nvidia-container-toolkit", "docker.io"),
}


@cache
def _files(distro: str) -> tuple[IndexFile, ...]:
    return (*distro_index_files(distro), nvidia_index_file())


@cache
def _indices(distro: str) -> tuple[PackageIndex, ...]:
    return tuple(f.load() for f in _files(distro))


def _compare(
    distro: str, roots: tuple[str, ...], status: Path | None, pins: dict[str, str] | None = None
) -> None:
    apt_roots = [f"{r}={pins[r]}" if pins and r in pins else r for r in roots]
    expected = apt_install_set(_files(distro), apt_roots, status=status)
    installed = installed_records(read_status(status, "amd64")) if status else {}
    got = resolve(_indices(distro), roots, arch="amd64", installed=installed, pins=pins).pairs()
    if got != expected:
        lines = [f"  apt only:  {p}" for p in sorted(expected - got)]
        lines += [f"  ours only: {p}" for p in sorted(got - expected)]
        pytest.fail(f"{distro} {roots} differs from apt:\n" + "\n".join(lines))
    assert set(roots) <= {name for name, _ in got}


@pytest.mark.parametrize("roots", ROOTS.values(), ids=ROOTS.keys())
@pytest.mark.parametrize("distro", DISTROS)
def test_empty_status(distro: str, roots: tuple[str, ...]) -> None:
    _compare(distro, roots, None)


@pytest.mark.parametrize("roots", ROOTS.values(), ids=ROOTS.keys())
@pytest.mark.parametrize("distro", DISTROS)
def test_minbase_status(distro: str, roots: tuple[str, ...]) -> None:
    _compare(distro, roots, minbase_status(distro))


@pytest.mark.parametrize("distro", DISTROS)
def test_family_pins(distro: str) -> None:
    pins = toolkit_family_pins("1.17.8-1")
    _compare(distro, tuple(pins), minbase_status(distro), pins)
