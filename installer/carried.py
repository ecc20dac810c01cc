"""The python3 and gpgv the installer carried, when the sh preamble runs it on them.

On a host without python3 3.8+ (or without gpgv), ``sh gpubundle-installer.pyz``
verifies the target's own python3.X and gpgv .debs, unpacks them into a temporary
directory and runs the zipapp with that python3, ``LD_LIBRARY_PATH`` naming the
unpacked libraries (bundler/selfrun.sh; docs/bundle-format.md). ``restore_environment``
(run first by the zipapp) takes that variable back out, so apt, dpkg and every program
the installer starts use the host's libraries; ``gpgv`` says how to run the host's
gpgv, or the carried one with the carried libraries. Standard library only.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, MutableMapping
from pathlib import Path

RUNTIME_DIR = "GPUBUNDLE_RUNTIME_DIR"
RUNTIME_LIBS = "GPUBUNDLE_RUNTIME_LIBS"
HOST_LIBRARY_PATH = "GPUBUNDLE_HOST_LD_LIBRARY_PATH"
UNSET = "unset"


def restore_environment(environ: MutableMapping[str, str] | None = None) -> None:
    """Give LD_LIBRARY_PATH back the value it had before the preamble set it."""
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    if RUNTIME_DIR not in env:
        return
    before = env.pop(HOST_LIBRARY_PATH, UNSET)
    if before == UNSET:
        env.pop("LD_LIBRARY_PATH", None)
    else:
        env["LD_LIBRARY_PATH"] = before


def runtime_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the carried runtime is unpacked, or None on the host's own python3."""
    value = (os.environ if environ is None else environ).get(RUNTIME_DIR, "")
    return Path(value) if value else None


def gpgv(environ: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """The gpgv to run and the environment it needs beyond the usual one: the host's,
    else the carried one with the carried libraries."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    carried = runtime_dir(env)
    if shutil.which("gpgv", path=env.get("PATH")) or carried is None:
        return "gpgv", {}
    return str(carried / "usr/bin/gpgv"), {"LD_LIBRARY_PATH": env.get(RUNTIME_LIBS, "")}
