"""NVIDIA's real published repository metadata, the tests' input: found, or fetched by pinned hash.

Tests read NVIDIA's real ``Packages``/``InRelease`` files and key. They come from
``../shared/fixtures/nvidia`` beside the checkout when it is there (GPUBUNDLE_SHARED
overrides), else from ``.cache/nvidia-fixtures``, which ``make fixtures`` (this module
run as a program) fills from NVIDIA's published tree at a pinned commit, each file
checked against the size and sha256 below before it is renamed into place. A mirror
of that tree can stand in for GitHub with GPUBUNDLE_NVIDIA_FIXTURES_URL (a fresh clone
inside a network that reaches neither GitHub nor ../shared).

Fetching is never done by a test itself: the unit tier opens no sockets.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
CACHE_DIR = REPO_ROOT / ".cache" / "nvidia-fixtures"

# The gh-pages commit of NVIDIA/libnvidia-container that published 1.20.1: the hashes in
# its InRelease files refer to exactly these Packages files.
PUBLISHED_COMMIT = "69f4ab797b0c6df3892f9136f7c734dac72d67fe"
PUBLISHED_URL = f"https://raw.githubusercontent.com/NVIDIA/libnvidia-container/{PUBLISHED_COMMIT}"
MIRROR_ENV = "GPUBUNDLE_NVIDIA_FIXTURES_URL"


@dataclass(frozen=True)
class PinnedFile:
    path: str  # relative to the fixtures directory and to the published tree
    size: int
    sha256: str


PINNED_FILES = (
    PinnedFile(
        "stable/deb/amd64/Packages",
        178415,
        "6453e9147bc1e294481771e63d9bc8c0de075add69cb34ee9762ea5025aad0b3",
    ),
    PinnedFile(
        "stable/deb/amd64/InRelease",
        1477,
        "7fa8e870c5bf936c0f13178424b264ad940ddfbef5dfa113e4904713a0fe627a",
    ),
    PinnedFile(
        "stable/deb/arm64/Packages",
        178428,
        "56cc37ae026860751f891b3ad75c7a5500958589ecafbabd59e1b45b2c147307",
    ),
    PinnedFile(
        "stable/deb/arm64/InRelease",
        1477,
        "c1f71ac3e6deb22c83046c2fd96549b9f35a0b84efaeac4e9df065b2490a3f04",
    ),
    # The same bytes ship as manifests/keys/nvidia.asc: copied from there, never fetched.
    PinnedFile("gpgkey", 4666, "dbb305b415ff3effbd6ae0bc7b73c1b0f4d8a8e3a4db234d0dee1a934a4e5100"),
)
SHIPPED_KEY = REPO_ROOT / "manifests" / "keys" / "nvidia.asc"


def shared_fixtures_dir() -> Path:
    """``../shared/fixtures/nvidia`` beside the checkout; GPUBUNDLE_SHARED overrides ../shared."""
    shared = Path(os.environ.get("GPUBUNDLE_SHARED", REPO_ROOT.parent / "shared"))
    return shared / "fixtures" / "nvidia"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def problems(directory: Path) -> list[str]:
    """What keeps ``directory`` from being the pinned fixtures: missing or changed files."""
    found = []
    for pinned in PINNED_FILES:
        path = directory / pinned.path
        if not path.is_file():
            found.append(f"{path}: missing")
        elif path.stat().st_size != pinned.size or _sha256(path) != pinned.sha256:
            found.append(f"{path}: not the pinned file (sha256 {pinned.sha256})")
    return found


def locate(candidates: tuple[Path, ...] | None = None) -> tuple[Path | None, list[str]]:
    """The first complete fixtures directory, or None and why each candidate failed."""
    why: list[str] = []
    for directory in candidates or (shared_fixtures_dir(), CACHE_DIR):
        found = problems(directory)
        if not found:
            return directory, []
        why.append(f"{directory}: {found[0]}" + (f" (+{len(found) - 1} more)" if found[1:] else ""))
    return None, why


def required_dir() -> Path:
    """The fixtures directory, or FileNotFoundError saying where it was looked for and what to do."""
    found, why = locate()
    if found is None:
        raise FileNotFoundError(
            "NVIDIA's published metadata is not here: " + "; ".join(why) + "; run `make "
            "fixtures` (it fetches them by pinned hash) or put ../shared/fixtures/nvidia "
            "beside the checkout"
        )
    return found


def fetch(dest: Path, base_url: str, timeout: float = 30.0) -> None:
    """Download every pinned file under ``base_url`` into ``dest``, each checked before rename.

    Raises OSError (URLError included) or ValueError (a file that is not the pinned one);
    nothing unverified is left in ``dest``.
    """
    for pinned in PINNED_FILES:
        target = dest / pinned.path
        if target.is_file() and _sha256(target) == pinned.sha256:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if pinned.path == "gpgkey":
            data = SHIPPED_KEY.read_bytes()
        else:
            url = f"{base_url.rstrip('/')}/{pinned.path}"
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data = response.read(pinned.size + 1)
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != pinned.size or digest != pinned.sha256:
            raise ValueError(
                f"{pinned.path}: got {len(data)} bytes, sha256 {digest}; "
                f"pinned {pinned.size} bytes, sha256 {pinned.sha256}"
            )
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
            tmp.write(data)
        Path(tmp.name).replace(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Make NVIDIA's pinned repository metadata available to the tests."
    )
    parser.add_argument(
        "--url",
        default=os.environ.get(MIRROR_ENV, PUBLISHED_URL),
        help=f"the published tree to fetch from (default: ${MIRROR_ENV} or {PUBLISHED_URL})",
    )
    args = parser.parse_args(argv)
    found, _ = locate()
    if found is not None:
        print(f"NVIDIA fixtures: {found}", file=sys.stderr)
        return 0
    try:
        fetch(CACHE_DIR, args.url)
    except (OSError, ValueError) as exc:
        # Not fatal here: the tests that need them then skip with this reason (fail in CI).
        print(
            f"NVIDIA fixtures: cannot fetch from {args.url}: {exc}\n"
            f"hint: put ../shared/fixtures/nvidia beside the checkout, or set {MIRROR_ENV} "
            "to a mirror of NVIDIA's published libnvidia-container tree",
            file=sys.stderr,
        )
        return 0
    print(f"NVIDIA fixtures: fetched into {CACHE_DIR}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
