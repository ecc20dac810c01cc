"""Wheels for the installer zipapp's tests: ``probe_wheel`` makes a small one-module wheel
named for this interpreter (``TAG``) and machine (``MACHINE``), standing for zstandard's."""

from __future__ import annotations

import platform
import zipfile
from pathlib import Path

from installer import bootstrap

TAG = bootstrap.current_tag()


MACHINE = platform.machine()


def probe_wheel(directory: Path, tag: str = TAG, machine: str = MACHINE) -> Path:
    """A small wheel with one module, named for this interpreter (stands for zstandard's)."""
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"gbprobe-1.0-{tag}-{tag}-manylinux_2_17_{machine}.whl"
    with zipfile.ZipFile(wheel, "w") as archive:  # fixed times: the same bytes every time
        for name, text in (
            ("gbprobe/__init__.py", "VALUE = 42\n"),
            ("gbprobe-1.0.dist-info/METADATA", "Name: gbprobe\nVersion: 1.0\n"),
        ):
            archive.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), text)
    return wheel
