"""The guide's compose GPU service, brought up for real against this machine's dockerd.

Compose is Ubuntu 24.04's own docker-compose-v2 .deb (what `--with-compose` bundles for
that target), unpacked as a Docker CLI plugin into a private DOCKER_CONFIG; the image is
the builtin verification image built from noble's .debs. This machine has no GPU and no
NVIDIA runtime hook, so the service's `driver: nvidia` reservation must fail with Docker's
own "could not select device driver" and the installer's documented explanation. The GPU
host run (docs/field-report.md) shows the passing half.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from bundler.targets import load_target
from bundler.verifyimage import build_verification_image, deb_info, verify_image_roots
from installer import composeproof
from installer.runner import run
from tests.support.archivedebs import fetch_debs

pytestmark = [pytest.mark.integration, pytest.mark.archive, pytest.mark.docker]

DISTRO = "ubuntu24.04"
TAG = "gpubundle-test/verify-compose:ubuntu24.04-amd64"
HOST = ("GPU-ba793fbf-0ad7-3ef2-2606-91ae096064e1",)


@pytest.fixture(scope="module")
def compose_env(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """DOCKER_CONFIG with the archive's Compose v2 as the `docker compose` plugin."""
    debs = fetch_debs(DISTRO, ["docker-compose-v2"], cache_dir)
    [deb] = [d for d in debs if deb_info(d).package == "docker-compose-v2"]
    unpacked = tmp_path_factory.mktemp("compose-deb")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
    config = tmp_path_factory.mktemp("docker-config")
    plugins = config / "cli-plugins"
    plugins.mkdir()
    (plugins / "docker-compose").symlink_to(
        unpacked / "usr/libexec/docker/cli-plugins/docker-compose"
    )
    return {**os.environ, "DOCKER_CONFIG": str(config)}


@pytest.fixture(scope="module")
def image(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    debs = fetch_debs(DISTRO, verify_image_roots(load_target(DISTRO).python), cache_dir)
    archive = tmp_path_factory.mktemp("image") / "verify.tar"
    build_verification_image(debs, archive, tag=TAG, arch="amd64", source_date_epoch=1_700_000_000)
    run(["docker", "load", "-i", str(archive)], timeout=300)
    yield TAG
    run(["docker", "rmi", "-f", TAG], check=False)


def test_the_archives_compose_is_found_as_the_docker_plugin(compose_env: dict[str, str]) -> None:
    assert composeproof.find_compose(compose_env) == ["docker", "compose"]
    version = run(["docker", "compose", "version"], env=compose_env).stdout.decode()
    assert "Docker Compose version" in version, version


@pytest.mark.parametrize("probe", [True, False])
def test_the_guides_gpu_reservation_fails_with_the_documented_message_without_a_gpu(
    compose_env: dict[str, str], image: str, probe: bool
) -> None:
    result = composeproof.run_compose(
        ["docker", "compose"], image, "nvidia", HOST, probe=probe, env=compose_env
    )
    assert not result.ok and result.exit_code != 0
    # Docker 20.10 says one of two things: no "nvidia" driver (never had the hook), or the
    # driver it registered at its start cannot exec the hook (the toolkit removed since:
    # an earlier test's uninstall, without a restart). Each has its own explanation.
    if composeproof.NO_NVIDIA_DRIVER in result.output:
        assert result.error.startswith("Docker has no NVIDIA device driver"), result.error
    else:
        assert composeproof.HOOK_GONE in result.output, result.output
        assert "the toolkit was removed after Docker started" in result.error, result.error
    assert result.seen_uuids == ()
    failure = composeproof.compose_failure(result)
    assert "compose GPU service failed" in failure.message
    # `down` ran: nothing of the proof project is left behind.
    left = run(
        ["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={composeproof.PROJECT}",
         "--format", "{{.ID}}"],
    ).stdout.decode().split()  # fmt: skip
    assert left == []


def test_the_service_runs_the_image_as_written(
    compose_env: dict[str, str], image: str, tmp_path: Path
) -> None:
    """Without the reservation the same file shape runs: compose, the image and the probe
    work, and the probe names the missing driver library with its exit code."""
    doc = json.loads(composeproof.compose_file(image, "nvidia", probe=True))
    service = doc["services"][composeproof.SERVICE]
    assert service["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
    ]
    del service["deploy"]
    file = tmp_path / "compose.yaml"
    file.write_text(json.dumps(doc))
    up = composeproof.up_argv(["docker", "compose"], file)
    try:
        proc = run(up, check=False, env=compose_env, timeout=300)
    finally:
        run(composeproof.down_argv(["docker", "compose"], file), check=False, env=compose_env)
    output = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == 3, output
    assert '"error": "no-driver"' in output and "libcuda.so.1" in output
