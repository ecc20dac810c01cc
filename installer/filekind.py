"""What a path is, for the files that must be regular files: a bundle, its parts, key files.

A FIFO or a device (``/dev/zero``) read as a bundle never ends; it is refused by
kind before a byte of it is read.
"""

from __future__ import annotations

import stat
from pathlib import Path

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """What a file of ``mode`` is, in words."""
    return next((word for test, word in _KINDS if test(mode)), "not a plain file")


def regular_file_problem(path: Path) -> str:
    """ "" when ``path`` is a regular file (after symbolic links); else what it is instead."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    return "" if stat.S_ISREG(mode) else f"not a regular file but {file_kind(mode)}"
