"""Paths install's packages step makes that dpkg does not own, and what install saw there.

No purge removes them. NVIDIA's maintainer scripts make config.toml and its directory
(toolkit-base's postinst, with ``nvidia-ctk config --in-place``), and the hook's old
name ``/usr/bin/nvidia-container-toolkit`` (a link toolkit's postinst makes; only its
purge removes it). dpkg itself makes ``/lib.usr-is-merged`` on Ubuntu 24.04: base-files
diverts ``/lib`` there (DEP17's protective diversions), so unpacking a package that
ships ``/lib/...`` (toolkit-base's systemd units) creates that empty directory, and no
purge takes it back. Install records those absent before its packages step (written
ahead as ``None``), then what it found there after (``fingerprint``); uninstall removes
them again, saving a file changed since.

The record keeps each path as the host sees it (``/etc/nvidia-container-runtime``);
``present`` and ``fingerprints`` read it under ``HostPaths.root``, and uninstall acts
on it there (``HostPaths.under``), so a test root's run sees only that root's files.
The names are ``installer.hostpaths.UNOWNED_PATHS``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from installer.hostpaths import UNOWNED_PATHS, HostPaths

DIR = "dir"
LINK_PREFIX = "-> "


def fingerprint(path: Path) -> str | None:
    """``dir``, ``-> TARGET`` for a link, a file's sha256, or None where nothing is."""
    if path.is_symlink():
        return LINK_PREFIX + os.readlink(path)
    if path.is_dir():
        return DIR
    if not path.exists():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_file_digest(value: str | None) -> bool:
    return bool(value) and value != DIR and not str(value).startswith(LINK_PREFIX)


def intended(
    recorded: Mapping[str, str | None], present: Iterable[str], paths: Iterable[str] = UNOWNED_PATHS
) -> dict[str, str | None]:
    """The record's entries plus, as ``None``, every path absent now: what the packages
    step may create. An entry already recorded keeps what an earlier run saw."""
    here = set(present)
    return {**{p: None for p in paths if p not in here and p not in recorded}, **recorded}


def observed(
    recorded: Mapping[str, str | None], now: Mapping[str, str | None]
) -> dict[str, str | None]:
    """After the packages step: entries written ahead get what is there now (``now``:
    path -> fingerprint); those the scripts did not create are dropped. A fingerprint
    seen by an earlier run is kept, so a later edit still counts as the user's."""
    result: dict[str, str | None] = {}
    for path, seen in recorded.items():
        value = seen if seen is not None else now.get(path)
        if value is not None:
            result[path] = value
    return dict(sorted(result.items()))


def present(host: HostPaths, paths: Iterable[str] = UNOWNED_PATHS) -> list[str]:
    """Those of ``paths`` (as the host sees them) that exist under ``host.root``."""
    return [p for p in paths if os.path.lexists(host.under(p))]


def fingerprints(host: HostPaths, paths: Iterable[str]) -> dict[str, str | None]:
    """path (as the host sees it) -> the fingerprint of what is under ``host.root`` there."""
    return {p: fingerprint(host.under(p)) for p in paths}
