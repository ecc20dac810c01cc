"""``ansible-playbook`` (ansible-core from PyPI) run against the repository's collection.

``ansible_playbook()`` finds the command beside this Python (the dev extra installs it
there) or on PATH, else skips (a failure in CI: tests/conftest.py). ``run_playbook``
runs a playbook of ``gpubundle.airgap`` with the collection from this checkout, every
Ansible file it writes kept under ``workdir``, and returns the run with its PLAY RECAP
parsed (``recap``: {host: {"ok": n, "changed": n, "failed": n, ...}}) and its wall time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

COLLECTIONS = REPO_ROOT / "ansible" / "collections"
COLLECTION = COLLECTIONS / "ansible_collections" / "gpubundle" / "airgap"
_RECAP_LINE = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$")


def tool(name: str) -> str | None:
    """``name`` beside this interpreter (a venv's bin) or on PATH."""
    return shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def ansible_playbook() -> str:
    found = tool("ansible-playbook")
    if found is None:
        pytest.skip("ansible-playbook not found: pip install -e '.[dev]' (ansible-core)")
    return found


def parse_recap(stdout: str) -> dict[str, dict[str, int]]:
    """{host: {counter: n}} of the PLAY RECAP at the end of ``ansible-playbook``'s output."""
    recap: dict[str, dict[str, int]] = {}
    lines = stdout.splitlines()
    start = max((i for i, line in enumerate(lines) if line.startswith("PLAY RECAP")), default=-1)
    for line in lines[start + 1 :] if start >= 0 else ():
        match = _RECAP_LINE.match(line.strip())
        if match:
            counters = dict(item.split("=") for item in match.group(2).split())
            recap[match.group(1)] = {k: int(v) for k, v in counters.items()}
    return recap


@dataclass(frozen=True)
class PlaybookRun:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    recap: dict[str, dict[str, int]]
    seconds: float

    def changed(self) -> dict[str, int]:
        return {host: counters["changed"] for host, counters in self.recap.items()}

    def failed(self) -> set[str]:
        return {h for h, c in self.recap.items() if c["failed"] or c["unreachable"]}

    def __str__(self) -> str:
        return f"ansible-playbook {' '.join(self.args)} (exit {self.returncode}):\n{self.stdout}\n{self.stderr}"


def run_playbook(
    playbook: str, inventory: Path, workdir: Path, *args: str, timeout: int = 900
) -> PlaybookRun:
    """``ansible-playbook PLAYBOOK -i INVENTORY ARGS`` with this checkout's collection."""
    home = workdir / "ansible-home"
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "ANSIBLE_FORKS": "8",
        "PYTHONWARNINGS": "ignore",
    }
    argv = [ansible_playbook(), playbook, "-i", str(inventory), *args]
    started = time.monotonic()
    proc = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    seconds = time.monotonic() - started
    recap = parse_recap(proc.stdout)
    return PlaybookRun((playbook, *args), proc.returncode, proc.stdout, proc.stderr, recap, seconds)
