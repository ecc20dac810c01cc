"""Writing a host file so readers see the old content or the new, never half (tmp, fsync, rename).

The temporary file is written beside the target as ``.NAME.gpubundle-tmp-<random>``,
a name that says whose it is: a run killed mid-write (SIGKILL, power loss) leaves
one behind, and the next run sweeps it (``sweep_leftovers``; ``write_atomically``
sweeps before it writes, install and uninstall for every file they manage). gpubundle
writes host files only while it holds the host lock, so no live run's temporary file
is ever swept. Names of gpubundle 0.x (``.NAME.<8 random>.tmp``) are swept too.

A full disk (ENOSPC, EDQUOT) is reported as ``installer.diskspace.NoSpaceError``
naming the filesystem, with the temporary file removed and the target untouched.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from installer.diskspace import is_no_space, no_space_error

TMP_MARKER = ".gpubundle-tmp-"
_OLD_TMP = re.compile(r"\.[a-z0-9_]{8}\.tmp")  # tempfile.mkstemp's 8 characters


def temp_prefix(path: Path) -> str:
    return f".{path.name}{TMP_MARKER}"


def leftovers(path: Path) -> list[Path]:
    """Temporary files that killed atomic writes of ``path`` left beside it."""
    try:
        names = os.listdir(path.parent)
    except (FileNotFoundError, NotADirectoryError):
        return []
    prefix, old = temp_prefix(path), f".{path.name}"
    return sorted(
        path.parent / name
        for name in names
        if name.startswith(prefix)
        or (name.startswith(old) and _OLD_TMP.fullmatch(name[len(old) :]) is not None)
    )


def sweep_leftovers(*paths: Path) -> list[Path]:
    """Remove what killed writes of ``paths`` left; returns what was removed."""
    removed = []
    for path in paths:
        for tmp in leftovers(path):
            try:
                tmp.unlink()
            except FileNotFoundError:
                continue
            removed.append(tmp)
    return removed


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` (mode ``mode``) atomically and durably."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_leftovers(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path))
    except OSError as exc:
        if is_no_space(exc):
            raise no_space_error(path, exc, f"writing {path}") from exc
        raise
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and is_no_space(exc):
            raise no_space_error(path, exc, f"writing {path}") from exc
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json_atomic(path: Path, document: Any, mode: int = 0o644) -> None:
    """``document`` as indented, key-sorted JSON, written with :func:`write_atomically`."""
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    write_atomically(path, text.encode(), mode)
