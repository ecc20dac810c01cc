"""``gpubundle install``: verify, preflight, plan, then install offline step by step.

Reads top to bottom as the run does: lock the host; verify the bundle (exit 3,
nothing changed); check the host (exit 4, nothing changed); print the plan
(``--dry-run`` stops there) and confirm; then run each pending step, writing
the install record after every one so a killed run resumes where it stopped.
The step loop is ``installer.installsteps``, the step bodies ``installer.steps``; the bundle is
verified once (``bundle_reader.read_verified``) and the verified facts are passed on.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from installer import advisories, bootstrap, computeproof, containers, engines, exposure
from installer.aptlocal import DPKG_LOCK_TIMEOUT_S, source_is_installed
from installer.atomicfile import write_json_atomic
from installer.bundle_reader import VerifiedBundle, read_verified
from installer.cli import handle_errors, host_paths, json_option, trusted_keys
from installer.console import Console
from installer.cuda_compat import check_image_against_driver
from installer.diskspace import require_temp_space
from installer.dpkgstate import DpkgFacts, LockHolder
from installer.errors import ExitCode, GpubundleError
from installer.gpu import read_driver_facts
from installer.hostinfo import (
    dpkg_facts_after_lock,
    gather_host_facts,
    installed_versions,
    is_root,
)
from installer.hostlock import host_lock
from installer.hostpaths import HostPaths
from installer.installplan import PACKAGES, RECOVER, InstallPlan, PlanFacts, build_plan
from installer.installsteps import StepRunner
from installer.layout import REPO_DIR
from installer.manifest import Manifest
from installer.partstream import check_bundle_path
from installer.preflight import (
    RUNTIMES,
    HostFacts,
    Options,
    PreflightReport,
    recoverable,
    run_preflight,
)
from installer.record import load_record, read_record
from installer.trust import warnings_in_errors


@dataclass(frozen=True)
class Request:
    bundle: Path
    trust: tuple[str, ...]
    opts: Options
    dry_run: bool
    yes: bool
    host: HostPaths  # the command's (cli.host_paths())
    proof: str = "default"  # which access paths decide the GPU proof (containers.DECIDING)
    compute_size: str = "auto"  # the compute probe's buffer per GPU, or "off"


def confirm(console: Console, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise GpubundleError(
            "refusing to change the host without confirmation (no terminal to ask on)",
            hint="re-run with --yes to go ahead, or with --dry-run to see the plan only",
            code=ExitCode.USAGE,
        )
    if not click.confirm("Apply this plan?", default=False, err=True):
        raise GpubundleError("cancelled; nothing was changed", hint="re-run when ready")


def read_dpkg_state(console: Console, host: HostPaths) -> DpkgFacts:
    """dpkg's state, once an apt or dpkg still running (an earlier install's, going on by
    itself after that install was killed, or anyone's) is done, for up to the lock timeout."""

    def waiting(holders: tuple[LockHolder, ...]) -> None:
        who = ", ".join(h.describe() for h in holders)
        console.warn(f"waiting up to {DPKG_LOCK_TIMEOUT_S} s for dpkg's lock, held by {who}")

    return dpkg_facts_after_lock(
        DPKG_LOCK_TIMEOUT_S,
        waiting,
        host.dpkg_admin_dir,
        host.proc,
        other_locks=(host.apt_lists_lock,),
    )


def packages_step_under_way(host: HostPaths) -> bool:
    """gpubundle's record shows its own dpkg work under way (any bundle's)."""
    record = load_record(host.record, host)
    return record is not None and record.in_progress in (RECOVER, PACKAGES)


def preflight(
    req: Request, manifest: Manifest, bundle_dir: Path, console: Console
) -> tuple[PreflightReport, HostFacts]:
    facts = gather_host_facts(  # the engine by its adapter
        manifest,
        req.opts,
        bundle_dir,
        req.host,
        dpkg=read_dpkg_state(console, req.host),
        packages_step_under_way=packages_step_under_way(req.host),
    )
    report = run_preflight(
        manifest,
        facts,
        req.opts,
        lambda need, driver, cuda: check_image_against_driver(need, driver, cuda_version=cuda),
    )
    console.table(["check", "result", "detail"], report.rows(), title="Preflight")
    return report, facts


def dpkg_recovery(manifest: Manifest, facts: HostFacts) -> tuple[str, ...]:
    """What the plan's recovery step finishes: empty unless preflight allowed it."""
    dpkg = facts.dpkg
    if dpkg is None or not recoverable(manifest, facts):
        return ()
    lines = [p.describe() for p in dpkg.interrupted]
    if dpkg.journal:
        lines.append(f"dpkg's journal ({len(dpkg.journal)} entries)")
    return tuple(lines)


def plan_install(
    req: Request,
    manifest: Manifest,
    sha: str,
    bundle_dir: Path,
    key: bytes,
    recovery: tuple[str, ...] = (),
) -> InstallPlan:
    host = req.host
    record = load_record(host.record, host)
    completed = record.steps_completed if record and record.bundle_sha256 == sha else ()
    engine_kind = daemon_json = ""
    adapter = engines.engine_for(req.opts.runtime)
    if adapter is not None:
        engine_kind, config = adapter.plan_facts(host)
        daemon_json = str(config)
    cdi_refresh = ""
    if adapter is not None and adapter.runs_containers and not req.opts.skip_gpu_checks:
        ours = record is not None and str(host.cdi_spec) in record.cdi_specs_created
        driver = read_driver_facts(proc_modules=host.proc / "modules").version
        cdi_refresh = containers.refresh_reason(host.cdi_spec, ours, driver)
    facts = PlanFacts(
        bundle_dir=bundle_dir,
        bundle_dir_exists=bundle_dir.is_dir(),
        source_installed=source_is_installed(
            key,
            manifest.signer_fingerprint,
            bundle_dir / REPO_DIR,
            host.sources_list,
            host.keyrings_dir,
        ),
        installed=installed_versions(
            {p.name for p in manifest.packages}, manifest.arch, host.dpkg_admin_dir
        ),
        completed=completed,
        runtime=req.opts.runtime,
        skip_gpu_checks=req.opts.skip_gpu_checks,
        engine_kind=engine_kind,
        daemon_json=daemon_json or str(host.docker_daemon_json),
        cdi_refresh=cdi_refresh,
        dpkg_recovery=recovery,
        host=host,
    )
    return build_plan(manifest, sha, facts)


def write_report(document: dict[str, Any], stamp: str, log_dir: Path) -> Path:
    path = log_dir / f"install-{stamp}.json"
    write_json_atomic(path, document, mode=0o640)
    return path


def verify(req: Request, console: Console) -> VerifiedBundle:
    """The one verifying read of the bundle: its manifest, sha256 and signer key, passed on."""
    console.step(f"verifying {req.bundle}")
    trusted = trusted_keys(req.trust, req.host.trust_dir, console)
    with warnings_in_errors(trusted.warnings):
        verified = read_verified(req.bundle, trusted)
    manifest = verified.manifest
    console.info(
        f"verified: {manifest.distro}/{manifest.arch}, nvidia-container-toolkit "
        f"{manifest.toolkit_version}, signed by {manifest.signer_fingerprint}"
    )
    return verified


def run_install(req: Request, console: Console) -> None:
    check_bundle_path(req.bundle)  # /dev/zero or a FIFO would never end: usage error, first
    host = req.host
    lock: AbstractContextManager[None] = (
        host_lock(host.lock, command="gpubundle install") if is_root() else nullcontext()
    )
    with lock:
        # Room for gpgv's temporary files before anything is read: exit 4, not a failure
        # halfway through verification.
        failed = bootstrap.unpack_failure
        require_temp_space(pylib_bytes=failed.needed_bytes if failed else 0)
        damage = read_record(host.record, host).damage
        if damage is not None:
            console.warn(f"the install record {damage.path} was damaged; using what survived:")
            for line in damage.lines():
                console.warn(f"  {line}")
        verified = verify(req, console)
        manifest, sha = verified.manifest, verified.sha256
        bundle_dir = host.bundles / sha
        bundled = exposure.of_bundle(manifest, advisories.load_table())
        if bundled.vulnerabilities:
            console.warn(bundled.summary())
            for line in bundled.lines():
                console.warn(f"  {line}")
        report, facts = preflight(req, manifest, bundle_dir, console)
        document: dict[str, Any] = {"ok": True, "bundle_sha256": sha, "preflight": report.as_json()}
        document["vulnerabilities"] = bundled.as_json()
        document["warnings"] = list(verified.trust.warnings)
        if damage is not None:
            document["record_damage"] = damage.as_json()
        report.raise_if_failed()
        key = verified.apt_key()
        plan = plan_install(req, manifest, sha, bundle_dir, key, dpkg_recovery(manifest, facts))
        console.table(["step", "state", "changes"], plan.rows(), title="Plan")
        document["plan"] = plan.as_json()
        if req.dry_run:
            console.info("dry run: nothing was changed")
            console.emit({**document, "dry_run": True})
            return
        runner = StepRunner(verified, req.opts, console, host, req.proof, req.compute_size)
        if not plan.pending:
            console.info("already installed: every step is done; nothing was changed")
            document["result"] = runner.nothing_to_do(plan)
        else:
            confirm(console, req.yes)
            document["result"] = runner.run(plan)
        if runner.proof:
            document["proof"] = runner.proof  # every access path tried, passed ones too
        if runner.compute:
            document["compute"] = runner.compute  # per GPU: figures, or the driver's error
        if runner.compose:
            document["compose"] = runner.compose  # the guide's compose GPU service
        record = load_record(host.record, host)
        document["record"] = record.as_json() if record else None
        document["report"] = str(write_report(document, runner.stamp, host.log_dir))
        console.table(["step", "result", "detail"], runner.rows(), title="Result")
        console.info(f"record: {host.record}; report: {document['report']}")
        console.emit(document)


def _checked_compute_size(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return computeproof.checked_size(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err


@click.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--trust",
    multiple=True,
    metavar="FINGERPRINT",
    help="Signer fingerprint to trust (repeatable).",
)
@click.option(
    "--runtime",
    type=click.Choice(RUNTIMES),
    default="docker",
    show_default=True,
    help="Container runtime to configure; none installs the packages only.",
)
@click.option("--skip-gpu-checks", is_flag=True, help="Install on a host without a GPU right now.")
@click.option(
    "--proof",
    type=click.Choice(containers.PROOF_RULES),
    default="default",
    show_default=True,
    help="Which GPU access paths must work: default (every --gpus form, and CDI where "
    "Docker supports it), gpus, cdi, or all (--runtime=nvidia too). Every path is tried "
    "and reported either way.",
)
@click.option(
    "--compute-size",
    default="auto",
    show_default=True,
    callback=_checked_compute_size,
    metavar="SIZE|auto|off",
    help="Buffer the compute check runs a CUDA kernel over on each GPU, after the "
    "containers saw them: auto (1 GiB, or half the free memory), a size such as 512M or "
    "4G (more than the GPU has fails with CUDA_ERROR_OUT_OF_MEMORY), or off.",
)
@click.option(
    "--allow-downgrade",
    is_flag=True,
    help="Install a bundle whose toolkit is older than the installed one: the whole "
    "toolkit family goes down to the bundle's versions (a rollback).",
)
@click.option("--dry-run", is_flag=True, help="Verify, check and print the plan; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
def install(
    bundle: Path,
    trust: tuple[str, ...],
    runtime: str,
    skip_gpu_checks: bool,
    proof: str,
    compute_size: str,
    allow_downgrade: bool,
    dry_run: bool,
    yes: bool,
    json_mode: bool,
) -> None:
    """Verify BUNDLE and install the NVIDIA Container Toolkit from it, offline.

    Nothing changes until the bundle is verified against a key you trust, the
    host passes its checks and you confirm the plan. Re-running finishes an
    interrupted install; on an installed host it changes nothing. A newer bundle
    over an earlier install upgrades it in place; an older one is refused unless
    --allow-downgrade. `gpubundle status` shows the history.

    BUNDLE is a .tar.zst file, or for a bundle split with --split-size its
    NAME.parts.json or any of its parts (all of them must lie beside it).
    """
    console = Console(json_mode=json_mode)
    host = host_paths()
    opts = Options(runtime, skip_gpu_checks, allow_downgrade)
    req = Request(bundle, trust, opts, dry_run, yes, host, proof, compute_size)
    handle_errors(console, lambda: run_install(req, console))
