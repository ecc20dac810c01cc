"""The test world itself works: stand-in repo served and signed, apt accepts it, images run."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer.openpgp import verify_clearsigned
from tests.support.registry import CUDA_STANDIN, registry_url
from tests.support.standin_served import ServedStandin

pytestmark = pytest.mark.integration

# What a host already has: the distro libraries the NVIDIA packages depend on.
STATUS = """\
Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.35-0ubuntu3.8

Package: libcap2
Status: install ok installed
Architecture: amd64
Version: 1:2.44-1ubuntu0.22.04.1

Package: libseccomp2
Status: install ok installed
Architecture: amd64
Version: 2.5.3-2ubuntu2
"""


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def test_standin_repo_is_served_and_signed(standin_repo: ServedStandin) -> None:
    signed = fetch(f"{standin_repo.url}/InRelease")
    result = verify_clearsigned(
        signed, [standin_repo.armored_key], [standin_repo.fingerprint], "stand-in InRelease"
    )
    assert result.primary_fingerprint == standin_repo.fingerprint
    packages = fetch(f"{standin_repo.url}/Packages")
    assert f" {len(packages):>16} Packages\n".encode() in result.signed_data
    assert b"Package: nvidia-container-toolkit\n" in packages


@pytest.fixture
def apt_root(standin_repo: ServedStandin, tmp_path: Path) -> Iterator[list[str]]:
    """apt-get argv prefix for a private root whose only source is the stand-in repo."""
    for sub in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "var/lib/apt/lists/partial",
                "var/cache/apt/archives/partial", "var/lib/dpkg"):  # fmt: skip
        (tmp_path / sub).mkdir(parents=True)
    (tmp_path / "etc/apt/sources.list").write_text(standin_repo.sources_line() + "\n")
    (tmp_path / "var/lib/dpkg/status").write_text(STATUS)
    user = "root" if os.geteuid() == 0 else str(os.getuid())
    yield ["apt-get", "-q", "-o", f"Dir={tmp_path}", "-o", "Dir::Etc::parts=apt.conf.d",
           "-o", f"Dir::State::status={tmp_path}/var/lib/dpkg/status",
           "-o", "APT::Architecture=amd64", "-o", "APT::Architectures=amd64",
           "-o", "Debug::NoLocking=1", "-o", f"APT::Sandbox::User={user}"]  # fmt: skip


def apt(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "W: " not in proc.stderr, proc.stderr  # e.g. an unsigned or unverifiable source
    return proc.stdout


def simulated_installs(apt_get: list[str], *targets: str) -> dict[str, str]:
    out = apt([*apt_get, "-s", "install", *targets])
    # "Inst nvidia-container-toolkit (1.20.1-1 gpubundle-standin:stable [amd64])"
    return {line.split()[1]: line.split()[2].strip("(") for line in out.splitlines()
            if line.startswith("Inst ")}  # fmt: skip


def test_apt_installs_the_toolkit_from_the_standin(apt_root: list[str]) -> None:
    apt([*apt_root, "update"])
    assert simulated_installs(apt_root, "nvidia-container-toolkit") == {
        "nvidia-container-toolkit": "1.20.1-1",
        "nvidia-container-toolkit-base": "1.20.1-1",
        "libnvidia-container-tools": "1.20.1-1",
        "libnvidia-container1": "1.20.1-1",
    }
    # apt does not lower a dependency's candidate for an exact "(= V)": base is pinned too.
    # Older toolkits accept any tools < 2.0.0, so apt takes the newest tools and library.
    old = ("nvidia-container-toolkit=1.17.8-1", "nvidia-container-toolkit-base=1.17.8-1")
    assert simulated_installs(apt_root, *old) == {
        "nvidia-container-toolkit": "1.17.8-1",
        "nvidia-container-toolkit-base": "1.17.8-1",
        "libnvidia-container-tools": "1.20.1-1",
        "libnvidia-container1": "1.20.1-1",
    }
    apt([*apt_root, "install", "--download-only", "-y", "nvidia-container-toolkit"])
    archives = Path(apt_root[3].removeprefix("Dir=")) / "var/cache/apt/archives"
    assert len(list(archives.glob("*.deb"))) == 4  # each checked against the signed index


@pytest.mark.docker
def test_registry_serves_the_test_images(test_images: list[str]) -> None:
    catalog = json.loads(fetch(f"{registry_url()}/v2/_catalog"))["repositories"]
    for ref in test_images:
        repository, tag = ref.split("/", 1)[1].rsplit(":", 1)
        assert repository in catalog
        assert tag in json.loads(fetch(f"{registry_url()}/v2/{repository}/tags/list"))["tags"]


@pytest.mark.docker
def test_glibc_test_image_runs(test_images: list[str]) -> None:
    proc = subprocess.run(
        ["docker", "run", "--rm", CUDA_STANDIN.ref, "sh", "-c",
         'echo "$NVIDIA_REQUIRE_CUDA"; /sbin/ldconfig --version'],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "cuda>=12.4 brand=tesla,driver>=470,driver<471"
    assert "GLIBC" in lines[1]


@pytest.fixture
def standin_toolkit(standin_repo: ServedStandin, tmp_path: Path) -> Path:
    """The newest stand-in toolkit packages unpacked; returns their usr/bin."""
    root = tmp_path / "toolkit"
    for package in standin_repo.repo.packages:
        if package.version == "1.20.1-1" and "toolkit" in package.name:
            deb = standin_repo.repo.flat_dir / package.filename
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root / "usr" / "bin"


@pytest.mark.docker
@pytest.mark.root
def test_docker_runs_containers_through_the_standin_runtime(
    test_images: list[str], standin_toolkit: Path
) -> None:
    """A throwaway dockerd whose config the stand-in nvidia-ctk wrote, as on a real host.

    It gets a bridge of its own: a dockerd started with --bridge=none deletes docker0,
    which the shared daemon's containers use.
    """
    work = Path(f"/tmp/gpubundle-dockerd-{os.getpid()}")
    work.mkdir(exist_ok=True)
    bridge = f"gpbt{os.getpid() % 100000}"
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", "10.254.254.1/24", "dev", bridge], check=True)
    config = work / "daemon.json"
    subprocess.run([str(standin_toolkit / "nvidia-ctk"), "runtime", "configure",
                    "--runtime=docker", f"--config={config}"], check=True)  # fmt: skip
    sock = f"unix://{work}/docker.sock"
    env = {**os.environ, "PATH": f"{standin_toolkit}:{os.environ['PATH']}"}
    with (work / "dockerd.log").open("w") as log:
        daemon = subprocess.Popen(
            ["dockerd", "--config-file", str(config), "--data-root", f"{work}/data",
             "--exec-root", f"{work}/exec", "--pidfile", f"{work}/dockerd.pid", "-H", sock,
             "--bridge", bridge, "--iptables=false", "--ip6tables=false"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    docker = ["docker", "-H", sock]
    try:
        for _ in range(60):
            if subprocess.run([*docker, "info"], capture_output=True).returncode == 0:
                break
            time.sleep(1)
        info = subprocess.run([*docker, "info", "--format", "{{json .Runtimes}}"],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert "nvidia" in json.loads(info)
        run = [*docker, "run", "--rm", "--network=none", "--runtime=nvidia"]
        ok = subprocess.run([*run, "-e", "NVIDIA_VISIBLE_DEVICES=void", CUDA_STANDIN.ref,
                             "echo", "no gpu asked, runc ran it"],
                            capture_output=True, text=True, timeout=180)  # fmt: skip
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.strip() == "no gpu asked, runc ran it"
        gpu = subprocess.run([*run, CUDA_STANDIN.ref, "true"],
                             capture_output=True, text=True, timeout=180)  # fmt: skip
        assert gpu.returncode != 0
        assert "no NVIDIA driver is available" in gpu.stderr
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        subprocess.run(["ip", "link", "del", bridge], check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)
