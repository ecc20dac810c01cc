"""The build plan: the output of resolution and the only input of fetching and packing.

It holds the .debs of the bundle's apt repository and the container images: the
builtin verification image with the .debs it is built from (these go into the image
only, never into the apt repository), then any registry images named with ``--image``.

``gpubundle build --dry-run --json`` prints ``BuildPlan.as_json()``; the rest
of the build reads nothing else, so a plan is also a test fixture and the seed
of an SBOM.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from installer.manifest import SourceRecord, VulnerabilityPin


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


BUILTIN = "builtin"  # built by gpubundle from the distro's .debs: no registry, no Docker
REGISTRY = "registry"  # pulled from its registry through Docker (--image)


@dataclass(frozen=True)
class PlannedImage:
    """One container image for the bundle, and the bundle archive it goes into."""

    ref: str  # the tag it loads as, e.g. "gpubundle/verify:ubuntu22.04-amd64"
    kind: str  # BUILTIN or REGISTRY
    archive: str  # its ``docker load`` archive in the bundle (installer.layout)
    packages: tuple[PlannedPackage, ...] = ()  # BUILTIN: the .debs it is made of, by name


@dataclass(frozen=True)
class BuildPlan:
    distro: str
    arch: str
    toolkit_version: str  # the nvidia-container-toolkit version chosen
    requested: tuple[str, ...]  # the root package names resolution started from
    with_docker: bool
    sources: tuple[SourceRecord, ...]
    packages: tuple[PlannedPackage, ...]  # sorted by name
    images: tuple[PlannedImage, ...]  # the builtin verification image first, then --image refs
    # The advisory table's date and the toolkit version's known vulnerabilities (with
    # --allow-vulnerable, the critical and high ones too).
    advisories_date: str = ""
    vulnerabilities: tuple[VulnerabilityPin, ...] = ()
    # The target's own python3.X (and gpgv) the installer carries for hosts without a
    # python3 3.8+ (bundler/runtime.py): its version, and the .debs, sorted by name.
    runtime_python: str = ""
    runtime: tuple[PlannedPackage, ...] = ()

    @property
    def verify_image(self) -> PlannedImage | None:
        """The builtin verification image, unless the build leaves images out."""
        return next((i for i in self.images if i.kind == BUILTIN), None)

    @property
    def registry_refs(self) -> tuple[str, ...]:
        """The references to pull with Docker; empty when no registry is needed."""
        return tuple(i.ref for i in self.images if i.kind == REGISTRY)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_size"] = sum(p.size for p in self.packages)  # the apt repository's .debs
        return data
