"""Make compiled wheels stored in the installer zipapp importable; a no-op outside a zipapp.

Python cannot import compiled modules from inside a zip file. ``gpubundle
build`` stores the zstandard wheel for the target's Python and machine under
``_wheels/`` in ``gpubundle-installer.pyz``; ``activate()`` (called first by
the zipapp's ``__main__``) unpacks the matching one into a private directory
and puts it on ``sys.path``. The directory is a temporary one removed at
exit, so ``verify`` and ``--dry-run`` leave the host exactly as they found it
and uninstall has nothing of ours to chase; ``$GPUBUNDLE_PYLIB_DIR`` names a
kept one instead (keyed by the wheel's sha256). When no wheel fits, nothing
happens and ``installer.zstd_stream`` falls back to the ``zstd`` program.

A run killed with SIGKILL cannot remove its directory, so the name carries the
owner's pid (``gpubundle-pylib-<pid>-<random>``) and a ``.lock`` its owner holds
(flock) for as long as it lives; every run first removes those whose lock is free
(``sweep_dead``): a live run's, even one in another pid namespace, is never touched. When
the wheel cannot be unpacked (the temporary directory is full or read-only),
nothing is half-left: the run goes on without it and ``unpack_failure`` says
why and how many bytes it needed, which install's preflight reports (exit 4).

Standard library only: this runs before anything else is importable.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import io
import os
import platform
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

WHEELS_DIR = "_wheels"
PYLIB_ENV = "GPUBUNDLE_PYLIB_DIR"  # overrides where wheels are unpacked
_COMPLETE = ".complete"
_LOCK = ".lock"
PYLIB_PREFIX = "gpubundle-pylib-"
_PYLIB_NAME = re.compile(rf"{PYLIB_PREFIX}(?P<pid>[0-9]+)-[a-z0-9_]+")


@dataclass(frozen=True)
class UnpackFailure:
    directory: str
    needed_bytes: int
    reason: str


unpack_failure: UnpackFailure | None = None  # set by activate() when the wheel did not unpack


def wheel_fits(filename: str, python_tag: str, machine: str) -> bool:
    """Whether wheel ``filename`` is for CPython tag ``python_tag`` (e.g. cp310) on ``machine``."""
    stem = filename[: -len(".whl")] if filename.endswith(".whl") else filename
    parts = stem.split("-")
    if len(parts) < 5:
        return False
    pythons, abis, platforms = parts[-3].split("."), parts[-2].split("."), parts[-1].split(".")
    return (
        python_tag in pythons
        and (python_tag in abis or "abi3" in abis)
        and any(p.startswith("manylinux") and p.endswith("_" + machine) for p in platforms)
    )


def current_tag() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def _archive_path() -> str | None:
    """The zipapp this module was imported from, or None when it was imported from files."""
    archive = getattr(sys.modules[__name__].__loader__, "archive", None)  # zipimport
    return archive if isinstance(archive, str) else None


def _safe_members(wheel: zipfile.ZipFile) -> list[str]:
    names = wheel.namelist()
    for name in names:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise RuntimeError(f"unsafe path {name!r} in a bundled wheel")
    return names


def _unpack(data: bytes, target: Path) -> None:
    """Extract wheel ``data`` into ``target`` atomically (a sibling temp dir, then rename)."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as wheel:
            wheel.extractall(work, members=_safe_members(wheel))
        (work / _COMPLETE).write_text("")
        os.chmod(work, 0o755)
        try:
            os.rename(work, target)
        except OSError:
            if not (target / _COMPLETE).exists():  # not a concurrent run that won the race
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


def _held(lock: Path) -> bool | None:
    """Whether a live process holds ``lock`` (None: there is no lock file to ask)."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also drops a lock just taken
    return False


def dead_pylibs(temp_dir: Path, alive: Callable[[int], bool] = pid_alive) -> list[Path]:
    """Unpack directories in ``temp_dir`` of runs whose process is gone (ours only).

    A run holds ``.lock`` in its directory for its whole life (flock, released by the
    kernel when the process dies): a held lock keeps a directory whose pid means nothing
    here (a run in another pid namespace sharing /tmp); a free one, or none yet, leaves
    the judgement to the pid.
    """
    try:
        entries = list(os.scandir(temp_dir))
    except OSError:
        return []
    found = []
    for entry in entries:
        match = _PYLIB_NAME.fullmatch(entry.name)
        if match is None or not entry.is_dir(follow_symlinks=False):
            continue
        if entry.stat(follow_symlinks=False).st_uid != os.geteuid():
            continue
        pid = int(match["pid"])
        # Gone: no live holder of its lock, and (a run between mkdtemp and flock has none
        # yet) no process of its pid.
        if pid != os.getpid() and not _held(Path(entry.path) / _LOCK) and not alive(pid):
            found.append(Path(entry.path))
    return sorted(found)


def sweep_dead(temp_dir: Path, alive: Callable[[int], bool] = pid_alive) -> list[Path]:
    """Remove the unpack directories that killed runs left in ``temp_dir``."""
    gone = dead_pylibs(temp_dir, alive)
    for path in gone:
        shutil.rmtree(path, ignore_errors=True)
    return gone


_held_lock: list[int] = []  # the fd holding this run's .lock, open until the process ends


def _pylib_dir(digest: str, root: Path | None) -> Path:
    root = root or (Path(os.environ[PYLIB_ENV]) if os.environ.get(PYLIB_ENV) else None)
    if root is not None:
        return root / digest
    sweep_dead(Path(tempfile.gettempdir()))
    tmp = Path(tempfile.mkdtemp(prefix=f"{PYLIB_PREFIX}{os.getpid()}-"))
    atexit.register(shutil.rmtree, tmp, True)
    fd = os.open(tmp / _LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    _held_lock.append(fd)
    return tmp / digest


def activate(archive: str | None = None, root: Path | None = None) -> str | None:
    """Put the fitting bundled wheel on sys.path; returns the directory used, or None.

    ``archive`` defaults to the zipapp this module runs from; ``root`` to a
    temporary directory (see the module docstring).
    """
    archive = archive or _archive_path()
    if archive is None:
        return None
    tag, machine = current_tag(), platform.machine()
    with zipfile.ZipFile(archive) as pyz:
        fitting = sorted(
            name
            for name in pyz.namelist()
            if name.startswith(WHEELS_DIR + "/")
            and wheel_fits(PurePosixPath(name).name, tag, machine)
        )
        if not fitting:
            return None
        data = pyz.read(fitting[0])
    global unpack_failure
    try:
        target = _pylib_dir(hashlib.sha256(data).hexdigest()[:32], root)
        if not (target / _COMPLETE).exists():
            _unpack(data, target)
    except OSError as exc:
        # No room (or no write access) in the temporary directory: go on without the
        # wheel, leave nothing behind, and let the command say so.
        if root is None and not os.environ.get(PYLIB_ENV):
            for path in Path(tempfile.gettempdir()).glob(f"{PYLIB_PREFIX}{os.getpid()}-*"):
                shutil.rmtree(path, ignore_errors=True)
        unpack_failure = UnpackFailure(
            str(root or os.environ.get(PYLIB_ENV) or tempfile.gettempdir()),
            _unpacked_size(data),
            exc.strerror or str(exc),
        )
        return None
    sys.path.insert(0, str(target))
    return str(target)


def _unpacked_size(data: bytes) -> int:
    with zipfile.ZipFile(io.BytesIO(data)) as wheel:
        return sum(info.file_size for info in wheel.infolist())
