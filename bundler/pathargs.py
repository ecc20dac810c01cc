"""Path arguments checked before any work: a path whose parent is a file can never be made.

``--cache-dir /tmp/prof/cache`` where ``/tmp/prof`` is a file used to end in a
traceback after the network work; here it is a usage error (exit 2) naming the file.
"""

from __future__ import annotations

from pathlib import Path

from installer.errors import ExitCode, GpubundleError


def blocking_file(path: Path) -> Path | None:
    """The first existing non-directory on the way to ``path`` (``path`` itself excluded)."""
    for parent in reversed(path.absolute().parents):
        if parent.exists() and not parent.is_dir():
            return parent
        if not parent.exists():
            return None
    return None


def check_dir_option(path: Path, option: str) -> None:
    """``option`` names a directory that exists or can be created."""
    target = path.absolute()
    if target.exists() and not target.is_dir():
        raise GpubundleError(
            f"{option} {path} is not a directory",
            hint=f"name a directory (or one to be created) with {option} DIR",
            code=ExitCode.USAGE,
        )
    _check_parents(path, option, f"{option} DIR")


def check_file_option(path: Path, option: str) -> None:
    """``option`` names a file whose directory exists or can be created."""
    if path.absolute().is_dir():
        raise GpubundleError(
            f"{option} {path} is a directory",
            hint=f"name the file to write, e.g. {option} {path.absolute() / 'bundle.tar.zst'}",
            code=ExitCode.USAGE,
        )
    _check_parents(path, option, f"{option} FILE in a directory")


def _check_parents(path: Path, option: str, what: str) -> None:
    blocker = blocking_file(path)
    if blocker is not None:
        raise GpubundleError(
            f"{option} {path}: {blocker} is a file, not a directory",
            hint=f"pass {what} elsewhere, or move {blocker} aside",
            code=ExitCode.USAGE,
        )
