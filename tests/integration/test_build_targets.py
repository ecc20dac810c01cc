"""``gpubundle build`` for every target whose installer check passes, against the real
archive and the stand-in NVIDIA repository, for the release's own minbase root.

The toolkit with ``--with-docker``: the bundle verifies, holds the toolkit family at
one version and the release's own docker.io, containerd and runc, nothing the minbase
root has, and the installer for the release's stock python3. arm64 too wherever the
archive reachable here carries it (Debian; Ubuntu from 26.04 on), against an arm64
stand-in built from NVIDIA's real arm64 index.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bundler.targets import list_targets, load_target
from tests.support import testkeys
from tests.support.httpserver import serve_directory
from tests.support.installbundles import build_target_bundle
from tests.support.rootfiles import FAMILY
from tests.support.roots import DISTROS, minbase_status
from tests.support.standin_nvidia import build_standin_repo
from tests.support.standin_served import ServedStandin

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.archive]

# What build refuses (bundler/targets.py INSTALLER_MIN_PYTHON) is left out here.
BUILDABLE = [t for t in list_targets() if load_target(t).installer_support()[0]]
ARM64 = [t for t in BUILDABLE if "arm64" in DISTROS[t].arches]


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("signer"), name="gpubundle targets")


@pytest.fixture(scope="module")
def arm64_standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, bytes]]:
    """An arm64 stand-in NVIDIA repository on loopback: its flat URL and its key."""
    signer = testkeys.make_key(tmp_path_factory.mktemp("standin"), name="stand-in arm64")
    repo = build_standin_repo(tmp_path_factory.mktemp("arm64"), signer, arch="arm64")
    with serve_directory(repo.root) as base_url:
        yield repo.flat_url(base_url), signer.public_armored


@pytest.mark.parametrize("distro", BUILDABLE)
def test_build_for_the_minbase_root(
    distro: str, tmp_path: Path, key: testkeys.TestKey, standin_repo: ServedStandin
) -> None:
    _build_and_check(distro, "amd64", tmp_path, key, standin_repo.url, standin_repo.armored_key)


@pytest.mark.parametrize("distro", ARM64)
def test_build_for_the_arm64_minbase_root(
    distro: str, tmp_path: Path, key: testkeys.TestKey, arm64_standin: tuple[str, bytes]
) -> None:
    _build_and_check(distro, "arm64", tmp_path, key, *arm64_standin)


def _build_and_check(
    distro: str, arch: str, tmp_path: Path, key: testkeys.TestKey, url: str, nvidia_key: bytes
) -> None:
    status = minbase_status(distro, arch=arch)
    bundle = build_target_bundle(
        tmp_path / "out", key, url, nvidia_key, distro=distro, target_status=status,
        extra=("--with-docker", "--arch", arch),
    )  # fmt: skip
    manifest = bundle.manifest
    assert (manifest.distro, manifest.arch) == (distro, arch)
    assert {p.architecture for p in manifest.packages} <= {arch, "all"}
    assert manifest.python == load_target(distro).python
    packages = bundle.packages
    assert {packages[name] for name in FAMILY} == {manifest.toolkit_version}
    assert {"docker.io", "containerd", "runc"} <= set(packages)
    minbase = {
        line.split(": ", 1)[1] for line in status.read_text().splitlines()
        if line.startswith("Package: ")
    }  # fmt: skip
    assert not set(packages) & minbase
    assert bundle.installer is not None and bundle.installer.stat().st_size > 100_000
