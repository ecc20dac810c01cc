"""docs/DEVELOPING.md's module map lists every module with its docstring's first paragraph."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_module_map_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "module-map"), "--check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
