"""The verification image from the real archives, loaded into the real dockerd and run.

For every target (Ubuntu 18.04 … 26.04, Debian 11 … 13), amd64: the distro sources of the
target manifest are fetched and verified with the bundler's own RepoClient, the image's
roots (glibc, busybox, the target's python3.X for the compute probe) are resolved,
the .debs fetched against their signed hashes (cached under .cache/verifyimage/), and
the image built twice (byte-identical), ``docker load``-ed and run: glibc and the shell
work, the compute probe runs on the target's own python3 and names the missing
libcuda.so.1 with exit 3, and ``nvidia-smi`` is "not found" without the NVIDIA runtime
(it is the runtime that puts it there; the GPU host run shows that half).

The loaded image's ``Id`` is the one the archive records for this dockerd's image store
(``tests.support.docker_env.loaded_image_id``): the config digest, which is the build's
``image_id``, in the classic store; the manifest digest of the archive's ``index.json``
(whose manifest names that config) in the containerd image store of Docker 29.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bundler.targets import list_targets, load_target
from bundler.verifyimage import (
    PROBE_LABEL,
    SHELL_APPLETS,
    build_verification_image,
    verify_image_roots,
)
from installer.runner import run
from tests.support.archivedebs import fetch_debs
from tests.support.docker_env import archive_ids, loaded_image_id

pytestmark = [pytest.mark.integration, pytest.mark.archive, pytest.mark.docker]

# Every target's image, amd64 (arm64 images are built the same way; no arm64 dockerd here).
DISTROS = tuple(list_targets())
EPOCH = 1_700_000_000


def docker(*args: str, check: bool = True) -> tuple[int, str]:
    proc = run(["docker", *args], check=check, timeout=300)
    return proc.returncode, proc.stdout.decode() + proc.stderr.decode()


@pytest.mark.parametrize("distro", DISTROS)
def test_built_image_runs_glibc_and_a_shell(distro: str, cache_dir: Path, tmp_path: Path) -> None:
    debs = fetch_debs(distro, verify_image_roots(load_target(distro).python), cache_dir)
    tag = f"gpubundle-test/verify:{distro}-amd64"
    start = time.monotonic()
    info = build_verification_image(
        debs, tmp_path / "one.tar", tag=tag, arch="amd64", source_date_epoch=EPOCH
    )
    seconds = time.monotonic() - start
    again = build_verification_image(
        list(reversed(debs)), tmp_path / "two.tar", tag=tag, arch="amd64", source_date_epoch=EPOCH
    )
    assert again == info
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    print(f"{distro}: {info.size / 1e6:.1f} MB archive in {seconds:.1f} s; {info.packages}")
    assert {"libc6", "busybox", f"python{load_target(distro).python}-minimal"} <= {
        name for name, _ in info.packages
    }
    docker("rmi", "-f", tag, check=False)
    try:
        _, loaded = docker("load", "-i", str(tmp_path / "one.tar"))
        assert tag in loaded
        _, inspected = docker("image", "inspect", tag)
        [image] = json.loads(inspected)
        config_digest, _ = archive_ids(tmp_path / "one.tar")
        assert config_digest == info.image_id
        assert image["Id"] == loaded_image_id(tmp_path / "one.tar")
        assert image["Architecture"] == "amd64"
        assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in image["Config"]["Env"]
        assert image["Config"]["Labels"][PROBE_LABEL] == "/usr/local/bin/gpubundle-compute-probe"

        # The loader's --version came with glibc 2.33; libc.so.6 run as a program prints its
        # version on every release (2.27 on 18.04 … 2.41 on Debian 13).
        probe = (
            "ldd --version || /lib64/ld-linux-x86-64.so.2 --version "
            "|| /lib/x86_64-linux-gnu/libc.so.6; echo ok"
        )
        code, out = docker("run", "--rm", "--network", "none", tag, "sh", "-c", probe)
        assert code == 0, out
        glibc = dict(info.packages)["libc6"].split("-")[0]  # "2.39-0ubuntu8.12" -> "2.39"
        assert f"GLIBC {glibc}" in out or f"version {glibc}" in out, out
        assert "ok" in out.splitlines(), out

        _, applets = docker("run", "--rm", "--network", "none", tag, "busybox", "--list")
        missing = set(SHELL_APPLETS) - set(applets.split())
        assert not missing, f"busybox of {distro} lacks applets we link: {sorted(missing)}"
        code, out = docker("run", "--rm", "--network", "none", tag, "ls", "/usr/bin/sh", "/bin/sh")
        assert code == 0, out

        # The compute probe runs on the target's own python3 and, without the NVIDIA
        # runtime, says the driver's libcuda is missing, with its documented exit code.
        python = load_target(distro).python
        code, out = docker("run", "--rm", "--network", "none", tag, "python3", "--version")
        assert code == 0 and f"Python {python}." in out, out
        code, out = docker(
            "run", "--rm", "--network", "none", tag, "gpubundle-compute-probe", "--json",
            check=False,
        )  # fmt: skip
        assert code == 3, out
        report = json.loads(out.splitlines()[0])
        assert report["error"] == "no-driver" and report["exit_code"] == 3, report
        assert "libcuda.so.1" in report["message"] and "--gpus all" in report["message"]
        code, out = docker(
            "run", "--rm", "--network", "none", tag, "gpubundle-compute-probe", "--size", "3x",
            check=False,
        )  # fmt: skip
        assert code == 2 and "not a size" in out, out

        # The default command: without the NVIDIA runtime there is no nvidia-smi to run.
        code, out = docker("run", "--rm", "--network", "none", tag, check=False)
        assert code != 0
        assert "not found" in out, out
    finally:
        docker("rmi", "-f", tag, check=False)
