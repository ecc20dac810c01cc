"""Read a zstd file as a stream of decompressed bytes, with whatever the host offers.

In order: the ``zstandard`` module (the installer .pyz carries its wheels),
else a ``zstd -dc`` pipe (the zstd package), else a clear error saying what
to install. Either way memory stays bounded: zstd's window (at most 128 MiB,
the decoder's default limit) plus one read.

A pipe cannot go through ``installer.runner.run``, which waits for the
process to end; it uses the same clean environment and reports failures the
same way.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from installer.errors import GpubundleError, VerificationError
from installer.runner import clean_env, tail

READ_SIZE = 1 << 20

_INSTALL_HINT = (
    "run the installer as 'python3 gpubundle-installer.pyz' (it carries zstandard), "
    "or install zstd (apt-get install zstd) or the zstandard module (pip install zstandard)"
)


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


def backend() -> str:
    """'zstandard', 'zstd' (the command) or '' when neither is available."""
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return "zstd" if shutil.which("zstd") else ""
    return "zstandard"


@contextmanager
def open_zstd(path: Path, *, prefer: str = "") -> Iterator[_Checked]:
    """Yield a readable stream of ``path``'s decompressed content.

    ``prefer`` ('zstandard' or 'zstd') forces a backend, for tests.
    """
    chosen = prefer or backend()
    if chosen == "zstandard":
        import zstandard

        with path.open("rb") as fh:
            reader = zstandard.ZstdDecompressor().stream_reader(
                fh, read_size=READ_SIZE, read_across_frames=True
            )
            yield _Checked(reader, (zstandard.ZstdError,), str(path))
        return
    if chosen == "zstd":
        with _zstd_pipe(path) as stream:
            yield _Checked(stream, (), str(path))
        return
    raise GpubundleError("cannot decompress the bundle: no zstd decoder", hint=_INSTALL_HINT)


@contextmanager
def _zstd_pipe(path: Path) -> Iterator[IO[bytes]]:
    try:
        proc = subprocess.Popen(
            ["zstd", "-dc", "--", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean_env(),
            bufsize=READ_SIZE,
        )
    except FileNotFoundError as exc:
        raise GpubundleError("zstd not found", hint=_INSTALL_HINT) from exc
    assert proc.stdout is not None and proc.stderr is not None
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
    if code != 0:
        raise damaged(str(path), "; ".join(tail(stderr, 5)) or f"zstd exited with {code}")
