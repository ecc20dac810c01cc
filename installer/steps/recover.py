"""The dpkg-recover step: ``dpkg --configure -a`` finishes the dpkg work a killed run left.

Preflight allowed it (``preflight.recoverable``): the work is gpubundle's own. A
package left half-installed cannot be configured, so dpkg may fail on it and what
depends on it; apt reinstalls it from the bundle in the packages step, which checks
the result.
"""

from __future__ import annotations

from installer.aptlocal import DPKG_CONFIGURE_PENDING, run_apt
from installer.dpkgstate import read_dpkg_facts
from installer.errors import GpubundleError
from installer.installplan import RECOVER
from installer.record import InstallRecord
from installer.steps import StepContext
from installer.steps.packages import apt_progress


def run(ctx: StepContext, record: InstallRecord) -> tuple[InstallRecord, str]:
    record = ctx.intend(record, RECOVER)
    before = read_dpkg_facts(ctx.host.dpkg_admin_dir, ctx.host.proc)
    what = ", ".join(p.describe() for p in before.interrupted) or "dpkg's journal"
    ctx.console.info(f"finishing dpkg's interrupted work: {what} (log: {ctx.apt_log})")
    try:
        run_apt(
            list(DPKG_CONFIGURE_PENDING),
            "finishing dpkg's interrupted work (dpkg --configure -a)",
            ctx.apt_log,
            apt_progress(ctx),
        )
    except GpubundleError as err:
        after = read_dpkg_facts(ctx.host.dpkg_admin_dir, ctx.host.proc)
        left = {p.name for p in after.interrupted}
        if after.journal or not left <= set(ctx.names):
            raise
        return record, f"{what}; left for apt to reinstall: {', '.join(sorted(left))} " + (
            f"({err.message})"
        )
    return record, f"finished: {what}"
