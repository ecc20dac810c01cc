"""Mount points under a directory, read from /proc/self/mountinfo, and their release.

A test that mounts /proc, a tmpfs or a bind mount inside its temporary directory must
leave nothing mounted there: the directory is deleted after a passing test, and a delete
that walks into a live bind mount deletes what it points at.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")


def mounts_under(root: Path, mountinfo: Path = MOUNTINFO) -> list[str]:
    """Mount points at or under ``root``, deepest last (mountinfo lists them in mount order)."""
    prefix = str(root.resolve())
    found = []
    for line in mountinfo.read_text().splitlines():
        # Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return found


def detach_all(points: list[str]) -> None:
    """Lazily unmount ``points``, deepest first: they leave the tree at once, even if busy."""
    for point in reversed(points):
        subprocess.run(["umount", "-R", "-l", point], check=False, capture_output=True)
