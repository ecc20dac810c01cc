"""How to run gpubundle again on this host, in the form it was started here.

Fixes that doctor and install print must be runnable on the air-gapped host as
they stand: where the host has ``python3 gpubundle-installer.pyz``, a fix that
says ``gpubundle install`` cannot be followed. ``sys.argv[0]`` tells how the
running program was invoked; that form goes into every printed command.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import PurePath

# What the host has when nothing better is known: the two files the user copied.
DEFAULT_PROGRAM = "sh gpubundle-installer.pyz"  # runs on every target (bundler/selfrun.sh)
LAUNCHER = "GPUBUNDLE_LAUNCHER"  # "sh" when the zipapp's sh preamble started this python
INSTALL_ARGS = "BUNDLE --trust FINGERPRINT"
ENTRY_POINTS = ("gpubundle", "gpubundle-installer")


def program(argv0: str | None = None) -> str:
    """The command that starts gpubundle as this process was started.

    ``sh /root/gpubundle-installer.pyz`` for the zipapp (its path as typed; ``python3 …``
    when python3 started it directly),
    ``gpubundle`` for the console script, ``python3 -m installer`` for the module;
    otherwise (a test runner, an embedding program) the zipapp form.
    """
    arg = sys.argv[0] if argv0 is None else argv0
    name = PurePath(arg).name
    if name.endswith(".pyz"):
        launcher = "sh" if os.environ.get(LAUNCHER) == "sh" else "python3"
        return f"{launcher} {shlex.quote(arg)}"
    if name in ENTRY_POINTS:
        return name
    if name == "__main__.py" and PurePath(arg).parent.name in ("installer", "bundler"):
        return f"python3 -m {PurePath(arg).parent.name}"
    return DEFAULT_PROGRAM


def command(subcommand: str, args: str = "", argv0: str | None = None) -> str:
    """``program() subcommand args``, e.g. ``python3 gpubundle-installer.pyz doctor``."""
    return " ".join(part for part in (program(argv0), subcommand, args) if part)


def rerun_install(argv0: str | None = None) -> str:
    """Install again with the same bundle: what repairs what install put in place."""
    return command("install", INSTALL_ARGS, argv0)
