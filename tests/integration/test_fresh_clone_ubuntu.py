"""The README's first screen, typed by a newcomer on a clean Ubuntu 24.04 workstation.

The workstation is a debootstrap root of Ubuntu 24.04 (minbase plus what such a machine
has: python3, git, sudo, ca-certificates; ``tests.support.workstation``), entered with
chroot and the network, with a user ``dev``. As ``dev``, each command in a new login
shell: ``git clone`` of this repository's committed HEAD into an empty directory (no
../shared beside it), then the README's Install and Develop commands as written, in
order: ``sudo apt install pipx``, ``pipx ensurepath``, ``pipx install .``, ``gpubundle``
itself (``--help``, ``distros``, and ``build --dry-run`` against the real Ubuntu archive
and the stand-in NVIDIA repository on loopback), ``sudo apt install make``, ``sudo make
deps``, ``make install``, ``make unit`` (NVIDIA's metadata reaching the clone the
documented way: ``make fixtures`` from GPUBUNDLE_NVIDIA_FIXTURES_URL, a loopback mirror of
the shared copy) and ``sudo make demo``. ``sudo make test`` is not run here (``NOT_RUN``
says why). ``test_the_readme_says_what_runs_here`` keeps the two lists the same.

Only caches are shared with this machine, bound into the root: apt's downloaded .debs,
pip's download cache, and the demo's debootstrap roots and build download cache (every
byte from them is still checked by apt, pip and gpubundle). Each step's time is printed.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import CACHE_DIR, REPO_ROOT, nvidia_fixtures_dir
from tests.support import workstation
from tests.support.demooutput import demo_problems
from tests.support.httpserver import serve_directory
from tests.support.roots import DISTROS, debootstrap_root
from tests.support.standin_served import ServedStandin
from tests.support.workstation import HOME, UID, WORKSTATION_INCLUDE, as_user

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.archive]

DISTRO = "ubuntu24.04"
CLONE = f"{HOME}/src/gpubundle"
NVIDIA_KEY = "/tmp/nvidia.asc"

# The README's Install and Develop commands, in its order, each as run here.
RUNS = (
    "sudo apt install pipx",
    "pipx ensurepath",
    "pipx install .",
    "sudo apt install make",
    "sudo make deps",
    "make install",
    "make unit",
    "sudo make demo",
)
NOT_RUN = {
    "sudo make test": "the integration tier's dockerd would share this machine's network "
    "namespace, bridge and iptables with its dockerd; CI runs make test on Debian 12, and "
    "docs/DEVELOPING.md says what of it was run in an Ubuntu 24.04 root",
}


def readme_commands() -> list[str]:
    """The commands of the README's first code block under "# Install" and "# Develop"."""
    block = (REPO_ROOT / "README.md").read_text().split("```sh\n", 1)[1].split("```", 1)[0]
    commands, section = [], ""
    for line in block.splitlines():
        if line.startswith("#"):
            section = line.split()[1]
        elif line.strip() and section in ("Install", "Develop"):
            commands.append(line.split("#", 1)[0].strip())
    return commands


def test_the_readme_says_what_runs_here() -> None:
    commands = readme_commands()
    assert [c for c in commands if c not in NOT_RUN] == list(RUNS)
    assert set(NOT_RUN) <= set(commands)


@dataclass
class Workstation:
    root: Path
    env: dict[str, str]  # exported for make unit: the fixtures mirror (and CI, when set)
    standin: ServedStandin
    times: list[tuple[str, float]] = field(default_factory=list)

    def type(self, command: str, cwd: str = CLONE, env: dict[str, str] | None = None) -> str:
        """``command`` as dev types it; its output, after checking it exited 0."""
        started = time.monotonic()
        proc = as_user(self.root, command, cwd=cwd, env=env or {})
        self.times.append((command, time.monotonic() - started))
        assert proc.returncode == 0, f"$ {command}\n{proc.stdout[-6000:]}"
        return proc.stdout


def _cache(name: str, owner: int = 0) -> Path:
    path = CACHE_DIR / "workstation" / name
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, owner, owner)
    return path


@pytest.fixture(scope="module")
def ubuntu(
    tmp_path_factory: pytest.TempPathFactory,
    standin_repo: ServedStandin,
    request: pytest.FixtureRequest,
) -> Iterator[Workstation]:
    """The workstation with the clone made; the step times reported at the end."""
    started = time.monotonic()
    root = tmp_path_factory.mktemp("workstation") / "root"
    debootstrap_root(DISTRO, "minbase", WORKSTATION_INCLUDE, dest=root)
    workstation.prepare(root, DISTROS[DISTRO].codename)
    pip_cache = root / HOME.lstrip("/") / ".cache/pip"
    pip_cache.mkdir(parents=True)
    os.chown(pip_cache.parent, UID, UID)
    os.chown(pip_cache, UID, UID)
    (root / NVIDIA_KEY.lstrip("/")).write_bytes(standin_repo.armored_key)
    env = {"CI": os.environ["CI"]} if os.environ.get("CI") else {}
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    times: list[tuple[str, float]] = []
    try:
        with workstation.entered(root) as mounts, serve_directory(nvidia_fixtures_dir()) as url:
            mounts.bind(_cache("apt-archives"), "/var/cache/apt/archives")
            mounts.bind(_cache("pip", UID), f"{HOME}/.cache/pip")
            env["GPUBUNDLE_NVIDIA_FIXTURES_URL"] = url
            box = Workstation(root, env, standin_repo, times)
            box.times.append(("the root: unpack, prepare", time.monotonic() - started))
            # The apt lists of a machine in use are current.
            box.type("sudo apt-get update -qq", cwd=HOME)
            # The clone: this repository's committed HEAD, into an empty directory.
            bare = root / "srv/gpubundle.git"
            subprocess.run(["git", "clone", "-q", "--bare", str(REPO_ROOT), str(bare)], check=True)
            subprocess.run(["chown", "-R", f"{UID}:{UID}", str(bare)], check=True)
            box.type("mkdir src && cd src && git clone -q /srv/gpubundle.git gpubundle", cwd=HOME)
            assert sorted(os.listdir(root / "home/dev/src")) == ["gpubundle"]
            cache = root / CLONE.lstrip("/") / ".cache"
            cache.mkdir()
            os.chown(cache, UID, UID)
            mounts.bind(CACHE_DIR / "roots", f"{CLONE}/.cache/roots")
            mounts.bind(CACHE_DIR / "build", f"{CLONE}/.cache/build")
            yield box
    finally:
        lines = [f"{seconds:7.1f} s  {what}" for what, seconds in times]
        lines.append(f"{time.monotonic() - started:7.1f} s  in all")
        with capture.global_and_fixture_disabled():  # shown without -s too
            reporter.write_line(f"\n{DISTRO} workstation, step times:")
            for line in lines:
                reporter.write_line(f"  {line}")
        workstation.remove(root)


def test_user_install_with_pipx(ubuntu: Workstation) -> None:
    ubuntu.type("sudo apt install pipx")
    ubuntu.type("pipx ensurepath")
    ubuntu.type("pipx install .")
    assert "Usage: gpubundle" in ubuntu.type("gpubundle --help")
    assert re.search(
        r"^ubuntu24\.04 +ubuntu 24\.04 \(noble\)", ubuntu.type("gpubundle distros"), re.M
    )
    plan = ubuntu.type(
        "gpubundle build --distro ubuntu22.04 --dry-run"
        f" --mirror nvidia={ubuntu.standin.url} --key nvidia={NVIDIA_KEY}"
    )
    assert re.search(r"^nvidia-container-toolkit +1\.20\.1-1 +amd64 +nvidia ", plan, re.M), plan
    assert re.search(r"^libc6 +\S+ +amd64 +ubuntu", plan, re.M), plan  # from Ubuntu's archive
    assert "nothing was downloaded (--dry-run)" in plan


def test_make_deps_install_and_unit(ubuntu: Workstation) -> None:
    ubuntu.type("sudo apt install make")
    ubuntu.type("sudo make deps")
    ubuntu.type("make install")
    out = ubuntu.type("make unit", env=ubuntu.env)
    assert f"NVIDIA fixtures: fetched into {CLONE}/.cache/nvidia-fixtures" in out
    last = out.strip().splitlines()[-1]
    assert re.search(r"^\d+ passed in ", last), out[-2000:]
    assert "skipped" not in last and "error" not in last


def test_sudo_make_demo(ubuntu: Workstation) -> None:
    out = ubuntu.type("sudo make demo")
    assert demo_problems(out) == [], out[-6000:]
