"""Is a Docker daemon there to test against? Skip locally, fail in CI, say why either way.

Also which image store it keeps images in, and so which ``Id`` ``docker image inspect``
shows for an image loaded from a ``docker load`` archive (``loaded_image_id``): the
classic store (graph drivers: Docker up to 28 by default, Debian 12's 20.10) names an
image by its config's digest; the containerd image store (Docker 29's default, as
Ubuntu 24.04 installs it) by the digest of the manifest (or index) that the archive's
OCI ``index.json`` points at.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import urllib.request
from pathlib import Path

import pytest

START_HINT = "start it with: sudo bash scripts/services.sh start"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@functools.cache
def docker_problem() -> str | None:
    """Why Docker cannot be used here, or None when ``docker info`` answers."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed (apt-get install docker.io)"
    try:
        proc = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, text=True, timeout=20,
                              stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"dockerd did not answer `docker info` within 20 s; {START_HINT}"
    if proc.returncode != 0:
        reason = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return f"dockerd is not running ({reason[0]}); {START_HINT}"
    return None


def docker_available() -> bool:
    return docker_problem() is None


@functools.cache
def registry_problem(url: str = "http://127.0.0.1:5000/v2/") -> str | None:
    """Why the loopback registry cannot be used, or None when it answers."""
    try:
        with urllib.request.urlopen(url, timeout=5):
            return None
    except OSError as exc:
        return f"the local registry at {url} does not answer ({exc}); {START_HINT}"


def _skip_or_fail(problem: str | None) -> None:
    if problem is None:
        return
    if in_ci():
        pytest.fail(f"CI=true but {problem}", pytrace=False)
    pytest.skip(problem)


def require_docker() -> None:
    """Skip the calling test when Docker is absent; under CI=true fail instead."""
    _skip_or_fail(docker_problem())


def require_registry() -> None:
    """Like ``require_docker``, for the registry that ``scripts/services.sh`` runs."""
    _skip_or_fail(docker_problem() or registry_problem())


@functools.cache
def containerd_image_store() -> bool:
    """dockerd keeps its images in containerd (``docker info``: the storage driver's
    ``driver-type`` is a containerd snapshotter)."""
    proc = subprocess.run(["docker", "info", "--format", "{{json .DriverStatus}}"],
                          capture_output=True, text=True, timeout=20, check=True,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    status = json.loads(proc.stdout) or []
    return any(key == "driver-type" and "containerd" in value for key, value in status)


def archive_ids(archive: Path) -> tuple[str, str]:
    """(config digest, manifest digest) of the one image of a ``docker load`` archive, as
    it records them: ``manifest.json``'s ``Config`` and ``index.json``'s one manifest, each
    checked against the sha256 of the blob it names."""
    with tarfile.open(archive) as tar:

        def member(name: str) -> bytes:
            handle = tar.extractfile(name)
            assert handle is not None, name
            return handle.read()

        [legacy] = json.loads(member("manifest.json"))
        [descriptor] = json.loads(member("index.json"))["manifests"]
        manifest_digest = descriptor["digest"]
        manifest = member(f"blobs/sha256/{manifest_digest.removeprefix('sha256:')}")
        config_digest = json.loads(manifest)["config"]["digest"]
        assert legacy["Config"] == f"blobs/sha256/{config_digest.removeprefix('sha256:')}"
        for digest, blob in ((manifest_digest, manifest), (config_digest, None)):
            data = blob if blob is not None else member(legacy["Config"])
            assert digest == "sha256:" + hashlib.sha256(data).hexdigest(), digest
    return config_digest, manifest_digest


def loaded_image_id(archive: Path) -> str:
    """The ``Id`` this dockerd shows for the image of ``archive`` once loaded: its config
    digest in the classic store, its manifest digest in the containerd image store."""
    config_digest, manifest_digest = archive_ids(archive)
    return manifest_digest if containerd_image_store() else config_digest
