"""The one place external programs are run.

Callers build argument lists with pure functions and hand them here. Output
is captured so a failure can show the user what the tool said; the
environment is pinned to C.UTF-8 so messages parse the same everywhere;
stdin is closed so nothing can wait for a prompt.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from installer.errors import GpubundleError

log = logging.getLogger("gpubundle.run")

_TAIL_LINES = 40


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A predictable environment: the caller's, in the C.UTF-8 locale, plus ``extra``."""
    env = dict(os.environ)
    env.update({"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "LANGUAGE": ""})
    if extra:
        env.update(extra)
    return env


def tail(text: str, lines: int = _TAIL_LINES) -> list[str]:
    """The last ``lines`` non-empty lines of ``text``: what a user needs from a long log."""
    kept = [line for line in text.splitlines() if line.strip()]
    return kept[-lines:]


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    input_bytes: bytes | None = None,
    check: bool = True,
    timeout: float | None = None,
    hint: str = "",
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` and return the completed process with stdout/stderr captured.

    With ``check`` a non-zero exit raises ``GpubundleError`` carrying the tail
    of the tool's output and ``hint``. A missing program is reported by name.
    """
    args = [os.fspath(a) for a in argv]
    log.debug("+ %s", shlex.join(args))
    try:
        proc = subprocess.run(
            args,
            env=clean_env(env),
            cwd=cwd,
            input=input_bytes,
            stdin=None if input_bytes is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise GpubundleError(
            f"{args[0]} not found",
            hint=hint or f"install the package that provides {Path(args[0]).name} and retry",
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise GpubundleError(
            f"{shlex.join(args)} did not finish within {timeout:.0f} s",
            hint=hint or "check that nothing else holds the resource it waits for",
        ) from exc
    if check and proc.returncode != 0:
        output = proc.stderr.decode(errors="replace") + proc.stdout.decode(errors="replace")
        raise GpubundleError(
            f"{Path(args[0]).name} failed with exit code {proc.returncode}: {shlex.join(args)}",
            hint=hint,
            details=tail(output),
        )
    return proc
