"""The one place external programs are run.

Callers build argument lists with pure functions and hand them here. Output
is captured so a failure can show the user what the tool said; the
environment is pinned to C.UTF-8 so messages parse the same everywhere;
stdin is closed so nothing can wait for a prompt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
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
        raise _not_found(args, hint) from exc
    except subprocess.TimeoutExpired as exc:
        raise _timed_out(args, timeout, hint) from exc
    if check and proc.returncode != 0:
        raise _failed(args, proc, hint)
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


def run_fed(
    argv: Sequence[str | os.PathLike[str]],
    chunks: Iterable[bytes],
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float | None = None,
    hint: str = "",
) -> subprocess.CompletedProcess[bytes]:
    """:func:`run`, with ``chunks`` written to the program's stdin as they come.

    For input too large to hold (``docker load`` of an image archive): the caller's
    iterator reads it piece by piece, so it can report progress by bytes. Output is
    spooled to temporary files, so a chatty program never blocks on a full pipe. A
    program that exits before reading everything is judged by its exit code and
    output; past ``timeout`` it is killed.
    """
    args = [os.fspath(a) for a in argv]
    log.debug("+ %s < (stream)", shlex.join(args))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            child = subprocess.Popen(
                args, env=clean_env(env), stdin=subprocess.PIPE, stdout=out, stderr=err
            )
        except FileNotFoundError as exc:
            raise _not_found(args, hint) from exc
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            child.kill()

        watchdog = threading.Timer(timeout, kill) if timeout is not None else None
        if watchdog is not None:
            watchdog.daemon = True
            watchdog.start()
        try:
            _feed(child, chunks)
            returncode = child.wait()
        except BaseException:
            child.kill()
            child.wait()
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()
        if expired.is_set():
            raise _timed_out(args, timeout, hint)
        out.seek(0)
        err.seek(0)
        proc = subprocess.CompletedProcess(args, returncode, out.read(), err.read())
    if check and proc.returncode != 0:
        raise _failed(args, proc, hint)
    return proc


def _feed(child: subprocess.Popen[bytes], chunks: Iterable[bytes]) -> None:
    stdin = child.stdin
    assert stdin is not None  # Popen(stdin=PIPE)
    try:
        for chunk in chunks:
            stdin.write(chunk)
    except BrokenPipeError:
        pass  # it stopped reading (exited or was killed): its exit code says why
    finally:
        with contextlib.suppress(BrokenPipeError):
            stdin.close()


def _not_found(args: list[str], hint: str) -> GpubundleError:
    return GpubundleError(
        f"{args[0]} not found",
        hint=hint or f"install the package that provides {Path(args[0]).name} and retry",
    )


def _timed_out(args: list[str], timeout: float | None, hint: str) -> GpubundleError:
    return GpubundleError(
        f"{shlex.join(args)} did not finish within {timeout or 0:.0f} s",
        hint=hint or "check that nothing else holds the resource it waits for",
    )


def _failed(args: list[str], proc: subprocess.CompletedProcess[bytes], hint: str) -> GpubundleError:
    output = proc.stderr.decode(errors="replace") + proc.stdout.decode(errors="replace")
    return GpubundleError(
        f"{Path(args[0]).name} failed with exit code {proc.returncode}: {shlex.join(args)}",
        hint=hint,
        details=tail(output),
    )
