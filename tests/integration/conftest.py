"""Session fixtures for integration tests: the stand-in NVIDIA repository, test images, Docker.

See docs/test-world.md. Everything expensive is cached under ``.cache/`` and keyed by
its inputs, so reruns (and other engineers' sessions) reuse it.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from installer.openpgp import dearmor
from tests.conftest import CACHE_DIR
from tests.support import hostguard, standin_nvidia
from tests.support.docker_env import require_docker, require_registry
from tests.support.hostsnapshot import HostSnapshot
from tests.support.httpserver import serving
from tests.support.installbundles import (
    HOST_DPKG_STATUS,
    HostBundle,
    build_target_bundle,
    host_distro,
)
from tests.support.registry import CUDA_STANDIN, ensure_test_images
from tests.support.standin_nvidia import StandinRepo, build_standin_repo
from tests.support.standin_served import ROOT_PYTHONS, ServedStandin
from tests.support.testkeys import TestKey, make_key

STANDIN_CACHE = CACHE_DIR / "standin"


def _inputs_digest(arch: str = "amd64") -> str:
    """Key of the cached repository: the builder, the stand-in programs and the fixture."""
    digest = hashlib.sha256()
    sources = sorted(standin_nvidia.STANDIN_BIN.iterdir())
    fixture = standin_nvidia.fixture_packages(arch)
    for path in [Path(standin_nvidia.__file__), fixture, *sources]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _load_key(home: Path) -> TestKey:
    fingerprint = (home / "fingerprint").read_text().strip()
    return TestKey(home, fingerprint, (home / "public.asc").read_bytes())


def cached_standin_repo(arch: str = "amd64") -> StandinRepo:
    """Build (once per input digest, under a lock) or reuse the stand-in for ``arch``: NVIDIA's
    real index of that architecture (arm64: ../shared/fixtures/nvidia/stable/deb/arm64)."""
    name = standin_nvidia.RECIPE if arch == "amd64" else f"{standin_nvidia.RECIPE}-{arch}"
    where = STANDIN_CACHE / f"{name}-{_inputs_digest(arch)}"
    where.mkdir(parents=True, exist_ok=True)
    with (where / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        home = where / "gnupg"
        if not (home / "public.asc").exists():
            key = make_key(home, name="gpubundle stand-in NVIDIA repo")
            (home / "fingerprint").write_text(key.fingerprint + "\n")
            (home / "public.asc").write_bytes(key.public_armored)
        key = _load_key(home)
        if not (where / "complete").exists():
            build_standin_repo(where / "repo", key, arch=arch)
            (where / "complete").write_text("built\n")
    return _reload(where, key, arch)


def _reload(where: Path, key: TestKey, arch: str) -> StandinRepo:
    """The StandinRepo description of an already built cache entry."""
    packages: list[standin_nvidia.StandinPackage] = []
    flat = where / "repo" / "stable" / "deb" / arch
    for stanza in standin_nvidia.read_stanzas(flat / "Packages"):
        packages.append(
            standin_nvidia.StandinPackage(
                stanza["Package"], stanza["Version"], stanza["Architecture"],
                stanza["Filename"], int(stanza["Size"]), stanza["SHA256"],
            )
        )  # fmt: skip
    return StandinRepo(where / "repo", arch, key, tuple(packages))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``docker`` skip without a daemon, and fail without one under CI=true."""
    if "docker" in item.keywords:
        require_docker()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _serve(root: Path) -> Iterator[str]:
    """A session-long loopback server of its own (httpserver's hooks are process-wide)."""
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    with serving(server) as port:
        yield f"http://127.0.0.1:{port}"


@contextmanager
def _served_standin(arch: str) -> Iterator[ServedStandin]:
    repo = cached_standin_repo(arch)
    keyring = repo.root.parent / "gnupg" / "standin-keyring.gpg"
    # Written whole, then renamed: another test worker may be reading the same file.
    partial = keyring.with_name(f".{keyring.name}.{os.getpid()}")
    partial.write_bytes(dearmor(repo.key.public_armored))
    partial.replace(keyring)
    with _serve(repo.root) as base_url:
        yield ServedStandin(repo, base_url, repo.flat_url(base_url), repo.key, keyring)


@pytest.fixture(scope="session")
def standin_repo() -> Iterator[ServedStandin]:
    """The stand-in NVIDIA flat repo (toolkit 1.20.1-1 and 1.17.8-1), served on loopback."""
    with _served_standin("amd64") as served:
        yield served


@pytest.fixture(scope="session")
def standin_repo_arm64() -> Iterator[ServedStandin]:
    """The same for arm64, built from NVIDIA's real arm64 index (every package ``arm64``)."""
    with _served_standin("arm64") as served:
        yield served


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A docker SDK client for the local daemon (skips, or fails under CI=true, without one)."""
    require_docker()
    import docker

    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture(scope="session")
def test_images() -> list[str]:
    """Refs of the test images in the loopback registry (built and pushed once)."""
    require_registry()
    return ensure_test_images()


# --- shared by the install, uninstall and zipapp tests ------------------------------


@pytest.fixture(scope="session")
def installer_pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One shipped installer for the whole run, for the test roots' stock python3."""
    from bundler.zipapp import build_installer

    dest = tmp_path_factory.mktemp("pyz") / "gpubundle-installer.pyz"
    return build_installer(dest, CACHE_DIR, list(ROOT_PYTHONS), "amd64")


@pytest.fixture(scope="module")
def host_bundle(
    tmp_path_factory: pytest.TempPathFactory, standin_repo: ServedStandin, test_images: list[str]
) -> HostBundle:
    """A real ``gpubundle build`` for this host (its dpkg status decides the contents)."""
    hostguard.require_host()
    tmp = tmp_path_factory.mktemp("host-bundle")
    key = make_key(tmp / "signer", name="gpubundle docker host test")
    assert CUDA_STANDIN.ref in test_images
    return build_target_bundle(
        tmp / "out", key, standin_repo.url, standin_repo.armored_key,
        distro=host_distro(), target_status=HOST_DPKG_STATUS, images=[CUDA_STANDIN.ref],
    )  # fmt: skip


@pytest.fixture
def docker_host(host_bundle: HostBundle) -> Iterator[HostSnapshot]:
    """The host before install: the user's daemon.json applied, the bundle's images absent."""
    hostguard.require_host()
    with hostguard.user_host([CUDA_STANDIN.ref]) as before:
        hostguard.remove_image(host_bundle.manifest.images[0].ref)  # the builtin image
        yield before
