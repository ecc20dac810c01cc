"""The build plan: the output of resolution and the only input of fetching and packing.

``gpubundle build --dry-run --json`` prints ``BuildPlan.as_json()``; the rest
of the build reads nothing else, so a plan is also a test fixture and the seed
of an SBOM.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from installer.manifest import SourceRecord


@dataclass(frozen=True)
class PlannedPackage:
    """One .deb to fetch: what apt would install, where to get it, and its expected hash."""

    name: str
    version: str
    architecture: str
    size: int
    sha256: str
    filename: str  # the upstream Filename field, relative to the source's base URL
    source: str  # source id
    url: str  # absolute download URL (base URL of the source + filename)


@dataclass(frozen=True)
class BuildPlan:
    distro: str
    arch: str
    toolkit_version: str  # the nvidia-container-toolkit version chosen
    requested: tuple[str, ...]  # the root package names resolution started from
    with_docker: bool
    sources: tuple[SourceRecord, ...]
    packages: tuple[PlannedPackage, ...]  # sorted by name
    images: tuple[str, ...]  # image references, validated before any download

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_size"] = sum(p.size for p in self.packages)
        return data
