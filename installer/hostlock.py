"""One gpubundle run at a time per host: an fcntl lock on /run/gpubundle.lock.

The lock file holds the holder's pid so a second run can say who holds it.
The kernel drops the lock when the holder exits, however it exits, so a
killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from installer.errors import LockedError
from installer.layout import LOCK_FILE


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 64).decode(errors="replace").strip() or "unknown"


@contextmanager
def host_lock(path: Path = Path(LOCK_FILE), command: str = "gpubundle") -> Iterator[None]:
    """Hold the host lock for the duration of the block; raise LockedError if another run has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            raise LockedError(
                f"another gpubundle run (pid {pid}) is changing this host",
                hint=f"wait for pid {pid} to finish, then run {command} again",
                details=[f"lock file: {path}"],
            ) from None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
