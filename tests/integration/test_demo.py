"""``make demo`` (scripts/demo.sh): the whole flow on a machine without NVIDIA access.

The demo builds a bundle with the real ``gpubundle build`` from the stand-in NVIDIA
repository on loopback and the real Debian archive, verifies it, installs it with
the shipped zipapp into a throwaway Debian 12 root under ``unshare -n chroot``,
shows the status and uninstalls. Here it must exit 0, announce every step, and
its output must show the packages installed and then gone.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.archive]

STEPS = (
    "a stand-in NVIDIA repository on 127.0.0.1",
    "the air-gapped host: a throwaway Debian 12 root",
    "a throwaway signing key",
    "gpubundle build (the connected machine)",
    "gpubundle verify",
    "gpubundle install, offline, in the throwaway root",
    "gpubundle status",
    "gpubundle uninstall",
)
FAMILY = (
    "libnvidia-container-tools",
    "libnvidia-container1",
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
)


def test_demo_runs_every_step() -> None:
    proc = subprocess.run(
        ["make", "--no-print-directory", "demo"],  # exactly what README tells a newcomer to run
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, in the order a person sees it
        text=True,
        timeout=1800,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-6000:]
    for number, title in enumerate(STEPS, 1):
        assert f"[{number}/{len(STEPS)}] {title} " in out, f"step {number} not announced"
        assert re.search(rf"^ *{number}\. {re.escape(title)} +\d+\.\d s$", out, re.M), (
            f"step {number} missing from the summary"
        )
    installed, _, removed = out.partition(f"[8/{len(STEPS)}] gpubundle uninstall")
    for name in FAMILY:
        assert f"{name} 1.20.1-1 ii" in installed, f"{name} not shown installed"
        assert f"{name} ii" not in removed, f"{name} still installed after uninstall"
    assert "uninstall complete" in removed
    assert "gpgv: Good signature" in out
    assert re.search(r"^demo complete in \d+\.\d s", out, re.M)
