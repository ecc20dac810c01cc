"""A fresh clone with nothing beside it: ``make unit`` and ``make demo`` work as README says.

The repository is cloned into an empty directory (no ../shared beside it). NVIDIA's
published metadata reaches it only the documented way: ``make fixtures`` fetches it by
pinned hash from a mirror of NVIDIA's tree (served here on loopback from the shared copy,
since GitHub is out of reach), named by GPUBUNDLE_NVIDIA_FIXTURES_URL.

The demo builds a bundle with the real ``gpubundle build`` from the stand-in NVIDIA
repository on loopback and the real Debian archive, verifies it, installs it with
the shipped zipapp into a throwaway Debian 12 root under ``unshare -n chroot``,
shows the status and uninstalls. Here it must exit 0, announce every step, and
its output must show the packages installed and then gone.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CACHE_DIR, REPO_ROOT, nvidia_fixtures_dir
from tests.support.demooutput import demo_problems
from tests.support.httpserver import serve_directory

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.archive]


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A clone of the committed HEAD alone in an empty directory, and the env to run it with."""
    clone = tmp_path_factory.mktemp("fresh") / "gpubundle"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
    assert not (clone.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("GPUBUNDLE_SHARED", "PYTHONPATH")}
    # The build's verified download cache only saves time; every byte is still checked.
    env["GPUBUNDLE_DEMO_CACHE"] = str(CACHE_DIR / "build")
    # The dev tools are where the tests run from: the system python3 (.ci/run) or the
    # .venv of `make install` (README), which the clone has not made; the Makefile takes
    # its interpreter from PYTHON.
    env["PYTHON"] = sys.executable
    with serve_directory(nvidia_fixtures_dir()) as mirror:
        env["GPUBUNDLE_NVIDIA_FIXTURES_URL"] = mirror
        yield clone, env


def _make(clone: Path, env: dict[str, str], target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", target],  # exactly what README tells a newcomer to run
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, in the order a person sees it
        text=True,
        timeout=1800,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_fresh_clone_runs_the_unit_tier(fresh_clone: tuple[Path, dict[str, str]]) -> None:
    clone, env = fresh_clone
    proc = _make(clone, env, "unit")
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert f"NVIDIA fixtures: fetched into {clone}/.cache/nvidia-fixtures" in proc.stdout
    # "N passed in", or "N passed, M warnings in" (a plugin of the machine may warn)
    assert re.search(r"^\d+ passed(, \d+ warnings?)? in ", proc.stdout, re.M), proc.stdout[-2000:]
    assert " skipped" not in proc.stdout.splitlines()[-1]


def test_demo_runs_every_step(fresh_clone: tuple[Path, dict[str, str]]) -> None:
    clone, env = fresh_clone
    proc = _make(clone, env, "demo")
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert demo_problems(proc.stdout) == [], proc.stdout[-6000:]
