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
import time
from collections.abc import Callable, Mapping, Sequence
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


def run_detached(
    argv: Sequence[str | os.PathLike[str]],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
    hint: str = "",
    poll_s: float = 0.2,
) -> tuple[int, str]:
    """Run ``argv`` in a session of its own, its output appended to ``log_path``; wait for it.

    For work that must not die with gpubundle (apt and dpkg): a kill of this process, a
    closed terminal or Ctrl-C leaves it running to its end, as no pipe of ours can break
    under it. Each new line of its output goes to ``on_line`` while it runs. Returns its
    exit code and the output this run wrote to the log.
    """
    args = [os.fspath(a) for a in argv]
    log.debug("+ %s (output to %s)", shlex.join(args), log_path)
    log_path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        out.write(f"+ {shlex.join(args)}\n".encode())
        out.flush()
        start = os.fstat(out.fileno()).st_size
        try:
            proc = subprocess.Popen(
                args,
                env=clean_env(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise GpubundleError(
                f"{args[0]} not found",
                hint=hint or f"install the package that provides {Path(args[0]).name} and retry",
            ) from exc
    written = bytearray()
    pending = b""
    with log_path.open("rb") as reader:
        reader.seek(start)
        while True:
            finished = proc.poll() is not None
            chunk = reader.read()
            written += chunk
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if on_line is not None:
                    on_line(line.decode(errors="replace"))
            if finished:
                break
            time.sleep(poll_s)
    if pending and on_line is not None:
        on_line(pending.decode(errors="replace"))
    return proc.returncode, written.decode(errors="replace")
