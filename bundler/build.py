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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from bundler.buildplan import (
    BuildOptions,
    make_plan,
    resolution_inputs,
    toolkit_vulnerabilities,
    vulnerability_line,
)
from bundler.dpkgstatus import installed_records, read_status
from bundler.http import make_session
from bundler.httpclient import HttpClient
from bundler.index import PackageIndex, PackageRecord
from bundler.pathargs import check_dir_option, check_file_option
from bundler.plan import BuildPlan
from bundler.repo import FetchedSource, RepoClient
from bundler.resolver import Resolution, resolve
from bundler.runtime import MINBASE_FLOOR, carried, host_floor, runtime_python, runtime_roots
from bundler.signing import Signer
from bundler.targets import Target, apply_overrides, list_targets, load_target
from bundler.verifyimage import verify_image_roots
from installer import advisories
from installer.console import Console
from installer.errors import ExitCode, GpubundleError

if TYPE_CHECKING:
    from bundler.assemble import BuildResult

# -- the steps ------------------------------------------------------------------------

__all__ = ["BuildOptions", "run_build"]


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
        table = advisories.load_table()
        # A named toolkit version with known critical/high issues is refused before any
        # network work; the newest one is judged once resolution has chosen it.
        toolkit_vulnerabilities(options.toolkit_version, table, options.allow_vulnerable)
        signer = None if options.dry_run else Signer(options.sign_key, options.gnupghome)
        if options.output is not None and not options.dry_run:
            check_file_option(options.output, "--output")
        check_dir_option(options.cache_dir, "--cache-dir")
    session = make_session()
    with step("sources", "fetching and verifying repository metadata"):
        sources = load_sources(target, options, session, console)
    with step("resolve", "resolving dependencies"):
        plan = plan_build(options, target, sources, console)
    plan = judge_toolkit(plan, table, options.allow_vulnerable, console)
    if signer is None:
        return plan
    from bundler.assemble import assemble  # the heavy half: not imported for --dry-run

    return assemble(options, target, plan, sources, signer, session, console, step)


def judge_toolkit(
    plan: BuildPlan, table: advisories.AdvisoryTable, allow: bool, console: Console
) -> BuildPlan:
    """The plan with the toolkit's known vulnerabilities; refused (exit 2) for a critical or
    high one unless ``allow``, and each one said on stderr."""
    found = toolkit_vulnerabilities(plan.toolkit_version, table, allow)
    if found:
        console.warn(
            f"nvidia-container-toolkit {plan.toolkit_version} has known vulnerabilities "
            f"(advisory table of {table.date}):"
        )
        by_id = {a.id: a for a in table.advisories}
        for pin in found:
            console.warn(f"  {vulnerability_line(by_id[pin.id])}")
    return dataclasses.replace(plan, advisories_date=table.date, vulnerabilities=found)


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
    checked_compose(target, options)
    return target


def checked_compose(target: Target, options: BuildOptions) -> None:
    """--with-compose only where the release packages a Compose that reads GPU reservations."""
    if options.with_compose and not target.compose:
        with_compose = [n for n in list_targets() if load_target(n).compose]
        raise GpubundleError(
            f"{target.name}'s archive has no Docker Compose that reads GPU reservations "
            "(deploy.resources.reservations.devices needs Compose 1.28 or v2)",
            hint="leave out --with-compose (install still proves the GPUs with docker run), "
            f"or pick a --distro that has one: {', '.join(with_compose)}",
        )


def load_sources(
    target: Target, options: BuildOptions, session: HttpClient, console: Console
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
        PackageIndex.from_file(s.source_id, s.base_url, path, options.arch)
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
    roots, pins = resolution_inputs(options, target.compose)
    resolution = resolve(indices, roots, arch=options.arch, installed=installed, pins=pins)
    # The image is its own root filesystem: resolved from an empty status, never the target's.
    verify = (
        resolve(indices, verify_image_roots(target.python), arch=options.arch)
        if options.builtin_image
        else None
    )
    # The interpreter the installer carries, and what of its closure a minbase lacks.
    python = runtime_python(target.python)
    floor = resolve(indices, MINBASE_FLOOR, arch=options.arch).packages
    minbase = host_floor(floor)  # gpgv carried even where minbase has it (apt 3 uses sqv)
    carried_python = resolve(indices, runtime_roots(python), arch=options.arch, installed=minbase)
    runtime = (python, Resolution(tuple(carried(carried_python.packages))))
    records = [s.record() for s in sources]
    return make_plan(
        options, roots, records, resolution, installed, options.images, verify, runtime
    )
