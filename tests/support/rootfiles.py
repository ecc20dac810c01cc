"""A debootstrap test root as data, before and after an install: the toolkit family the
stand-in's newest bundle installs (``FAMILY`` at ``VERSION``), the packages the roots add
to minbase (``INCLUDE``), every path with its kind, mode, size and mtime (``snapshot``,
``changed_paths``), dpkg's view of the root (``dpkg_status``, ``package_files``) and the
changes no plan or package explains (``unexplained``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SKIP_TOP = {"proc", "sys", "dev", "tmp"}

VERSION = "1.20.1-1"


FAMILY = (
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
)


INCLUDE = ("python3", "gpgv")


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every path of the root: kind and mode, plus size and mtime for non-directories."""
    found: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = "/" + os.path.relpath(dirpath, root).removeprefix(".").lstrip("/")
        if rel_dir == "/":
            dirnames[:] = [d for d in dirnames if d not in SKIP_TOP]
        for name in dirnames:
            st = os.lstat(os.path.join(dirpath, name))
            found[os.path.join(rel_dir, name)] = ("dir", st.st_mode)
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            found[os.path.join(rel_dir, name)] = ("file", st.st_mode, st.st_size, st.st_mtime_ns)
    return found


def changed_paths(
    before: dict[str, tuple[Any, ...]], after: dict[str, tuple[Any, ...]]
) -> set[str]:
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


def dpkg_status(root: Path) -> dict[str, tuple[str, str]]:
    """{package: (version, status)} from the root's dpkg database."""
    found: dict[str, tuple[str, str]] = {}
    for stanza in (root / "var/lib/dpkg/status").read_text().split("\n\n"):
        fields = dict(
            line.split(": ", 1)
            for line in stanza.splitlines()
            if ": " in line and not line[0].isspace()
        )
        if "Package" in fields:
            found[fields["Package"]] = (fields.get("Version", ""), fields.get("Status", ""))
    return found


def package_files(root: Path, names: set[str]) -> set[str]:
    """The packages' files as dpkg lists them, and where they land on a merged-/usr root
    (a package's /lib/systemd/system/X is /usr/lib/systemd/system/X there)."""
    files: set[str] = set()
    for name in names:
        for lst in (root / "var/lib/dpkg/info").glob(f"{name}*.list"):
            if lst.name in (f"{name}.list", f"{name}:amd64.list"):
                files.update(line for line in lst.read_text().splitlines() if line)
    landed = set()
    for path in files:
        parent = (root / path.lstrip("/")).parent.resolve()
        if parent.is_relative_to(root.resolve()):
            landed.add("/" + (parent / Path(path).name).relative_to(root.resolve()).as_posix())
    return files | landed


def unexplained(
    changes: set[str], allowed_prefixes: set[str], allowed_files: set[str]
) -> list[str]:
    def covered(path: str) -> bool:
        if path in allowed_files:
            return True
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in allowed_prefixes)

    return sorted(p for p in changes if not covered(p))
