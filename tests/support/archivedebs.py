"""Real .debs of a target's distribution archive, for tests that build or unpack them:
the target's sources fetched and verified with the bundler's own RepoClient, the roots
resolved as apt would, each .deb fetched against its signed hash (cached)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bundler.buildplan import planned_package
from bundler.fetch import fetch_packages
from bundler.http import make_session
from bundler.index import PackageIndex
from bundler.repo import RepoClient
from bundler.resolver import resolve
from bundler.targets import load_target
from installer.console import Console


def fetch_debs(
    distro: str, roots: Sequence[str], cache_dir: Path, arch: str = "amd64"
) -> list[Path]:
    """The .debs of ``roots``' closure in ``distro``'s archive (NVIDIA's source left out)."""
    target = load_target(distro)
    session = make_session()
    client = RepoClient(session, cache_dir / "apt-indices")
    sources = [client.fetch(s, arch) for s in target.sources if s.id != "nvidia"]
    indices = [
        PackageIndex(s.source_id, s.base_url, path.read_bytes(), arch)
        for s in sources
        for path in s.packages_files
    ]
    resolution = resolve(indices, tuple(roots), arch=arch)
    planned = [planned_package(record) for record in resolution.packages]
    fetched = fetch_packages(session, planned, cache_dir / "verifyimage", Console(quiet=True))
    return [item.path for item in fetched]
