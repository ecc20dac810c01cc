"""Fetch every planned .deb into a pool named by its sha256, checking each against the plan.

Files are downloaded into an unverified area (``CACHE/partial/``), their size and
SHA256 compared with the plan (which took them from a verified Packages index),
and only then renamed into ``CACHE/pool/sha256/<hash>``. A crash leaves
partial files only; a re-run reuses every pool file without the network. All
mismatches are reported together, expected vs got.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bundler.http import download
from bundler.httpclient import HttpClient
from bundler.plan import PlannedPackage
from installer.console import Console
from installer.errors import GpubundleError

WORKERS = 4
_HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class FetchedPackage:
    package: PlannedPackage
    path: Path  # the verified pool file


def pool_path(cache_dir: Path, sha256: str) -> Path:
    return cache_dir / "pool" / "sha256" / sha256


def partial_path(cache_dir: Path, package: PlannedPackage) -> Path:
    """Where an unverified download lands; named by the expected hash so a re-run resumes it."""
    return cache_dir / "partial" / f"{package.sha256}.deb"


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def mismatch(package: PlannedPackage, size: int, sha256: str) -> str | None:
    """A line of evidence when a file is not what the plan promises, else None."""
    label = f"{package.name} {package.version} ({package.url})"
    if size != package.size:
        return f"{label}: size expected {package.size}, got {size}"
    if sha256 != package.sha256:
        return f"{label}: sha256 expected {package.sha256}, got {sha256}"
    return None


def _pooled(cache_dir: Path, package: PlannedPackage) -> Path | None:
    """The pool file when it is present and still intact; a damaged one is removed."""
    path = pool_path(cache_dir, package.sha256)
    if not path.is_file():
        return None
    if path.stat().st_size == package.size and hash_file(path) == package.sha256:
        return path
    path.unlink()
    return None


def _fetch_one(
    session: HttpClient,
    cache_dir: Path,
    package: PlannedPackage,
    progress: Callable[[int], None],
) -> str | None:
    """Download, verify and pool one package; returns a failure line instead of raising."""
    partial = partial_path(cache_dir, package)
    try:
        download(session, package.url, partial, expected_size=package.size, progress=progress)
    except GpubundleError as err:
        return f"{package.name} {package.version}: {err.message}"
    problem = mismatch(package, partial.stat().st_size, hash_file(partial))
    if problem:
        partial.unlink()
        return problem
    target = pool_path(cache_dir, package.sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, target)
    return None


def fetch_packages(
    session: HttpClient,
    packages: Sequence[PlannedPackage],
    cache_dir: Path,
    console: Console,
    *,
    workers: int = WORKERS,
) -> list[FetchedPackage]:
    """Make every package available in the pool; returns them in plan order.

    Raises one GpubundleError listing every package that could not be fetched
    or did not match the plan.
    """
    missing = [p for p in packages if _pooled(cache_dir, p) is None]
    if missing:
        total = sum(p.size for p in missing)
        console.info(
            f"downloading {len(missing)} of {len(packages)} packages "
            f"({total / 1e6:.1f} MB; {len(packages) - len(missing)} already in the cache)"
        )
        (cache_dir / "partial").mkdir(parents=True, exist_ok=True)
        lock = threading.Lock()
        with console.progress("packages", total) as bar:

            def advance(amount: int) -> None:
                with lock:
                    bar.advance(amount)

            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(
                    pool.map(lambda p: _fetch_one(session, cache_dir, p, advance), missing)
                )
        failures = [line for line in results if line]
        if failures:
            raise GpubundleError(
                f"{len(failures)} of {len(missing)} packages could not be fetched or did not "
                "match their verified index",
                hint="retry the build (verified files are kept); if a mirror keeps serving "
                "other bytes, use another one with --mirror ID=URL",
                details=failures,
            )
    else:
        console.info(f"all {len(packages)} packages already in the cache")
    return [FetchedPackage(p, pool_path(cache_dir, p.sha256)) for p in packages]
