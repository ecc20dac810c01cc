"""Is a Docker daemon there to test against? Skip locally, fail in CI, say why either way."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import urllib.request

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
