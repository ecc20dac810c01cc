"""dpkg's conffiles of packages, and which of them were changed on the host since.

``dpkg --purge`` deletes a package's conffiles whether or not someone edited them;
uninstall saves the edited ones first. dpkg records, per conffile, the MD5 of the
version it installed (``dpkg-query -W -f '${Conffiles}'``); a file whose MD5 differs
now was changed after install.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from installer.compat import checksum
from installer.hostpaths import HostPaths
from installer.runner import run

_MD5 = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Conffile:
    package: str
    path: str
    packaged_md5: str  # what dpkg installed ("newconffile" while unpacked, not configured)
    current_md5: str | None = None  # None: no regular file there now

    @property
    def changed(self) -> bool:
        """Edited since dpkg installed it (a file dpkg never finished installing is not)."""
        known = bool(_MD5.fullmatch(self.packaged_md5))
        return known and self.current_md5 is not None and self.current_md5 != self.packaged_md5


def dpkg_query_argv(admindir: Path, names: Iterable[str]) -> list[str]:
    return [
        "dpkg-query", f"--admindir={admindir}", "-W",
        "-f", "${Package}\\n${Conffiles}\\n", "--", *names,
    ]  # fmt: skip


def parse_conffiles(text: str) -> list[tuple[str, str, str]]:
    """(package, path, md5) of dpkg-query's output: a name line, then " PATH MD5 [flags]"."""
    found: list[tuple[str, str, str]] = []
    package = ""
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            package = line.strip()
            continue
        fields = line.split()
        if package and len(fields) >= 2:
            found.append((package, fields[0], fields[1]))
    return found


def md5_of(path: Path) -> str | None:
    """The MD5 of a regular file (as dpkg computes it), None where there is none."""
    if path.is_symlink() or not path.is_file():
        return None
    digest = checksum("md5")
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_conffiles(admindir: Path, names: Iterable[str], host: HostPaths) -> tuple[Conffile, ...]:
    """The conffiles of the installed packages among ``names``, with their MD5 now (each
    read under ``host.root``; ``path`` is dpkg's name, as the host sees it)."""
    wanted = list(names)
    if not wanted:
        return ()
    # dpkg-query exits 1 when a name is unknown; what it printed for the rest is right.
    proc = run(dpkg_query_argv(admindir, wanted), check=False)
    return tuple(
        Conffile(package, path, md5, md5_of(host.under(path)))
        for package, path, md5 in parse_conffiles(proc.stdout.decode(errors="replace"))
    )
