"""``gpubundle build``, top to bottom as named steps.

sources (keys, signed Release, Packages) → resolve (the toolkit's closure and the
verification image's) → plan (``--dry-run`` stops here) → validate registry images →
fetch .debs → pull and save registry images → build the verification image →
local repo → installer → manifest → sign → pack. Each step reads only what the steps
before it produced. Docker is contacted only when ``--image`` names registry images. The pure parts (options → resolution inputs, resolution →
plan, plan → pins → manifest, the reproducible timestamp) live in
bundler.buildplan and are unit-tested on their own; this module runs the steps
that touch the network, Docker and the disk.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from bundler import images as imagelib
from bundler.buildplan import (
    INSTALLER_NAME,
    BuildOptions,
    armored_keys,
    default_output,
    install_command,
    make_manifest,
    make_plan,
    package_pins,
    release_epoch,
    resolution_inputs,
    source_date_epoch,
)
from bundler.dpkgstatus import installed_records, read_status
from bundler.fetch import fetch_packages
from bundler.http import make_session
from bundler.index import PackageIndex, PackageRecord
from bundler.localrepo import repo_files
from bundler.pack import file_entries, pack_into, write_bundle
from bundler.plan import BuildPlan, PlannedImage
from bundler.repo import FetchedSource, RepoClient
from bundler.resolver import resolve
from bundler.signing import Signer
from bundler.split import stale_outputs, write_split
from bundler.targets import Target, apply_overrides, load_target
from bundler.verifyimage import VERIFY_IMAGE_ROOTS, build_verification_image
from bundler.zipapp import build_installer
from installer import layout
from installer.console import Console
from installer.errors import ExitCode, GpubundleError
from installer.manifest import ImagePin, PackagePin

# -- the steps ------------------------------------------------------------------------

__all__ = ["BuildOptions", "BuildResult", "run_build"]


@dataclass(frozen=True)
class BuildResult:
    bundle: Path  # the bundle file, or with --split-size its parts index
    bundle_size: int  # of the whole bundle, split or not
    bundle_sha256: str
    installer: Path
    fingerprint: str
    command: str
    plan: BuildPlan
    timings: dict[str, float] = field(default_factory=dict)
    parts: tuple[Path, ...] = ()  # with --split-size, in order

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(bundle=str(self.bundle), installer=str(self.installer))
        data["parts"] = [str(part) for part in self.parts]
        data["plan"] = self.plan.as_json()
        return {"ok": True, **data}


class _Steps:
    """Announces each step and keeps how long it took."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str, message: str) -> Iterator[None]:
        self.console.step(message)
        start = time.monotonic()
        yield
        self.seconds[name] = round(time.monotonic() - start, 2)


def run_build(options: BuildOptions, console: Console) -> BuildPlan | BuildResult:
    """The whole build; with ``dry_run`` it stops after planning and returns the plan."""
    step = _Steps(console)
    # Every argument is checked before any work, in the order they are given: a bad one
    # is a usage error (exit 2), not a failed build.
    with _usage_errors():
        target = checked_target(options)
        signer = None if options.dry_run else Signer(options.sign_key, options.gnupghome)
    session = make_session()
    with step("sources", "fetching and verifying repository metadata"):
        sources = load_sources(target, options, session, console)
    with step("resolve", "resolving dependencies"):
        plan = plan_build(options, target, sources, console)
    if signer is None:
        return plan
    output = writable_output(options.output or default_output(plan))
    docker = None
    if plan.registry_refs:  # only registry images need Docker; the builtin one does not
        with step("validate", f"checking {len(plan.registry_refs)} image reference(s)"):
            docker = imagelib.connect()
            imagelib.validate(docker, plan.registry_refs)
    verify = plan.verify_image
    with step("fetch", f"fetching {len(plan.packages)} packages"):
        fetched = fetch_packages(session, plan.packages, options.cache_dir, console)
        image_debs: list[Path] = []
        if verify is not None:  # into the image only, never into the apt repository
            console.info(f"and the {len(verify.packages)} packages of {verify.ref}")
            image_fetched = fetch_packages(session, verify.packages, options.cache_dir, console)
            image_debs = [item.path for item in image_fetched]
    debs = [(pin, item.path) for pin, item in zip(package_pins(plan), fetched, strict=True)]
    image_pins: list[ImagePin] = []  # the builtin image first, as the installer proves it first
    pulled: list[ImagePin] = []
    members: list[tuple[str, Path]] = [(pin.filename, path) for pin, path in debs]
    if docker is not None:
        with step("images", "pulling and saving images"):
            pulled, archive = save_images(docker, plan, options.cache_dir, console)
            members.append((layout.IMAGES_ARCHIVE, archive))
    epoch = source_date_epoch(release_epoch(s.release_bytes) for s in sources)
    with (
        _disk_errors(output),
        tempfile.TemporaryDirectory(prefix=".gpubundle-build-", dir=output.parent) as tmp,
    ):
        work = Path(tmp)
        if verify is not None:
            with step("verify-image", f"building the verification image {verify.ref}"):
                pin, archive = make_verify_image(verify, image_debs, work, plan.arch, epoch)
                image_pins.append(pin)
                members.append((verify.archive, archive))
        image_pins += pulled
        with step("repo", "writing the signed local repository"):
            members += write_files(work, repo_metadata(debs, sources, signer, epoch))
        with step("installer", "building the installer"):
            pyz = build_installer(
                work / INSTALLER_NAME, options.cache_dir, [target.python], options.arch
            )
            members.append((layout.INSTALLER_PYZ, pyz))
        with step("manifest", "writing and signing the manifest"):
            manifest = make_manifest(
                plan, target.python, [pin for pin, _ in debs], image_pins,
                signer.fingerprint, epoch, file_entries(members),
            )  # fmt: skip
            manifest_bytes = manifest.to_json()
            head = {
                layout.MANIFEST: manifest_bytes,
                layout.MANIFEST_SIG: signer.sign_detached(manifest_bytes, timestamp=epoch),
                layout.SIGNER_KEY: signer.public_key(),
            }
        with step("pack", f"packing {output.name}"):
            total = sum(path.stat().st_size for _, path in members)
            with console.progress("bundle", total) as bar:
                written = pack(options, output, head, members, signer, epoch, bar.advance)
            installer = output.parent / INSTALLER_NAME
            installer_sig = signer.sign_detached(pyz.read_bytes(), timestamp=epoch)
            pyz.replace(installer)
            installer.with_name(INSTALLER_NAME + ".asc").write_bytes(installer_sig)
    for name, seconds in step.seconds.items():
        console.info(f"  {name:<10} {seconds:7.1f} s")
    return BuildResult(
        bundle=written.bundle,
        bundle_size=written.size,
        bundle_sha256=written.sha256,
        installer=installer,
        fingerprint=signer.fingerprint,
        command=install_command(written.bundle.name, signer.fingerprint),
        plan=plan,
        timings=step.seconds,
        parts=written.parts,
    )


def pack(
    options: BuildOptions,
    output: Path,
    head: dict[str, bytes],
    members: list[tuple[str, Path]],
    signer: Signer,
    epoch: int,
    progress: Callable[[int], None],
) -> Packed:
    """Write the bundle: one file, or with ``split_size`` its parts and their signed index."""
    if not options.split_size:
        digest = write_bundle(output, head, members, mtime=epoch, progress=progress)
        for stale in stale_outputs(output):
            if stale != output:  # parts of an earlier split build would contradict it
                stale.unlink()
        return Packed(output, output.stat().st_size, digest)
    split = write_split(
        output,
        options.split_size,
        lambda sink: pack_into(sink, head, members, mtime=epoch, progress=progress),
        signer_key=head[layout.SIGNER_KEY],
        fingerprint=signer.fingerprint,
        sign=lambda raw: signer.sign_detached(raw, timestamp=epoch),
    )
    return Packed(split.index, split.size, split.sha256, split.parts)


@dataclass(frozen=True)
class Packed:
    bundle: Path  # the bundle file, or its parts index
    size: int  # of the whole bundle
    sha256: str
    parts: tuple[Path, ...] = ()


def writable_output(output: Path) -> Path:
    """The absolute output path, once its directory is known to take new files."""
    output = output.absolute()
    if output.is_dir():
        raise GpubundleError(
            f"--output {output} is a directory", hint="name the bundle file, e.g. -o bundle.tar.zst"
        )
    with _disk_errors(output):
        output.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=output.parent).close()
    return output


@contextmanager
def _disk_errors(output: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise GpubundleError(
            f"cannot write beside {output}: {exc.strerror or exc}",
            hint="choose another --output directory, or free space and fix its permissions",
        ) from exc


@contextmanager
def _usage_errors() -> Iterator[None]:
    """A failure while checking the command line is exit 2, whatever raised it."""
    try:
        yield
    except GpubundleError as err:
        raise GpubundleError(err.message, err.hint, err.details, ExitCode.USAGE) from err


def checked_target(options: BuildOptions) -> Target:
    """The target with --mirror/--key applied, refused unless it can be built for --arch."""
    target = apply_overrides(load_target(options.distro), options.mirrors, options.keys)
    target.check_arch(options.arch)
    supported, why = target.installer_support()
    if not supported:
        raise GpubundleError(
            f"{target.name} cannot run the installer: {why}", hint="pick another --distro"
        )
    return target


def load_sources(
    target: Target, options: BuildOptions, session: requests.Session, console: Console
) -> list[FetchedSource]:
    """Each source's verified indices."""
    client = RepoClient(session, options.cache_dir / "indices")
    fetched = []
    for source in target.sources:
        console.info(f"  {source.id}: {source.url_for(options.arch)}")
        fetched.append(client.fetch(source, options.arch))
    return fetched


def plan_build(
    options: BuildOptions, target: Target, sources: list[FetchedSource], console: Console
) -> BuildPlan:
    """Resolve the roots over every verified index and turn the result into the plan."""
    indices = [
        PackageIndex(s.source_id, s.base_url, path.read_bytes(), options.arch)
        for s in sources
        for path in s.packages_files
    ]
    installed: dict[str, PackageRecord] = {}
    if options.target_status:
        status = read_status(options.target_status, options.arch)
        for name, pkg in sorted(status.items()):
            if pkg.is_half_installed:
                console.warn(f"on the target, {name} is {pkg.state}; apt will try to finish it")
        installed = installed_records(status)
    roots, pins = resolution_inputs(options)
    resolution = resolve(indices, roots, arch=options.arch, installed=installed, pins=pins)
    # The image is its own root filesystem: resolved from an empty status, never the target's.
    verify = (
        resolve(indices, VERIFY_IMAGE_ROOTS, arch=options.arch) if options.builtin_image else None
    )
    records = [s.record() for s in sources]
    return make_plan(options, roots, records, resolution, installed, options.images, verify)


def save_images(
    docker: Any, plan: BuildPlan, cache_dir: Path, console: Console
) -> tuple[list[ImagePin], Path]:
    """Pull the plan's images and save them in one archive, cached by the images it holds."""
    refs = plan.registry_refs
    pulled = imagelib.pull(docker, refs, console, plan.arch)
    pins = [dataclasses.replace(pin, archive=layout.IMAGES_ARCHIVE) for pin in pulled]
    archive = cache_dir / "images" / f"{imagelib.archive_key(pins)}.tar"
    if archive.exists():
        console.info(f"image archive already in the cache: {archive.name}")
    else:
        imagelib.save(docker, refs, archive)
    return pins, archive


def make_verify_image(
    image: PlannedImage, debs: Sequence[Path], work: Path, arch: str, epoch: int
) -> tuple[ImagePin, Path]:
    """Build the verification image from its verified .debs; no registry, no Docker."""
    output = work / image.archive
    info = build_verification_image(debs, output, tag=image.ref, arch=arch, source_date_epoch=epoch)
    planned = tuple((p.name, p.version) for p in image.packages)
    if info.packages != planned:
        raise GpubundleError(
            f"the .debs of {image.ref} are not the packages the plan resolved",
            hint="clear the build cache (--cache-dir) and build again",
            details=[f"planned {n} {v}" for n, v in planned]
            + [f"built from {n} {v}" for n, v in info.packages],
        )
    return dataclasses.replace(info.pin(), archive=image.archive), output


def repo_metadata(
    debs: list[tuple[PackagePin, Path]], sources: list[FetchedSource], signer: Signer, epoch: int
) -> dict[str, bytes]:
    """The signed local repository's metadata, plus the upstream evidence it came from."""
    files = dict(repo_files(debs, signer, epoch))
    for source in sources:
        suite = "flat" if source.suite == "/" else source.suite
        for name, content in source.metadata_files().items():
            files[layout.upstream_metadata(source.source_id, suite, name)] = content
        files[layout.upstream_key(source.source_id)] = armored_keys(source.keys.material)
    return files


def write_files(work: Path, files: dict[str, bytes]) -> list[tuple[str, Path]]:
    members = []
    for name, content in sorted(files.items()):
        path = work / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        members.append((name, path))
    return members
