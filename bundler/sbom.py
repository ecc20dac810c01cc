"""The bundle's SBOM: CycloneDX 1.6 JSON of every .deb and image, with the toolkit's VEX.

Made from the plan (what resolution chose, with each .deb's verified sha256 and where it
came from), the image pins (their digests) and the advisory table, through
cyclonedx-python-lib. It is a bundle member listed in the manifest, so the bundle's
signature covers it; ``gpubundle sbom BUNDLE`` prints it after verifying. Byte for byte
the same for the same inputs: the serial number is derived from the content and the
timestamp is the bundle's SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal

from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.impact_analysis import ImpactAnalysisState
from cyclonedx.model.vulnerability import (
    BomTarget,
    Vulnerability,
    VulnerabilityAnalysis,
    VulnerabilityRating,
    VulnerabilityScoreSource,
    VulnerabilitySeverity,
    VulnerabilitySource,
)
from cyclonedx.output import make_outputter
from cyclonedx.schema import OutputFormat, SchemaVersion
from packageurl import PackageURL

from bundler.plan import BuildPlan, PlannedPackage
from installer import __version__
from installer.advisories import Advisory
from installer.manifest import ImagePin

SCHEMA = SchemaVersion.V1_6
TOOLKIT = "nvidia-container-toolkit"


def purl(package: PlannedPackage, distro_id: str, distro_version: str) -> str:
    """``pkg:deb/ubuntu/libc6@2.35-0ubuntu3.8?arch=amd64&distro=ubuntu-22.04``."""
    return PackageURL(
        type="deb",
        namespace=distro_id,
        name=package.name,
        version=package.version,
        qualifiers={"arch": package.architecture, "distro": f"{distro_id}-{distro_version}"},
    ).to_string()


def _deb(
    package: PlannedPackage, distro_id: str, distro_version: str, repo_url: str, within: str = ""
) -> Component:
    ref = purl(package, distro_id, distro_version)
    return Component(
        type=ComponentType.LIBRARY if package.name != TOOLKIT else ComponentType.APPLICATION,
        name=package.name,
        version=package.version,
        # A .deb both in the bundle and inside an image is two components: each needs its
        # own bom-ref, or the library invents random ones (and the SBOM is not reproducible).
        bom_ref=f"{within}{ref}",
        purl=PackageURL.from_string(ref),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=package.sha256)],
        external_references=[
            ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(package.url))
        ],
        properties=[
            Property(name="gpubundle:source", value=package.source),
            Property(name="gpubundle:repository", value=repo_url),
        ],
    )


def _image(pin: ImagePin, parts: Sequence[Component]) -> Component:
    digest = pin.digest.partition(":")[2] if pin.digest.startswith("sha256:") else ""
    return Component(
        type=ComponentType.CONTAINER,
        name=pin.ref,
        version=pin.digest,
        bom_ref=f"image:{pin.ref}@{pin.digest}",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest)] if digest else [],
        properties=[
            Property(name="gpubundle:image_id", value=pin.image_id),
            Property(name="gpubundle:archive", value=pin.archive),
        ],
        components=parts,
    )


def _vex(advisory: Advisory, toolkit_ref: str) -> Vulnerability:
    return Vulnerability(
        bom_ref=f"vex:{advisory.id}",
        id=advisory.id,
        source=VulnerabilitySource(name="NVIDIA", url=XsUri(advisory.bulletin)),
        ratings=[
            VulnerabilityRating(
                score=Decimal(str(advisory.cvss)),
                severity=VulnerabilitySeverity(advisory.severity),
                method=VulnerabilityScoreSource.CVSS_V3_1,
            )
        ],
        description=advisory.summary,
        recommendation=f"upgrade {TOOLKIT} to {advisory.fixed} or newer",
        analysis=VulnerabilityAnalysis(
            state=ImpactAnalysisState.IN_TRIAGE,
            detail=f"the bundled version is at or before {advisory.last_affected}, the newest "
            "affected one; whether the host's configuration is exposed is not judged here",
        ),
        affects=[BomTarget(ref=toolkit_ref)],
    )


def make_sbom(
    plan: BuildPlan,
    distro_id: str,
    distro_version: str,
    images: Sequence[ImagePin],
    found: Sequence[Advisory],
    epoch: int,
) -> bytes:
    """The SBOM's JSON bytes (CycloneDX 1.6)."""
    repos = {s.id: s.url for s in plan.sources}

    def deb(p: PlannedPackage, within: str = "") -> Component:
        return _deb(p, distro_id, distro_version, repos.get(p.source, ""), within)

    components = [deb(p) for p in plan.packages]
    built = {i.ref: i for i in plan.images}
    for pin in images:
        planned = built.get(pin.ref)
        parts = [deb(p, f"image:{pin.ref}/") for p in (planned.packages if planned else ())]
        components.append(_image(pin, parts))
    toolkit = next((c for c in components if c.name == TOOLKIT), None)
    vex = [_vex(a, str(toolkit.bom_ref)) for a in found] if toolkit is not None else []
    seed = "\n".join(
        [plan.distro, plan.arch, *(f"{p.name} {p.version} {p.sha256}" for p in plan.packages)]
        + [f"{i.ref} {i.digest}" for i in images]
        + [a.id for a in found]
    )
    root = Component(
        type=ComponentType.PLATFORM,
        name=f"gpubundle-{plan.distro}-{plan.arch}",
        version=plan.toolkit_version,
        bom_ref="gpubundle-bundle",
        properties=[Property(name="gpubundle:created_by", value=f"gpubundle {__version__}")],
    )
    bom = Bom(
        serial_number=uuid.uuid5(uuid.NAMESPACE_URL, "gpubundle:" + _sha(seed)),
        metadata=BomMetaData(
            timestamp=datetime.fromtimestamp(epoch, tz=timezone.utc),
            component=Component(
                type=ComponentType.PLATFORM,
                name=f"gpubundle-{plan.distro}-{plan.arch}",
                version=plan.toolkit_version,
                bom_ref="gpubundle-bundle",
                properties=[
                    Property(name="gpubundle:created_by", value=f"gpubundle {__version__}")
                ],
            ),
        ),
        components=components,
        vulnerabilities=vex,
    )
    bom.register_dependency(root, components)  # the bundle holds every component
    text = make_outputter(bom, OutputFormat.JSON, SCHEMA).output_as_string(indent=1)
    return text.encode() + b"\n"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
