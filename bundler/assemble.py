"""The heavy half of ``gpubundle build``: fetch, images, local repo, installer, sign, pack.

Imported only once the plan exists and a bundle is to be written, so that
``gpubundle build --dry-run`` loads none of it (bench/bench_dryrun.py). Reads top
to bottom as the steps run, each announced and timed by the caller's ``step``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from bundler import images as imagelib
from bundler.buildplan import (
    INSTALLER_NAME,
    BuildOptions,
    armored_keys,
    default_output,
    install_command,
    make_manifest,
    package_pins,
    release_epoch,
    source_date_epoch,
)
from bundler.fetch import fetch_packages
from bundler.httpclient import HttpClient
from bundler.localrepo import repo_files
from bundler.pack import file_entries, pack_into, write_bundle
from bundler.plan import BuildPlan, PlannedImage
from bundler.repo import FetchedSource
from bundler.runtime import runtime_tar
from bundler.sbom import make_sbom
from bundler.selfrun import Runtime
from bundler.signing import Signer
from bundler.split import stale_outputs, write_split
from bundler.targets import Target
from bundler.verifyimage import build_verification_image
from bundler.zipapp import build_installer
from installer import advisories, layout
from installer.console import Console
from installer.errors import GpubundleError
from installer.manifest import ImagePin, PackagePin


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


class Steps(Protocol):
    seconds: dict[str, float]

    def __call__(self, name: str, message: str) -> AbstractContextManager[None]: ...


def assemble(
    options: BuildOptions,
    target: Target,
    plan: BuildPlan,
    sources: list[FetchedSource],
    signer: Signer,
    session: HttpClient,
    console: Console,
    step: Steps,
) -> BuildResult:
    """Everything after planning: the bundle and the installer beside it."""
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
        with step("sbom", "writing the SBOM"):
            found = advisories.load_table().affecting(plan.toolkit_version)
            listed = {v.id for v in plan.vulnerabilities}
            bom = make_sbom(
                plan, target.distro_id, target.version, image_pins,
                [a for a in found if a.id in listed], epoch,
            )  # fmt: skip
            members += write_files(work, {layout.SBOM: bom})
        with step("repo", "writing the signed local repository"):
            members += write_files(work, repo_metadata(debs, sources, signer, epoch))
        carried = None
        if plan.runtime:
            message = f"fetching python{plan.runtime_python} for hosts without python3 3.8+"
            with step("runtime", message):
                carried = carried_runtime(plan, options.cache_dir, session, signer, epoch, console)
        with step("installer", "building the installer"):
            pyz = build_installer(
                work / INSTALLER_NAME, options.cache_dir, [target.python], options.arch, carried
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


def carried_runtime(
    plan: BuildPlan,
    cache_dir: Path,
    session: HttpClient,
    signer: Signer,
    epoch: int,
    console: Console,
) -> Runtime:
    """The carried interpreter's .debs, fetched and checked, as one tar signed by the
    bundle key (bundler/selfrun.py puts it into the installer)."""
    fetched = fetch_packages(session, plan.runtime, cache_dir, console)
    debs = [
        (PurePosixPath(pkg.filename).name, item.path)
        for pkg, item in zip(plan.runtime, fetched, strict=True)
    ]
    tar = runtime_tar(debs, epoch)
    signature = signer.sign_detached(tar, timestamp=epoch)
    return Runtime(plan.runtime_python, signer.public_key(), signature, tar)


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
