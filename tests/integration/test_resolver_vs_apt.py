"""apt is the oracle: resolve() must pick exactly the (name, version) set apt-get would.

Real indices (verified against the archives' keys), NVIDIA's real Packages,
from an empty dpkg status and from a debootstrap minbase status, with and
without docker.io as a second root, and with the toolkit family pinned. The apt
that decides is each release's own (apt 1.6 on Ubuntu 18.04 … apt 3.x on Debian 13
and Ubuntu 26.04), run inside that release's minbase root. For arm64 that is the
same apt (its amd64 build, natively) told ``APT::Architecture=arm64``: the arm64 build
under qemu-user decides the same but takes about 70 s a case, too slow for CI; the
minbase status is the arm64 root's own.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
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
from tests.support.roots import DISTROS, debootstrap_root, minbase_status

pytestmark = [
    pytest.mark.integration,
    pytest.mark.archive,
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("chroot") is None, reason="apt runs in its own root"),
]

# Every release, amd64; arm64 where the archive reachable here carries it.
TARGETS = [(d, a) for d, spec in DISTROS.items() for a in spec.arches]
FAMILY_PIN = "1.17.8-1"  # --toolkit-version: the four toolkit packages held at one version
ROOTS = {
    "toolkit": ("nvidia-container-toolkit",),
    "with-docker": ("nvidia-container-toolkit", "docker.io"),
}


@cache
def _files(distro: str, arch: str) -> tuple[IndexFile, ...]:
    return (*distro_index_files(distro, arch), nvidia_index_file(arch))


@cache
def _indices(distro: str, arch: str) -> tuple[PackageIndex, ...]:
    return tuple(f.load(arch) for f in _files(distro, arch))


RootOf = Callable[[str], Path]


@pytest.fixture(scope="module")
def release_root(tmp_path_factory: pytest.TempPathFactory) -> RootOf:
    """The release's own amd64 minbase root (unpacked once per module), where its apt runs."""
    unpacked: dict[str, Path] = {}

    def get(distro: str) -> Path:
        if distro not in unpacked:
            dest = tmp_path_factory.mktemp(distro) / "root"
            unpacked[distro] = debootstrap_root(distro, dest=dest)
        return unpacked[distro]

    return get


@pytest.mark.parametrize("pin", ["latest", FAMILY_PIN])
@pytest.mark.parametrize("status_of", ["empty", "minbase"])
@pytest.mark.parametrize("roots", ROOTS.values(), ids=ROOTS.keys())
@pytest.mark.parametrize(("distro", "arch"), TARGETS)
def test_resolution_is_apts(
    release_root: RootOf, distro: str, arch: str, roots: tuple[str, ...], status_of: str, pin: str
) -> None:
    status = minbase_status(distro, arch=arch) if status_of == "minbase" else None
    pins = toolkit_family_pins(pin) if pin != "latest" else {}
    # build resolves its roots under the family pins; apt is told NAME=VERSION for all four
    apt_roots = [f"{n}={v}" for n, v in pins.items()] + [r for r in roots if r not in pins]
    files = _files(distro, arch)
    root = release_root(distro)
    expected = apt_install_set(files, apt_roots, status=status, arch=arch, chroot=root)
    installed = installed_records(read_status(status, arch)) if status else {}
    indices = _indices(distro, arch)
    got = resolve(indices, roots, arch=arch, installed=installed, pins=pins or None).pairs()
    if got != expected:
        lines = [f"  apt only:  {p}" for p in sorted(expected - got)]
        lines += [f"  ours only: {p}" for p in sorted(got - expected)]
        pytest.fail(f"{distro} {arch} {roots} differs from apt:\n" + "\n".join(lines))
    assert set(roots) <= {name for name, _ in got}
    if pins:
        assert {(name, pins[name]) for name in pins} <= got
