"""A fake ``libcuda.so.1`` (tests/support/fake_libcuda.c) and a runner for the compute
probe against it: the probe's whole host-side data path without a GPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SOURCE = Path(__file__).with_name("fake_libcuda.c")
PROBE = Path(__file__).resolve().parents[2] / "installer" / "compute_probe.py"


def build_fake_libcuda(dest: Path) -> Path:
    """Compile the fake into ``dest/libcuda.so.1``; skips (fails in CI) without gcc."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to build the fake libcuda (apt-get install gcc)")
    dest.mkdir(parents=True, exist_ok=True)
    lib = dest / "libcuda.so.1"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(lib), str(SOURCE)],
        check=True,
        capture_output=True,
    )
    return lib


def run_probe(
    lib_dir: Path | None, *args: str, **fake_env: str
) -> tuple[int, dict[str, Any] | None, str]:
    """Run the probe with ``lib_dir`` as the only library path; exit code, JSON, stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_CUDA_", "LD_"))}
    if lib_dir is not None:
        env["LD_LIBRARY_PATH"] = str(lib_dir)
    env.update({f"FAKE_CUDA_{k.upper()}": v for k, v in fake_env.items()})
    proc = subprocess.run(
        [sys.executable, "-I", str(PROBE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    doc = json.loads(proc.stdout) if "--json" in args and proc.stdout.strip() else None
    return proc.returncode, doc, proc.stderr
