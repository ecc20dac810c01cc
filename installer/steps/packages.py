"""The packages step: apt installs the bundle's packages from its local source only.

apt and dpkg run detached (``aptlocal.run_apt`` with a log under /var/log/gpubundle):
a kill of this process leaves them to finish, and the next run waits for their lock.
The step ends only when dpkg shows every planned package installed and its journal
empty.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from installer import unownedpaths
from installer.aptlocal import (
    DPKG_LOCK_TIMEOUT_S,
    apt_install_argv,
    apt_update_argv,
    changed_packages,
    run_apt,
    source_lists,
)
from installer.dpkgstate import read_dpkg_facts
from installer.errors import GpubundleError
from installer.hostinfo import installed_versions
from installer.installplan import PACKAGES, apt_pins, downgrades, package_changes
from installer.layout import REPO_DIR
from installer.record import InstallRecord, append_ledger
from installer.steps import StepContext


def apt_progress(ctx: StepContext) -> Callable[[str], None]:
    def progress(line: str) -> None:
        if line.startswith(("Unpacking ", "Setting up ", "Processing triggers", "Preparing ")):
            ctx.console.info(f"    {line.strip()}")

    return progress


def run(ctx: StepContext, record: InstallRecord) -> tuple[InstallRecord, str]:
    manifest, host, sources_list = ctx.manifest, ctx.host, ctx.host.sources_list
    # dpkg's own database, not HostPaths.dpkg_admin_dir: apt acts on this machine.
    before = installed_versions(ctx.names, manifest.arch)
    pins = apt_pins(manifest, before)
    # Preflight refused a downgrade without --allow-downgrade before anything changed.
    down = bool(downgrades(manifest, before)) and ctx.opts.allow_downgrade
    ctx.console.info(
        f"apt reads only {sources_list}; if another apt or dpkg holds the lock it waits "
        f"up to {DPKG_LOCK_TIMEOUT_S} s; its output: {ctx.apt_log}"
    )
    earlier = record.packages_installed
    # Write-ahead: every bundled package apt may install or upgrade. Uninstall removes
    # only those present and absent before gpubundle, so an over-estimate is safe.
    may_change = {p.name: p.version for p in manifest.packages if before.get(p.name) != p.version}
    # Ledgered apart from the record: should the record be lost, these stay gpubundle's.
    new = {n: v for n, v in may_change.items() if n not in record.packages_before}
    append_ledger(new, host.ledger)
    # And the paths the packages' scripts may make that are absent now (config.toml).
    scripts = unownedpaths.intended(record.unowned_paths_created, unownedpaths.present(host))
    record = ctx.intend(
        record,
        PACKAGES,
        packages_installed={**earlier, **may_change},
        unowned_paths_created=scripts,
    )
    run_apt(apt_update_argv(sources_list), "reading the bundle's package index", ctx.apt_log)
    lists = map(str, source_lists(ctx.bundle_dir / REPO_DIR, host.apt_lists_dir))
    record = dataclasses.replace(
        record, apt_lists=tuple(dict.fromkeys((*record.apt_lists, *lists)))
    )
    ctx.save(record)
    run_apt(
        apt_install_argv(sources_list, pins, allow_downgrades=down),
        "installing the packages",
        ctx.apt_log,
        apt_progress(ctx),
    )
    check_dpkg_finished(ctx, {**package_changes(manifest, before), **pins})
    after = installed_versions(ctx.names, manifest.arch)
    changed = changed_packages(before, after)
    # Against packages_before, not this run's start: a killed run's installs count too.
    ours = changed_packages(record.packages_before, after)
    installed = {**earlier, **ours}
    detail = ", ".join(f"{n} {v}" for n, v in changed.items()) or "no package changed"
    made = unownedpaths.observed(scripts, unownedpaths.fingerprints(host, scripts))
    return dataclasses.replace(
        record, packages_installed=installed, unowned_paths_created=made
    ), detail


def check_dpkg_finished(ctx: StepContext, wanted: dict[str, str]) -> None:
    """After apt returned 0: dpkg's journal is empty and every planned package is
    "install ok installed" at the bundle's version; else the step fails."""
    facts = read_dpkg_facts(ctx.host.dpkg_admin_dir, ctx.host.proc)
    wrong = []
    for name, version in sorted(wanted.items()):
        pkg = facts.packages.get(name)
        if pkg is None or not pkg.installed or pkg.version != version:
            have = f"{pkg.version} ({pkg.want} {pkg.flag} {pkg.state})" if pkg else "none"
            wrong.append(f"{name}: want {version} installed, have {have}")
    if facts.journal:
        wrong.append(f"dpkg's journal still holds {len(facts.journal)} entries")
    if wrong:
        raise GpubundleError(
            "apt finished but dpkg did not leave the bundle's packages installed",
            hint="check `apt-mark showhold` and `dpkg --audit`, then run install again",
            details=[*wrong, f"apt's output: {ctx.apt_log}"],
        )


def reconcile(ctx: StepContext, record: InstallRecord) -> InstallRecord:
    """packages_installed as the host has it, after a run was killed once apt was done
    (the record still holds the write-ahead estimate)."""
    now = installed_versions(ctx.names, ctx.manifest.arch)
    kept = {n: v for n, v in record.packages_installed.items() if n not in ctx.names}
    ours = changed_packages(record.packages_before, now)
    scripts = record.unowned_paths_created
    return dataclasses.replace(
        record,
        packages_installed=dict(sorted({**kept, **ours}.items())),
        unowned_paths_created=unownedpaths.observed(
            scripts, unownedpaths.fingerprints(ctx.host, scripts)
        ),
    )
