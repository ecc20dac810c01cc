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
import tempfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import pytest

from bundler.dpkgstatus import installed_records, read_status
from bundler.index import PackageIndex
from bundler.resolver import resolve, toolkit_family_pins
from tests.support.aptoracle import (
    AptRoot,
    IndexFile,
    distro_index_files,
    nvidia_index_file,
    parse_simulation,
    prepare_apt_root,
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


AptOf = Callable[[str, str, Path | None], AptRoot]


@pytest.fixture(scope="module")
def release_apt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AptOf]:
    """The release's own apt in its amd64 minbase root (unpacked once per module), its
    lists laid out once per (release, arch, status) and kept while cases with the same
    ones follow each other, so apt's cache is built once for them."""
    unpacked: dict[str, Path] = {}
    current: dict[tuple[str, str, Path | None], AptRoot] = {}

    def get(distro: str, arch: str, status: Path | None) -> AptRoot:
        if distro not in unpacked:
            dest = tmp_path_factory.mktemp(distro) / "root"
            unpacked[distro] = debootstrap_root(distro, dest=dest)
        key = (distro, arch, status)
        if key not in current:
            for old in current.values():
                shutil.rmtree(old.root)
            current.clear()
            root = unpacked[distro]
            where = Path(tempfile.mkdtemp(prefix="aptoracle-", dir=root / "tmp"))
            files = _files(distro, arch)
            current[key] = prepare_apt_root(files, where, status=status, arch=arch, chroot=root)
        return current[key]

    yield get
    for root in unpacked.values():
        shutil.rmtree(root)


@pytest.mark.parametrize("pin", ["latest", FAMILY_PIN])
@pytest.mark.parametrize("roots", ROOTS.values(), ids=ROOTS.keys())
@pytest.mark.parametrize("status_of", ["empty", "minbase"])
@pytest.mark.parametrize(("distro", "arch"), TARGETS)
def test_resolution_is_apts(
    release_apt: AptOf, distro: str, arch: str, status_of: str, roots: tuple[str, ...], pin: str
) -> None:
    status = minbase_status(distro, arch=arch) if status_of == "minbase" else None
    pins = toolkit_family_pins(pin) if pin != "latest" else {}
    # build resolves its roots under the family pins; apt is told NAME=VERSION for all four
    apt_roots = [f"{n}={v}" for n, v in pins.items()] + [r for r in roots if r not in pins]
    apt = release_apt(distro, arch, status)
    expected = parse_simulation(apt.simulate_install(apt_roots))
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
