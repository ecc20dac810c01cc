"""The pure half of ``gpubundle build``: options → resolution inputs → plan → pins → manifest.

No network, no Docker, no disk: each function maps data to data, so the planning
rules (what is bundled, how it is named, the reproducible timestamp) are unit-tested
on their own. bundler.build runs the steps around them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path

from bundler import images as imagelib
from bundler.index import PackageRecord
from bundler.plan import BUILTIN, REGISTRY, BuildPlan, PlannedImage, PlannedPackage
from bundler.resolver import Resolution, toolkit_family_pins
from installer import __version__, advisories, exposure, layout
from installer.errors import ExitCode, GpubundleError
from installer.manifest import (
    FileEntry,
    ImagePin,
    Manifest,
    PackagePin,
    SourceRecord,
    VulnerabilityPin,
)
from installer.openpgp import armor

INSTALLER_NAME = "gpubundle-installer.pyz"
TOOLKIT = "nvidia-container-toolkit"
DOCKER_PACKAGE = "docker.io"


# -- pure: options → plan → manifest ------------------------------------------------


@dataclass(frozen=True)
class BuildOptions:
    distro: str
    arch: str = "amd64"
    toolkit_version: str = ""  # exact version of the toolkit family; "" = newest
    with_docker: bool = False
    with_compose: bool = False  # also the target's Compose (Target.compose)
    extra_packages: tuple[str, ...] = ()
    images: tuple[str, ...] = ()  # registry images to pull and bundle as well (--image)
    builtin_image: bool = True  # the verification image built from the distro's .debs
    target_status: Path | None = None
    mirrors: Mapping[str, str] = field(default_factory=dict)
    keys: Mapping[str, Path] = field(default_factory=dict)
    sign_key: str = ""
    gnupghome: Path | None = None
    output: Path | None = None
    cache_dir: Path = Path(".cache/gpubundle")
    dry_run: bool = False
    split_size: int = 0  # bytes per part; 0 = one file
    allow_vulnerable: bool = False  # bundle a toolkit with known critical or high issues


def resolution_inputs(
    options: BuildOptions, compose_package: str = ""
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The root packages and exact-version pins that resolution starts from;
    ``compose_package``: the target's Compose, bundled with --with-compose."""
    roots = [TOOLKIT]
    if options.with_docker:
        roots.append(DOCKER_PACKAGE)
    if options.with_compose and compose_package:
        roots.append(compose_package)
    roots += options.extra_packages
    pins = toolkit_family_pins(options.toolkit_version) if options.toolkit_version else {}
    return tuple(dict.fromkeys(roots)), pins


def verify_image_tag(distro: str, arch: str) -> str:
    return f"gpubundle/verify:{distro}-{arch}"


def planned_package(record: PackageRecord) -> PlannedPackage:
    return PlannedPackage(
        name=record.name,
        version=record.version,
        architecture=record.architecture,
        size=record.size,
        sha256=record.sha256,
        filename=record.filename,
        source=record.source_id,
        url=record.url,
    )


def checked_packages(resolution: Resolution) -> tuple[PlannedPackage, ...]:
    """The resolved packages by name; refuses any whose index gives no size or SHA256."""
    unusable = [
        f"{r.name} {r.version} from {r.source_id}: the index gives no SHA256 or size"
        for r in resolution.packages
        if not r.sha256 or r.size <= 0 or not r.filename
    ]
    if unusable:
        raise GpubundleError(
            "some packages cannot be checked after download",
            hint="use a mirror whose Packages index lists SHA256 and Size (--mirror ID=URL)",
            details=unusable,
        )
    return tuple(planned_package(r) for r in sorted(resolution.packages, key=lambda r: r.name))


def plan_images(
    options: BuildOptions, verify: Resolution | None, refs: Sequence[str]
) -> tuple[PlannedImage, ...]:
    """The builtin verification image (from ``verify``, the resolution of
    VERIFY_IMAGE_ROOTS) first, then each registry reference once."""
    images = []
    if verify is not None:
        tag = verify_image_tag(options.distro, options.arch)
        images.append(
            PlannedImage(tag, BUILTIN, layout.VERIFY_IMAGE_ARCHIVE, checked_packages(verify))
        )
    for ref in dict.fromkeys(refs):
        imagelib.parse_ref(ref)
        images.append(PlannedImage(ref, REGISTRY, layout.IMAGES_ARCHIVE))
    return tuple(images)


def make_plan(
    options: BuildOptions,
    roots: Sequence[str],
    sources: Sequence[SourceRecord],
    resolution: Resolution,
    installed: Mapping[str, PackageRecord],
    images: Sequence[str],
    verify: Resolution | None = None,
    runtime: tuple[str, Resolution] | None = None,
) -> BuildPlan:
    """The plan of a resolution (and of the verification image's, when there is one, and
    of the carried interpreter's: its version and resolution, bundler/runtime.py);
    refuses packages whose index gives no size or SHA256."""
    packages = checked_packages(resolution)
    planned_images = plan_images(options, verify, images)
    toolkit = next((r for r in resolution.packages if r.name == TOOLKIT), installed.get(TOOLKIT))
    return BuildPlan(
        distro=options.distro,
        arch=options.arch,
        toolkit_version=toolkit.version if toolkit else options.toolkit_version,
        requested=tuple(roots),
        with_docker=options.with_docker,
        sources=tuple(sources),
        packages=packages,
        images=planned_images,
        runtime_python=runtime[0] if runtime else "",
        runtime=checked_packages(runtime[1]) if runtime else (),
    )


def toolkit_vulnerabilities(
    version: str, table: advisories.AdvisoryTable, allow: bool
) -> tuple[VulnerabilityPin, ...]:
    """The known vulnerabilities of toolkit ``version``; refuses (exit 2, like a missing
    --yes) one with a critical or high issue unless ``allow`` (--allow-vulnerable)."""
    found = table.affecting(version) if version else ()
    serious = advisories.blocking(found)
    if serious and not allow:
        raise GpubundleError(
            f"{TOOLKIT} {version} has known {'/'.join(sorted({a.severity for a in serious}))} "
            f"vulnerabilities: {', '.join(a.id for a in serious)}",
            hint=f"build {advisories.fixed_in(found)} or newer (--toolkit-version, or leave it "
            "out for the newest), or pass --allow-vulnerable to bundle it anyway",
            details=[vulnerability_line(a) for a in found] + [f"advisory table of {table.date}"],
            code=ExitCode.USAGE,
        )
    return exposure.pins(found)


def vulnerability_line(a: advisories.Advisory) -> str:
    return f"{a.id} ({a.severity}, CVSS {a.cvss}): fixed in {a.fixed}; {a.bulletin}"


def package_pins(plan: BuildPlan) -> list[PackagePin]:
    """The manifest's pins: the plan's packages under their canonical bundle file names."""
    return [
        PackagePin(
            name=p.name,
            version=p.version,
            architecture=p.architecture,
            size=p.size,
            sha256=p.sha256,
            filename=layout.repo_deb(layout.deb_filename(p.name, p.version, p.architecture)),
            source=p.source,
        )
        for p in plan.packages
    ]


def make_manifest(
    plan: BuildPlan,
    python: str,
    packages: Sequence[PackagePin],
    images: Sequence[ImagePin],
    fingerprint: str,
    epoch: int,
    files: Sequence[FileEntry],
) -> Manifest:
    return Manifest(
        format=layout.FORMAT_VERSION,
        created_by=f"gpubundle {__version__}",
        source_date_epoch=epoch,
        distro=plan.distro,
        arch=plan.arch,
        python=python,
        toolkit_version=plan.toolkit_version,
        signer_fingerprint=fingerprint,
        requested=plan.requested,
        sources=plan.sources,
        packages=tuple(packages),
        images=tuple(images),
        files=tuple(sorted(files, key=lambda f: f.path)),
        advisories_date=plan.advisories_date,
        vulnerabilities=plan.vulnerabilities,
    )


def release_epoch(raw: bytes) -> int | None:
    """The ``Date`` of a Release or (the signed part of) an InRelease file, as a Unix time."""
    text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
    if text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        text = text.partition("\n\n")[2].partition("\n-----BEGIN PGP SIGNATURE-----")[0]
    for line in text.split("\n"):
        if line.startswith("Date:"):
            try:
                return int(parsedate_to_datetime(line[5:].strip()).timestamp())
            except (TypeError, ValueError):
                return None
    return None


def source_date_epoch(
    release_dates: Iterable[int | None], env: Mapping[str, str] | None = None
) -> int:
    """SOURCE_DATE_EPOCH when set, else the newest upstream Release date: same inputs, same bytes."""
    value = (os.environ if env is None else env).get("SOURCE_DATE_EPOCH", "").strip()
    if value:
        if not value.isdigit():
            raise GpubundleError(
                f"SOURCE_DATE_EPOCH={value!r} is not a Unix time",
                hint="set it to whole seconds since 1970, e.g. SOURCE_DATE_EPOCH=$(date +%s)",
            )
        return int(value)
    dates = [d for d in release_dates if d is not None]
    if not dates:
        raise GpubundleError(
            "no upstream Release file has a Date to stamp the bundle with",
            hint="set SOURCE_DATE_EPOCH to the time the bundle should carry",
        )
    return max(dates)


def default_output(plan: BuildPlan) -> Path:
    version = plan.toolkit_version or "unknown"
    return Path(f"gpubundle-{plan.distro}-{plan.arch}-{version}.tar.zst")


def install_command(bundle_name: str, fingerprint: str) -> str:
    return f"sudo sh {INSTALLER_NAME} install {bundle_name} --trust {fingerprint}"


def armored_keys(material: Sequence[bytes]) -> bytes:
    """Key files as one armoured text: armoured ones as they are, binary ones armoured."""
    blocks = []
    for item in material:
        if item.lstrip().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"):
            blocks.append(item.strip() + b"\n")
        else:
            blocks.append(armor(item))
    return b"".join(blocks)
