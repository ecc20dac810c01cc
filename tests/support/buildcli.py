"""The real ``gpubundle build`` command line for the build tests: ``build`` runs it with
the given arguments, ``source_args`` names the target (ubuntu22.04), the served stand-in
NVIDIA repository and its key, and the download cache shared with other build tests
(``BUILD_CACHE``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.installbundles import BUILD_CACHE
from tests.support.standin_served import ServedStandin


def build(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from bundler.cli import main; main()", "build", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        timeout=1200,
    )


def source_args(standin: ServedStandin, key_file: Path) -> list[str]:
    if not key_file.exists():
        key_file.write_bytes(standin.armored_key)
    return [
        "--distro", "ubuntu22.04",
        "--mirror", f"nvidia={standin.url}",
        "--key", f"nvidia={key_file}",
        "--cache-dir", str(BUILD_CACHE),
    ]  # fmt: skip
