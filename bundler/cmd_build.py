"""``gpubundle build``: the command line of bundler.build."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from bundler.build import BuildOptions, run_build
from bundler.plan import BuildPlan
from bundler.split import parse_size
from installer.cli import handle_errors, json_option
from installer.console import Console
from installer.errors import ExitCode, GpubundleError

if TYPE_CHECKING:
    from bundler.assemble import BuildResult

DEFAULT_CACHE = Path.home() / ".cache" / "gpubundle"


def _pairs(values: tuple[str, ...], option: str, what: str) -> dict[str, str]:
    """``ID=VALUE`` options as a dict; a malformed one is a usage error."""
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise GpubundleError(
                f"{option} {value!r}: expected ID={what}",
                hint=f"e.g. {option} nvidia="
                + ("http://mirror/nvidia" if what == "URL" else "key.asc"),
                code=ExitCode.USAGE,
            )
        pairs[key] = rest
    return pairs


@click.command()
@click.option(
    "--distro",
    required=True,
    help="Target distribution, e.g. ubuntu22.04 (see `gpubundle distros`).",
)
@click.option(
    "--arch", default="amd64", show_default=True, help="Target architecture (amd64, arm64)."
)
@click.option(
    "--toolkit-version",
    default="",
    help="Exact nvidia-container-toolkit version, e.g. 1.17.8-1 (default: newest).",
)
@click.option("--with-docker", is_flag=True, help="Also bundle the distribution's docker.io.")
@click.option(
    "--with-compose",
    is_flag=True,
    help="Also bundle the distribution's Docker Compose (docker-compose-v2 on Ubuntu, "
    "docker-compose on Debian 12); install then brings up a compose service that reserves "
    "the GPUs as NVIDIA's guide shows.",
)
@click.option(
    "--extra-package",
    "extra_packages",
    multiple=True,
    metavar="NAME",
    help="Another package to bundle with its dependencies (repeatable).",
)
@click.option(
    "--image",
    "images",
    multiple=True,
    metavar="REF",
    help="Also bundle this registry image, e.g. a CUDA image, pulled with Docker "
    "(repeatable; `gpubundle distros --json` suggests one per target). The install proves "
    "the GPUs with it after the builtin image.",
)
@click.option(
    "--no-images",
    is_flag=True,
    help="Bundle no container images, not even the builtin verification image; install "
    "then cannot prove that containers see the GPUs.",
)
@click.option(
    "--target-status",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The target's /var/lib/dpkg/status: bundle only what it lacks.",
)
@click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    metavar="ID=URL",
    help="Fetch source ID from URL (repeatable).",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="ID=FILE",
    help="Trust the keys in FILE for source ID instead of its pinned key (repeatable).",
)
@click.option(
    "--sign-key",
    envvar="GPUBUNDLE_SIGN_KEY",
    metavar="FINGERPRINT",
    help="Fingerprint of your secret key that signs the bundle [env GPUBUNDLE_SIGN_KEY].",
)
@click.option(
    "--gnupghome",
    type=click.Path(file_okay=False, path_type=Path),
    help="GnuPG home holding the signing key (default: gpg's own).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Bundle file to write (default: named after distro, arch and toolkit version).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_CACHE,
    show_default=True,
    help="Where downloads are kept between builds.",
)
@click.option(
    "--split-size",
    metavar="SIZE",
    help="Write the bundle as parts NAME.tar.zst.part001, … of at most SIZE bytes plus a "
    "signed index NAME.parts.json, for FAT32 sticks (4000M: FAT32 files stop 1 byte short "
    "of 4G), DVDs or size-limited transfers. "
    "SIZE is a number of bytes with an optional binary unit: K, M, G = KiB, MiB, GiB "
    "(e.g. 4G, 4000M, 50M, 1048576; at least 1M). Copy every part, the index and its .asc; "
    "verify and install take the index or the first part.",
)
@click.option(
    "--allow-vulnerable",
    is_flag=True,
    help="Bundle a toolkit version with known critical or high vulnerabilities (listed in "
    "the plan, the manifest and the SBOM) instead of refusing it.",
)
@click.option("--dry-run", is_flag=True, help="Resolve and print the plan; download nothing.")
@json_option
def build(
    distro: str,
    arch: str,
    toolkit_version: str,
    with_docker: bool,
    with_compose: bool,
    extra_packages: tuple[str, ...],
    images: tuple[str, ...],
    no_images: bool,
    target_status: Path | None,
    mirrors: tuple[str, ...],
    keys: tuple[str, ...],
    sign_key: str | None,
    gnupghome: Path | None,
    output: Path | None,
    cache_dir: Path,
    split_size: str | None,
    allow_vulnerable: bool,
    dry_run: bool,
    json_mode: bool,
) -> None:
    """Build a signed offline bundle of the NVIDIA Container Toolkit for DISTRO.

    Resolves the full dependency closure of nvidia-container-toolkit from
    NVIDIA's repository and the distribution's archive, downloads and checks
    every .deb, builds the GPU verification image from the distribution's own
    glibc and busybox (no registry, no Docker), and writes one signed bundle
    plus gpubundle-installer.pyz beside it. Registry images (--image) are
    opt-in and need Docker on this machine.

    \b
    Examples:
      # see what would be bundled, without downloading anything
      gpubundle build --distro ubuntu22.04 --dry-run
      # a bundle for Ubuntu 22.04, signed with your key
      gpubundle build --distro ubuntu22.04 --sign-key 0123...CDEF
      # a pinned toolkit version, Docker included, only what the host lacks
      gpubundle build --distro debian12 --toolkit-version 1.17.8-1 --with-docker \\
          --target-status host-dpkg-status --sign-key 0123...CDEF
      # an internal mirror of NVIDIA's repository, no images
      gpubundle build --distro ubuntu24.04 --mirror nvidia=https://mirror.lan/nvidia/amd64 \\
          --no-images --sign-key 0123...CDEF
      # a CUDA image too, pulled from NVIDIA's registry with Docker
      gpubundle build --distro ubuntu22.04 --sign-key 0123...CDEF \\
          --image nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04

    The last lines name the signer's fingerprint and the command to run on the
    air-gapped host.
    """
    console = Console(json_mode=json_mode)

    def action() -> None:
        if images and no_images:
            raise GpubundleError(
                "--image and --no-images exclude each other",
                hint="name images with --image, or leave them out with --no-images",
                code=ExitCode.USAGE,
            )
        options = BuildOptions(
            distro=distro,
            arch=arch,
            toolkit_version=toolkit_version,
            with_docker=with_docker,
            with_compose=with_compose,
            extra_packages=extra_packages,
            images=images,
            builtin_image=not no_images,
            target_status=target_status,
            mirrors=_pairs(mirrors, "--mirror", "URL"),
            keys={k: Path(v) for k, v in _pairs(keys, "--key", "FILE").items()},
            sign_key=sign_key or "",
            gnupghome=gnupghome,
            output=output,
            cache_dir=cache_dir,
            dry_run=dry_run,
            split_size=_split_size(split_size),
            allow_vulnerable=allow_vulnerable,
        )
        result = run_build(options, console)
        if isinstance(result, BuildPlan):
            _report_plan(console, result)
        else:
            _report_bundle(console, result)

    handle_errors(console, action)


def _split_size(value: str | None) -> int:
    if value is None:
        return 0
    try:
        return parse_size(value)
    except ValueError as exc:
        raise GpubundleError(
            f"--split-size: {exc}",
            hint="give bytes with an optional K, M or G (binary units), e.g. --split-size 4000M",
            code=ExitCode.USAGE,
        ) from exc


def _report_plan(console: Console, plan: BuildPlan) -> None:
    rows = [
        (p.name, p.version, p.architecture, p.source, f"{p.size / 1e6:.1f} MB")
        for p in plan.packages
    ]
    console.table(("package", "version", "arch", "source", "size"), rows, title="build plan")
    for image in plan.images:
        if image.packages:
            made_of = ", ".join(f"{p.name} {p.version}" for p in image.packages)
            console.result(f"image: {image.ref} ({image.kind}, from {made_of})")
        else:
            console.result(f"image: {image.ref} ({image.kind}, pulled with Docker)")
    _report_vulnerabilities(console, plan)
    total = sum(p.size for p in plan.packages)
    console.result(
        f"{len(plan.packages)} packages, {total / 1e6:.1f} MB; nothing was downloaded (--dry-run)"
    )
    console.emit(plan.as_json())


def _report_vulnerabilities(console: Console, plan: BuildPlan) -> None:
    if plan.vulnerabilities:
        listed = ", ".join(f"{v.id} ({v.severity})" for v in plan.vulnerabilities)
        console.result(
            f"known vulnerabilities of nvidia-container-toolkit {plan.toolkit_version}: {listed} "
            f"(advisory table of {plan.advisories_date})"
        )


def _report_bundle(console: Console, result: BuildResult) -> None:
    console.result("")
    _report_vulnerabilities(console, result.plan)
    console.result(
        f"bundle:    {result.bundle} ({result.bundle_size / 1e6:.1f} MB, sha256 {result.bundle_sha256})"
    )
    if result.parts:
        console.result(
            f"parts:     {len(result.parts)}, {result.parts[0].name} … {result.parts[-1].name}"
        )
        console.result(
            f"           copy every part, {result.bundle.name} and {result.bundle.name}.asc"
        )
    console.result(f"installer: {result.installer} (+ {result.installer.name}.asc)")
    console.result(f"signed by: {result.fingerprint}")
    copied = "all these files" if result.parts else "both files"
    console.result(f"On the air-gapped host, with {copied} copied beside each other, run as root:")
    console.result(f"  {result.command}")
    console.emit(result.as_json())
