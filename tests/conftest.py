"""Shared fixtures: repo paths, the shared NVIDIA fixtures, and tier skips."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache"


def shared_dir() -> Path:
    """../shared beside the checkout (CI lays a copy there too); GPUBUNDLE_SHARED overrides."""
    return Path(os.environ.get("GPUBUNDLE_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def nvidia_fixtures() -> Path:
    path = shared_dir() / "fixtures" / "nvidia"
    if not (path / "gpgkey").exists():
        pytest.fail(f"NVIDIA fixtures not found at {path}; set GPUBUNDLE_SHARED")
    return path


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    CACHE_DIR.mkdir(exist_ok=True)
    return CACHE_DIR


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    is_root = os.geteuid() == 0
    for item in items:
        if "root" in item.keywords and not is_root:
            item.add_marker(pytest.mark.skip(reason="needs root"))
        if (
            "gpu" in item.keywords
            and shutil.which("nvidia-smi") is None
            and not Path("/usr/local/nvidia/bin/nvidia-smi").exists()
        ):
            item.add_marker(pytest.mark.skip(reason="no NVIDIA GPU/driver on this machine"))
