"""The install steps, run in plan order with the install record saved after each.

Every step checks before it acts, so a run killed anywhere can be run again and
completes. A failure after the container runtime was configured rolls that
configuration back (and restarts the engine) and says what stays installed. The
step bodies live in ``installer.steps`` (one module each); this module is the loop:
the record, the order, the rollback. dpkg work cut short (a power cut) is finished
by the ``dpkg-recover`` step, which the plan holds only when preflight found that
work to be gpubundle's own.

Write-ahead: each step records what it is about to change before it changes
anything (``StepContext.intend``), so the record of a run killed midway still
names every path, package, list file, image and daemon.json change that run may
have made; a re-run completes the step and ``uninstall`` undoes it. The kill and
fill hooks of the resume, uninstall and full-disk tests are ``installer.testhooks``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from installer import __version__, invocation, testhooks
from installer import history as install_history
from installer.aptlocal import keyring_path
from installer.atomicfile import sweep_leftovers
from installer.bundle_reader import VerifiedBundle
from installer.console import Console
from installer.diskspace import tool_ran_out_of_space
from installer.errors import GpubundleError
from installer.hostinfo import installed_versions
from installer.hostpaths import HostPaths
from installer.installplan import (
    APT_SOURCE,
    EXTRACT,
    IMAGES,
    PACKAGES,
    PROOF,
    RECOVER,
    RESTART,
    RUNTIME,
    InstallPlan,
)
from installer.preflight import Options
from installer.record import (
    InstallRecord,
    carried_over,
    original_packages,
    read_ledger,
    read_record,
)
from installer.steps import StepContext, aptsource, extract, images, packages, proof, recover
from installer.steps import runtime as runtime_steps

_RUNTIME_STEPS = (RUNTIME, RESTART, IMAGES, PROOF)
BODIES = {
    EXTRACT: extract.run,
    APT_SOURCE: aptsource.run,
    RECOVER: recover.run,
    PACKAGES: packages.run,
    RUNTIME: runtime_steps.configure,
    RESTART: runtime_steps.restart,
    IMAGES: images.run,
    PROOF: proof.run,
}


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class StepRunner:
    def __init__(
        self,
        verified: VerifiedBundle,
        opts: Options,
        console: Console,
        host: HostPaths,
        proof_rule: str = "default",
        compute_size: str = "auto",
    ) -> None:
        bundle_dir = host.bundles / verified.sha256
        self.ctx = StepContext(verified, bundle_dir, opts, console, host, proof_rule, compute_size)
        self.results: list[tuple[str, str, str]] = []

    @property
    def stamp(self) -> str:
        return self.ctx.stamp

    @property
    def proof(self) -> list[dict[str, Any]]:
        return self.ctx.proof

    @property
    def compute(self) -> list[dict[str, Any]]:
        return self.ctx.compute

    @property
    def compose(self) -> list[dict[str, Any]]:
        return self.ctx.compose

    def rows(self) -> list[list[str]]:
        return [list(r) for r in self.results]

    def _summary(self) -> dict[str, Any]:
        return {"steps": [{"id": i, "result": r, "detail": d} for i, r, d in self.results]}

    # --- the record -----------------------------------------------------------------

    def start_record(self) -> InstallRecord:
        # installed_versions asks dpkg's own database, not HostPaths.dpkg_admin_dir: apt and
        # dpkg act on this machine, so the versions that count are the machine's (a test
        # root's install runs chrooted into it, where the two are the same).
        host, m, sha = self.ctx.host, self.ctx.manifest, self.ctx.verified.sha256
        read = read_record(host.record, host)
        previous = read.record
        ledger = read_ledger(host.ledger)
        if previous is not None and read.damage and "packages_before" in read.damage.lost:
            # Lost with a damaged record: what is here now and not gpubundle's (the ledger).
            now_there = installed_versions(self.ctx.names, m.arch)
            before = original_packages(None, now_there, ledger)
            previous = dataclasses.replace(previous, packages_before=before)
        if previous is not None and previous.bundle_sha256 == sha:
            # The same bundle: a killed run resumed keeps the entry it wrote ahead; a
            # finished install run again (a step undone since) adds none.
            pending = previous.pending_history
            if pending is None and previous.finished_at is None:
                pending = self.pending_entry()
            return dataclasses.replace(previous, finished_at=None, pending_history=pending)
        return InstallRecord(
            gpubundle_version=__version__,
            bundle_sha256=sha,
            signer_fingerprint=m.signer_fingerprint,
            distro=m.distro,
            arch=m.arch,
            toolkit_version=m.toolkit_version,
            started_at=now(),
            packages_before=original_packages(
                previous, installed_versions(self.ctx.names, m.arch), ledger
            ),
            # What an earlier bundle's install changed stays for uninstall to undo.
            **(carried_over(previous) if previous else {}),
            pending_history=self.pending_entry(),
        )

    def family_now(self) -> dict[str, str]:
        """The toolkit family's versions on the host now (absent packages left out)."""
        m = self.ctx.manifest
        return installed_versions(install_history.family_names(m), m.arch)

    def pending_entry(self) -> dict[str, Any]:
        """This run's history entry, written ahead: the family as the run finds it."""
        sha = self.ctx.verified.sha256
        return install_history.pending_entry(self.ctx.manifest, sha, __version__, self.family_now())

    # --- running the plan -----------------------------------------------------------

    def nothing_to_do(self, plan: InstallPlan) -> dict[str, Any]:
        """Every step is done. Only a record left unfinished (a run killed after its last
        step), missing or damaged is completed; the host itself is not touched."""
        host = self.ctx.host
        read = read_record(host.record, host)
        record = read.record
        needed = [s.id for s in plan.steps if not s.skip_reason]
        if (
            record is None
            or read.damage is not None  # rebuilt from what survived: write it whole again
            or record.bundle_sha256 != self.ctx.verified.sha256
            or record.finished_at is None
            or any(not record.completed(step) for step in needed)
        ):
            return {**self.run(plan), "changed": False}
        for step in plan.steps:
            self.results.append((step.id, step.state, ""))
        return {**self._summary(), "changed": False}

    def run(self, plan: InstallPlan) -> dict[str, Any]:
        ctx, host = self.ctx, self.ctx.host
        record = self.start_record()
        # Temporary files of atomic writes a killed run left beside the files install manages.
        keyring = keyring_path(ctx.manifest.signer_fingerprint, host.keyrings_dir)
        managed = (host.record, host.record_mirror, host.ledger, host.sources_list, keyring)
        sweep_leftovers(*managed, *map(Path, record.files_created))
        ctx.save(record)
        # The step a killed run was in: read now, since marking the steps before it done
        # (with_step) clears in_progress.
        interrupted = record.in_progress
        for step in plan.steps:
            if step.skip_reason:
                self.results.append((step.id, "skipped", step.skip_reason))
                continue
            if step.done:
                self.results.append((step.id, "already done", ""))
                if step.id in (EXTRACT, APT_SOURCE):
                    record = record.with_files(*step.paths)
                if step.id == PACKAGES and interrupted in (PACKAGES, RECOVER):
                    record = packages.reconcile(ctx, record)
                record = record.with_step(step.id)
                continue
            ctx.console.step(step.title)
            try:
                record, detail = self.do(step.id, record)
            except GpubundleError as failure:
                err = tool_ran_out_of_space(failure)  # a full disk is named as such
                self.results.append((step.id, "FAILED", err.message))
                if step.id in _RUNTIME_STEPS and record.runtime_change is not None:
                    raise self._roll_back(record, err) from err
                if err is failure:
                    raise
                raise err from failure
            self.results.append((step.id, "done", detail))
            testhooks.kill_if_asked(testhooks.KILL_UNRECORDED, step.id)
            ctx.save(record)
            testhooks.kill_if_asked(testhooks.KILL_AFTER, step.id)
        ctx.save(record.finished(now(), self.family_now()))
        return {**self._summary(), "changed": True}

    def do(self, step_id: str, record: InstallRecord) -> tuple[InstallRecord, str]:
        """Run one step's body; the record with the step marked complete, and its detail."""
        record, detail = BODIES[step_id](self.ctx, record)
        if step_id == RECOVER:
            # A repair of dpkg's state, not a change of gpubundle's: nothing for uninstall
            # to undo, so the record of a recovered install equals that of a clean one.
            return dataclasses.replace(record, in_progress=None), detail
        return record.with_step(step_id), detail

    # --- rollback -------------------------------------------------------------------

    def _roll_back(self, record: InstallRecord, err: GpubundleError) -> GpubundleError:
        """Undo the runtime configuration after a later step failed; say what stays."""
        notes = [f"cause: {err.message}", *err.details]
        try:
            runtime_steps.undo(self.ctx, record)
            notes.append(
                "the container runtime configuration was restored and the engine restarted"
            )
            steps = tuple(s for s in record.steps_completed if s not in _RUNTIME_STEPS)
            record = dataclasses.replace(record, runtime_change=None, steps_completed=steps)
        except GpubundleError as undo:
            notes.append(f"rolling the runtime configuration back failed too: {undo.message}")
        self.ctx.save(record)
        kept = ", ".join(f"{n} {v}" for n, v in record.packages_installed.items()) or "none"
        left = f"left installed: packages {kept}; apt source {self.ctx.host.sources_list}"
        if record.images_loaded:
            left += f"; images {', '.join(record.images_loaded)}"
        if record.engine_started_by_gpubundle:
            left += "; Docker, started by gpubundle, still running"
        notes.append(left)
        return GpubundleError(
            f"install failed after configuring the container runtime: {err.message}",
            hint=(err.hint + "; " if err.hint else "")
            + f"fix it and run install again, or `{invocation.command('uninstall')}` to remove "
            "what was installed",
            details=notes,
        )
