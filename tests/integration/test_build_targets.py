"""``gpubundle build`` for every target whose installer check passes, against the real
archive and the stand-in NVIDIA repository, for the release's own minbase root.

The toolkit with ``--with-docker``: the bundle verifies, holds the toolkit family at
one version and the release's own docker.io, containerd and runc, nothing the minbase
root has, and the installer for the release's stock python3. arm64 too wherever the
archive reachable here carries it (Debian; Ubuntu from 26.04 on), against an arm64
stand-in built from NVIDIA's real arm64 index.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest

from bundler.http import make_session
from bundler.repo import RepoClient
from bundler.targets import list_targets, load_target
from installer.debversion import compare
from tests.conftest import CACHE_DIR
from tests.support import testkeys
from tests.support.aptoracle import IndexFile, apt_install_set
from tests.support.httpserver import serve_directory
from tests.support.installbundles import build_target_bundle, gpubundle
from tests.support.rootfiles import FAMILY
from tests.support.roots import DISTROS, debootstrap_root, minbase_status
from tests.support.standin_nvidia import sign_inrelease
from tests.support.standin_served import ServedStandin

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.archive]


# Every target builds: hosts whose python3 is missing or older than 3.8 get a carried one.
BUILDABLE = list_targets()
ARM64 = [t for t in BUILDABLE if "arm64" in DISTROS[t].arches]


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("signer"), name="gpubundle targets")


@pytest.mark.parametrize("distro", BUILDABLE)
def test_build_for_the_minbase_root(
    distro: str, tmp_path: Path, key: testkeys.TestKey, standin_repo: ServedStandin
) -> None:
    _build_and_check(distro, "amd64", tmp_path, key, standin_repo.url, standin_repo.armored_key)


@pytest.mark.parametrize("distro", ARM64)
def test_build_for_the_arm64_minbase_root(
    distro: str, tmp_path: Path, key: testkeys.TestKey, standin_repo_arm64: ServedStandin
) -> None:
    arm64 = standin_repo_arm64
    _build_and_check(distro, "arm64", tmp_path, key, arm64.url, arm64.armored_key)


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
    # What the root has is bundled only where the bundle needs a newer version of it (as
    # apt upgrades it: bionic's and focal's minbase libseccomp2 is older than runc needs).
    minbase = {}
    for record in status.read_text().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in record.splitlines() if ": " in line and line[0] != " "
        )
        if "Package" in fields and "Version" in fields:
            minbase[fields["Package"]] = fields["Version"]
    assert "libc6" in minbase  # the status was read
    not_newer = [n for n in set(packages) & set(minbase) if compare(packages[n], minbase[n]) <= 0]
    assert not not_newer, sorted(not_newer)
    assert bundle.installer is not None and bundle.installer.stat().st_size > 100_000


# Ubuntu's arm64 is on ports.ubuntu.com, unreachable here. A loopback "ports mirror"
# stands in for it, re-signed by a test key (--key): resolute's release pocket carries
# the real arm64 indices (archive.ubuntu.com serves that pocket's arm64 index, checked
# against Ubuntu's signed Release here), -updates and -security are empty.
UBUNTU_ARCHIVE = "http://archive.ubuntu.com/ubuntu"
UBUNTU_SOURCES = ("ubuntu", "ubuntu-updates", "ubuntu-security")


def _signed_suite(
    mirror: Path, suite: str, indices: dict[str, bytes], key: testkeys.TestKey
) -> None:
    """dists/SUITE with a binary-arm64 Packages per component and a signed InRelease."""
    lines = []
    for component, data in indices.items():
        rel = f"{component}/binary-arm64/Packages"
        path = mirror / "dists" / suite / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)  # uncompressed only: xz of universe takes a minute
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {rel}")
    release = (
        f"Origin: Ubuntu\nLabel: Ubuntu\nSuite: {suite}\nCodename: resolute\n"
        f"Date: {formatdate(usegmt=True)}\nArchitectures: arm64\n"
        f"Components: {' '.join(indices)}\nSHA256:\n" + "\n".join(lines) + "\n"
    )
    sign_inrelease(release, key, mirror / "dists" / suite / "InRelease")


@pytest.fixture(scope="module")
def ports_mirror(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, testkeys.TestKey, Path]]:
    target = load_target("ubuntu26.04")
    real = dataclasses.replace(target.source("ubuntu"), url=UBUNTU_ARCHIVE, arch_urls=())
    fetched = RepoClient(make_session(), CACHE_DIR / "apt-indices").fetch(real, "arm64")
    signer = testkeys.make_key(tmp_path_factory.mktemp("ports-key"), name="ports mirror")
    mirror = tmp_path_factory.mktemp("ports")
    released = {
        c: f.read_bytes() for c, f in zip(real.components, fetched.packages_files, strict=True)
    }
    for source_id in UBUNTU_SOURCES:
        suite = target.source(source_id).suite
        empty = dict.fromkeys(real.components, b"")
        _signed_suite(mirror, suite, released if source_id == "ubuntu" else empty, signer)
    with serve_directory(mirror) as url:
        yield url, signer, mirror


def test_ubuntu_arm64_through_a_ports_mirror_plans_what_apt_installs(
    tmp_path: Path,
    ports_mirror: tuple[str, testkeys.TestKey, Path],
    standin_repo_arm64: ServedStandin,
) -> None:
    """``--arch arm64`` with ``--mirror``/``--key`` for the three Ubuntu sources: the
    dry-run plan is what Ubuntu 26.04's own apt installs for arm64 from the same indices."""
    url, signer, mirror = ports_mirror
    key_file = tmp_path / "ports.asc"
    key_file.write_bytes(signer.public_armored)
    nvidia_key = tmp_path / "nvidia.asc"
    nvidia_key.write_bytes(standin_repo_arm64.armored_key)
    args = ["build", "--distro", "ubuntu26.04", "--arch", "arm64", "--with-docker",
            "--mirror", f"nvidia={standin_repo_arm64.url}", "--key", f"nvidia={nvidia_key}",
            "--cache-dir", str(tmp_path / "cache"), "--no-images", "--dry-run", "--json"]  # fmt: skip
    for source_id in UBUNTU_SOURCES:
        args += ["--mirror", f"{source_id}={url}", "--key", f"{source_id}={key_file}"]
    proc = gpubundle(*args)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    planned = {(p["name"], p["version"]) for p in plan["packages"]}
    assert {p["architecture"] for p in plan["packages"]} <= {"arm64", "all"}
    assert {"nvidia-container-toolkit", "docker.io", "containerd", "runc"} <= dict(planned).keys()

    suite = load_target("ubuntu26.04").source("ubuntu").suite
    files = [
        IndexFile(f"{suite}/{c}", url, f"deb [trusted=yes arch=arm64] {url} {suite} {c}", path)
        for c in ("main", "universe")
        for path in [mirror / "dists" / suite / c / "binary-arm64" / "Packages"]
    ]
    nvidia_line = f"deb [trusted=yes arch=arm64] {standin_repo_arm64.url} /"
    nvidia_packages = standin_repo_arm64.repo.flat_dir / "Packages"
    files.append(IndexFile("nvidia", standin_repo_arm64.url, nvidia_line, nvidia_packages))
    root = debootstrap_root("ubuntu26.04", dest=tmp_path / "root")
    roots = ["nvidia-container-toolkit", "docker.io"]
    assert planned == apt_install_set(files, roots, arch="arm64", chroot=root)
