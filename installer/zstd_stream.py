"""Read a zstd file or stream as a stream of decompressed bytes, with whatever the host offers.

In order: the standard library's ``compression.zstd`` (Python 3.14+), else the
``zstandard`` module (the installer .pyz carries its wheels for older Pythons),
else a ``zstd -dc`` pipe (the zstd package, or the one the bootstrap unpacked from
the runtime file: docs/bundle-format.md), else a clear error saying what to install. Either way memory stays bounded: zstd's window (at most 128 MiB,
the decoder's default limit) plus one read.

The source is a path or any readable stream (a bundle split into parts is
read as one stream, see ``installer.partstream``); a stream reaches ``zstd -dc``
through its stdin, written by a feeder thread. A pipe cannot go through
``installer.runner.run``, which waits for the process to end; it uses the
same clean environment and reports failures the same way.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import IO, Any, Protocol, cast

from installer.errors import GpubundleError, VerificationError
from installer.runner import clean_env, tail

READ_SIZE = 1 << 20

# The air-gapped host cannot fetch a decoder: the zipapp is the one that carries it.
_INSTALL_HINT = (
    "run the installer as 'sh gpubundle-installer.pyz' (it carries zstandard, "
    "nothing to install), copied beside the bundle from the build machine"
)


class ByteSource(Protocol):
    """Anything with ``read(size)``: an open file, a pipe, the chained parts of a bundle."""

    def read(self, size: int = -1, /) -> bytes: ...


class _Checked:
    """A read-only stream that turns decoder failures into VerificationError."""

    def __init__(self, raw: Any, errors: tuple[type[BaseException], ...], what: str) -> None:
        self._raw = raw
        self._errors = errors
        self._what = what

    def read(self, size: int = -1) -> bytes:
        try:
            data: bytes = self._raw.read(size)
        except self._errors as exc:
            raise damaged(self._what, str(exc)) from exc
        return data

    def readable(self) -> bool:
        return True


def damaged(what: str, reason: str) -> VerificationError:
    return VerificationError(
        f"{what} is not a valid zstd stream: {reason}",
        hint="the file is truncated or damaged; copy it again from the build machine",
    )


def _stdlib_zstd() -> Any:
    """``compression.zstd`` (Python 3.14+), or None."""
    try:
        return importlib.import_module("compression.zstd")
    except ImportError:
        return None


def backend() -> str:
    """'compression.zstd', 'zstandard', 'zstd' (the command) or '' when none is available."""
    if _stdlib_zstd() is not None:
        return "compression.zstd"
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return "zstd" if shutil.which("zstd") else ""
    return "zstandard"


@contextmanager
def open_zstd(source: Path | ByteSource, *, prefer: str = "") -> Iterator[_Checked]:
    """Yield a readable stream of the decompressed content of ``source`` (a path or a stream).

    ``prefer`` ('compression.zstd', 'zstandard' or 'zstd') forces a backend, for tests.
    """
    what = str(source) if isinstance(source, Path) else str(getattr(source, "name", "the bundle"))
    chosen = prefer or backend()
    logging.getLogger(__name__).debug("zstd: %s", chosen or "none")
    if chosen == "compression.zstd":
        zstd = _stdlib_zstd()
        with ExitStack() as stack:
            fh = stack.enter_context(source.open("rb")) if isinstance(source, Path) else source
            reader = stack.enter_context(zstd.ZstdFile(fh, mode="rb"))
            yield _Checked(reader, (zstd.ZstdError, EOFError), what)
        return
    if chosen == "zstandard":
        import zstandard

        with ExitStack() as stack:
            fh = stack.enter_context(source.open("rb")) if isinstance(source, Path) else source
            reader = zstandard.ZstdDecompressor().stream_reader(
                cast("IO[bytes]", fh), read_size=READ_SIZE, read_across_frames=True
            )
            yield _Checked(reader, (zstandard.ZstdError,), what)
        return
    if chosen == "zstd":
        with _zstd_pipe(source, what) as stream:
            yield _Checked(stream, (), what)
        return
    raise GpubundleError("cannot decompress the bundle: no zstd decoder", hint=_INSTALL_HINT)


class _Feeder(threading.Thread):
    """Copies a stream into the decoder's stdin; keeps the first error for the caller."""

    def __init__(self, source: ByteSource, sink: IO[bytes]) -> None:
        super().__init__(name="gpubundle-zstd-feed", daemon=True)
        self.source, self.sink = source, sink
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            while chunk := self.source.read(READ_SIZE):
                self.sink.write(chunk)
        except BrokenPipeError:
            pass  # the decoder stopped reading: it failed, or the caller stopped early
        except Exception as exc:  # raised again in the caller's thread
            self.error = exc
        finally:
            with suppress(BrokenPipeError):
                self.sink.close()


@contextmanager
def _zstd_pipe(source: Path | ByteSource, what: str) -> Iterator[IO[bytes]]:
    fed = not isinstance(source, Path)
    argv = ["zstd", "-dc"] if fed else ["zstd", "-dc", "--", str(source)]
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if fed else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean_env(),
            bufsize=READ_SIZE,
        )
    except FileNotFoundError as exc:
        raise GpubundleError("zstd not found", hint=_INSTALL_HINT) from exc
    assert proc.stdout is not None and proc.stderr is not None
    feeder = None
    if not isinstance(source, Path):
        assert proc.stdin is not None
        feeder = _Feeder(source, proc.stdin)
        feeder.start()
    finished = False
    try:
        yield proc.stdout
        # The caller read to the end: the decoder must have succeeded.
        proc.stdout.read()
        finished = True
    finally:
        if not finished:
            proc.kill()
        proc.stdout.close()
        stderr = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        code = proc.wait()
        if feeder is not None:
            feeder.join()
    if feeder is not None and feeder.error is not None:
        raise feeder.error
    if code != 0:
        raise damaged(what, "; ".join(tail(stderr, 5)) or f"zstd exited with {code}")
