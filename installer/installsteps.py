"""The install steps, run in plan order with the install record saved after each.

Every step checks before it acts, so a run killed anywhere can be run again and
completes. A failure after the container runtime was configured rolls that
configuration back (and restarts the engine) and says what stays installed.
The runtime and restart steps call the engine adapter of ``--runtime``
(``installer.engines``); the image and proof steps call ``installer.containers``.

apt and dpkg run detached (``aptlocal.run_apt`` with a log under /var/log/gpubundle):
a kill of this process leaves them to finish, and the next run waits for their lock.
dpkg work cut short (a power cut) is finished by the ``dpkg-recover`` step, which the
plan holds only when preflight found that work to be gpubundle's own; the packages step
ends only when dpkg shows every planned package installed and its journal empty.

Write-ahead: each step records what it is about to change before it changes
anything (``InstallRecord.with_intent``), so the record of a run killed midway
still names every path, package, list file, image and daemon.json change that
run may have made; a re-run completes the step and ``uninstall`` undoes it. A
runtime change recorded as ``pending`` is rolled back to its backup before the
step runs again.

Test hooks, for the resume and uninstall tests: the process SIGKILLs itself
with ``GPUBUNDLE_TEST_KILL_BEFORE=<step id>`` right after that step recorded its
intent (nothing changed yet), with ``GPUBUNDLE_TEST_KILL_UNRECORDED=<step id>``
after the step changed the host but before its completion is recorded, and with
``GPUBUNDLE_TEST_KILL_AFTER=<step id>`` right after recording it. For the
full-disk tests, ``GPUBUNDLE_TEST_FILL_BEFORE_EXTRACT=<path>`` fills the filesystem
of ``<path>`` with that file once preflight has passed, just before extraction.
Nothing else reads these variables.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from installer import __version__, containers, engines, invocation, runtime_intent, unownedpaths
from installer.aptlocal import (
    DPKG_CONFIGURE_PENDING,
    DPKG_LOCK_TIMEOUT_S,
    SOURCES_LIST,
    apt_install_argv,
    apt_update_argv,
    changed_packages,
    install_source,
    keyring_path,
    requested_pins,
    run_apt,
    source_lists,
)
from installer.atomicfile import sweep_leftovers
from installer.bundle_reader import verify_bundle
from installer.console import Console
from installer.diskspace import tool_ran_out_of_space
from installer.dpkgstate import read_dpkg_facts
from installer.errors import GpubundleError, VerificationError
from installer.gpu import find_nvidia_smi, read_driver_facts
from installer.hostinfo import installed_versions
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
    image_archives,
    package_changes,
    proof_images,
)
from installer.layout import (
    HEAD_MEMBERS,
    LOG_DIR,
    MAX_HEAD_MEMBER_BYTES,
    REPO_DIR,
    SIGNER_KEY,
)
from installer.manifest import Manifest
from installer.openpgp import primary_fingerprints
from installer.partstream import open_source
from installer.preflight import Options
from installer.record import (
    RECORD_PATH,
    InstallRecord,
    append_ledger,
    carried_over,
    companion_paths,
    ledger_path,
    original_packages,
    read_ledger,
    read_record,
    save_record,
    staging_leftovers,
)
from installer.trust import as_trust
from installer.zstd_stream import open_zstd

KILL_HOOK = "GPUBUNDLE_TEST_KILL_AFTER"
KILL_BEFORE_HOOK = "GPUBUNDLE_TEST_KILL_BEFORE"
KILL_UNRECORDED_HOOK = "GPUBUNDLE_TEST_KILL_UNRECORDED"
FILL_HOOK = "GPUBUNDLE_TEST_FILL_BEFORE_EXTRACT"
ENGINE_READY_TIMEOUT_S = 90
_RUNTIME_STEPS = (RUNTIME, RESTART, IMAGES, PROOF)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def read_signer_key(bundle: Path, fingerprint: str, trusted: Sequence[str] = ()) -> bytes:
    """The signer's public key as the signature was checked with it: what apt gets to trust.

    The extracted bundle holds only the manifest's files; the key is read from the
    head again and must be the signer's. When ``trusted`` (a ``Trust``) holds a copy
    of that key from trusted.d (an extended expiry, say), the two copies are merged,
    exactly as for gpgv: apt must check the local repository with the same key.
    """
    trust = as_trust(trusted).restricted_to(fingerprint)
    # A split bundle's index must be signed by that key too; only the head's parts are read.
    source = open_source(bundle, trust)
    with source.reading(complete=False) as raw, open_zstd(raw) as stream:  # noqa: SIM117
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
            for _, info in zip(HEAD_MEMBERS, tar):
                if info.name == SIGNER_KEY and info.isreg() and info.size <= MAX_HEAD_MEMBER_BYTES:
                    member = tar.extractfile(info)
                    key: bytes = member.read() if member is not None else b""
                    break
            else:
                key = b""
    if fingerprint not in primary_fingerprints(key):
        raise VerificationError(
            f"the bundle's {SIGNER_KEY} is not the key {fingerprint} that signed it",
            hint="the bundle changed since it was verified; copy it again from the build machine",
        )
    return trust.signer_key(fingerprint, key)


def _test_kill(hook: str, step_id: str) -> None:
    if os.environ.get(hook) == step_id:
        os.kill(os.getpid(), signal.SIGKILL)


def _test_fill() -> None:
    """Fill the filesystem of the file named by FILL_HOOK, as another process might."""
    path = os.environ.get(FILL_HOOK)
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while os.write(fd, bytes(1 << 16)):
            pass
    except OSError:
        pass  # full
    finally:
        os.close(fd)


class StepRunner:
    def __init__(
        self,
        bundle: Path,
        trusted: Sequence[str],
        manifest: Manifest,
        sha: str,
        bundle_dir: Path,
        opts: Options,
        console: Console,
        proof_rule: str = "default",
    ) -> None:
        self.bundle, self.trusted, self.manifest = bundle, as_trust(trusted), manifest
        self.sha, self.bundle_dir, self.opts, self.console = sha, bundle_dir, opts, console
        self.stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.results: list[tuple[str, str, str]] = []
        self.names = sorted({p.name for p in manifest.packages})
        # How the engine ran before we restarted it: a rollback must start it the same way.
        self.engine_before: engines.DaemonFacts | None = None
        self.engine_env: dict[str, str] | None = None
        self.proof: list[dict[str, Any]] = []  # each image's proof attempts, for --json
        self.proof_rule = proof_rule  # install --proof: which access paths decide
        # apt's and dpkg's output: they run detached and write here (see run_apt).
        self.apt_log = Path(LOG_DIR) / f"apt-{self.stamp}.log"

    def rows(self) -> list[list[str]]:
        return [list(r) for r in self.results]

    def _summary(self) -> dict[str, Any]:
        return {"steps": [{"id": i, "result": r, "detail": d} for i, r, d in self.results]}

    # --- the record -----------------------------------------------------------------

    def start_record(self) -> InstallRecord:
        read = read_record()
        previous, m = read.record, self.manifest
        ledger = read_ledger(ledger_path(RECORD_PATH))
        if previous is not None and read.damage and "packages_before" in read.damage.lost:
            # Lost with a damaged record: what is here now and not gpubundle's (the ledger).
            now_there = installed_versions(self.names, m.arch)
            before = original_packages(None, now_there, ledger)
            previous = dataclasses.replace(previous, packages_before=before)
        if previous is not None and previous.bundle_sha256 == self.sha:
            return dataclasses.replace(previous, finished_at=None)
        return InstallRecord(
            gpubundle_version=__version__,
            bundle_sha256=self.sha,
            signer_fingerprint=m.signer_fingerprint,
            distro=m.distro,
            arch=m.arch,
            toolkit_version=m.toolkit_version,
            started_at=now(),
            packages_before=original_packages(
                previous, installed_versions(self.names, m.arch), ledger
            ),
            # What an earlier bundle's install changed stays for uninstall to undo.
            **(carried_over(previous) if previous else {}),
        )

    def _save(self, record: InstallRecord, step_id: str) -> None:
        save_record(record)
        _test_kill(KILL_HOOK, step_id)

    def _intend(self, record: InstallRecord, step_id: str, **changes: Any) -> InstallRecord:
        """Record what ``step_id`` is about to change, before it changes anything."""
        record = record.with_intent(step_id, **changes)
        save_record(record)
        _test_kill(KILL_BEFORE_HOOK, step_id)
        return record

    # --- running the plan -----------------------------------------------------------

    def nothing_to_do(self, plan: InstallPlan) -> dict[str, Any]:
        """Every step is done. Only a record left unfinished (a run killed after its last
        step), missing or damaged is completed; the host itself is not touched."""
        read = read_record()
        record = read.record
        needed = [s.id for s in plan.steps if not s.skip_reason]
        if (
            record is None
            or read.damage is not None  # rebuilt from what survived: write it whole again
            or record.bundle_sha256 != self.sha
            or record.finished_at is None
            or any(not record.completed(step) for step in needed)
        ):
            return {**self.run(plan), "changed": False}
        for step in plan.steps:
            self.results.append((step.id, step.state, ""))
        return {**self._summary(), "changed": False}

    def run(self, plan: InstallPlan) -> dict[str, Any]:
        record = self.start_record()
        # Temporary files of atomic writes a killed run left beside the files install manages.
        keyring = keyring_path(self.manifest.signer_fingerprint)
        managed = (RECORD_PATH, *companion_paths(RECORD_PATH), SOURCES_LIST, keyring)
        sweep_leftovers(*managed, *map(Path, record.files_created))
        save_record(record)
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
                    record = self._reconcile_packages(record)
                record = record.with_step(step.id)
                continue
            self.console.step(step.title)
            try:
                record, detail = self._do(step.id, record)
            except GpubundleError as failure:
                err = tool_ran_out_of_space(failure)  # a full disk is named as such
                self.results.append((step.id, "FAILED", err.message))
                if step.id in _RUNTIME_STEPS and record.runtime_change is not None:
                    raise self._roll_back(record, err) from err
                if err is failure:
                    raise
                raise err from failure
            self.results.append((step.id, "done", detail))
            _test_kill(KILL_UNRECORDED_HOOK, step.id)
            self._save(record, step.id)
        save_record(dataclasses.replace(record, finished_at=now()))
        return {**self._summary(), "changed": True}

    def _do(self, step_id: str, record: InstallRecord) -> tuple[InstallRecord, str]:
        action = {
            EXTRACT: self.extract,
            APT_SOURCE: self.apt_source,
            RECOVER: self.recover_dpkg,
            PACKAGES: self.packages,
            RUNTIME: self.configure_runtime,
            RESTART: self.restart,
            IMAGES: self.load_images,
            PROOF: self.prove,
        }[step_id]
        record, detail = action(record)
        if step_id == RECOVER:
            # A repair of dpkg's state, not a change of gpubundle's: nothing for uninstall
            # to undo, so the record of a recovered install equals that of a clean one.
            return dataclasses.replace(record, in_progress=None), detail
        return record.with_step(step_id), detail

    # --- the steps ------------------------------------------------------------------

    def extract(self, record: InstallRecord) -> tuple[InstallRecord, str]:
        record = self._intend(record.with_files(str(self.bundle_dir)), EXTRACT)
        _test_fill()
        self.bundle_dir.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        for partial in staging_leftovers(self.bundle_dir):  # of a run killed while extracting
            shutil.rmtree(partial)
        if not self.bundle_dir.is_dir():
            verify_bundle(self.bundle, self.trusted, extract_to=self.bundle_dir)
        # The staging directory was made private; apt's _apt user must read the repo.
        os.chmod(self.bundle_dir, 0o755)
        return record.with_files(str(self.bundle_dir)), str(self.bundle_dir)

    def apt_source(self, record: InstallRecord) -> tuple[InstallRecord, str]:
        key = read_signer_key(self.bundle, self.manifest.signer_fingerprint, self.trusted)
        planned = (keyring_path(self.manifest.signer_fingerprint), SOURCES_LIST)
        record = self._intend(record.with_files(*map(str, planned)), APT_SOURCE)
        paths = install_source(key, self.manifest.signer_fingerprint, self.bundle_dir / REPO_DIR)
        return record.with_files(*map(str, paths)), ", ".join(map(str, paths))

    def _apt_progress(self, line: str) -> None:
        if line.startswith(("Unpacking ", "Setting up ", "Processing triggers", "Preparing ")):
            self.console.info(f"    {line.strip()}")

    def recover_dpkg(self, record: InstallRecord) -> tuple[InstallRecord, str]:
        """``dpkg --configure -a``: finish the dpkg work an interrupted run left (preflight
        allowed it: see ``preflight.recoverable``). A package left half-installed cannot be
        configured, so dpkg may fail on it and what depends on it; apt reinstalls it from
        the bundle in the packages step, which checks the result."""
        record = self._intend(record, RECOVER)
        before = read_dpkg_facts()
        what = ", ".join(p.describe() for p in before.interrupted) or "dpkg's journal"
        self.console.info(f"finishing dpkg's interrupted work: {what} (log: {self.apt_log})")
        try:
            run_apt(
                list(DPKG_CONFIGURE_PENDING),
                "finishing dpkg's interrupted work (dpkg --configure -a)",
                self.apt_log,
                self._apt_progress,
            )
        except GpubundleError as err:
            after = read_dpkg_facts()
            left = {p.name for p in after.interrupted}
            if after.journal or not left <= set(self.names):
                raise
            return record, f"{what}; left for apt to reinstall: {', '.join(sorted(left))} " + (
                f"({err.message})"
            )
        return record, f"finished: {what}"

    def packages(self, record: InstallRecord) -> tuple[InstallRecord, str]:
        pins = requested_pins(self.manifest)
        before = installed_versions(self.names, self.manifest.arch)
        self.console.info(
            f"apt reads only {SOURCES_LIST}; if another apt or dpkg holds the lock it waits "
            f"up to {DPKG_LOCK_TIMEOUT_S} s; its output: {self.apt_log}"
        )
        earlier = record.packages_installed
        # Write-ahead: every bundled package apt may install or upgrade. Uninstall removes
        # only those present and absent before gpubundle, so an over-estimate is safe.
        may_change = {
            p.name: p.version for p in self.manifest.packages if before.get(p.name) != p.version
        }
        # Ledgered apart from the record: should the record be lost, these stay gpubundle's.
        new = {n: v for n, v in may_change.items() if n not in record.packages_before}
        append_ledger(new, ledger_path(RECORD_PATH))
        # And the paths the packages' scripts may make that are absent now (config.toml).
        scripts = unownedpaths.intended(
            record.unowned_paths_created, unownedpaths.present(unownedpaths.UNOWNED_PATHS)
        )
        record = self._intend(
            record,
            PACKAGES,
            packages_installed={**earlier, **may_change},
            unowned_paths_created=scripts,
        )
        run_apt(apt_update_argv(SOURCES_LIST), "reading the bundle's package index", self.apt_log)
        lists = map(str, source_lists(self.bundle_dir / REPO_DIR))
        record = dataclasses.replace(
            record, apt_lists=tuple(dict.fromkeys((*record.apt_lists, *lists)))
        )
        save_record(record)
        run_apt(
            apt_install_argv(SOURCES_LIST, pins),
            "installing the packages",
            self.apt_log,
            self._apt_progress,
        )
        self._check_dpkg_finished({**package_changes(self.manifest, before), **pins})
        after = installed_versions(self.names, self.manifest.arch)
        changed = changed_packages(before, after)
        # Against packages_before, not this run's start: a killed run's installs count too.
        ours = changed_packages(record.packages_before, after)
        installed = {**earlier, **ours}
        detail = ", ".join(f"{n} {v}" for n, v in changed.items()) or "no package changed"
        made = unownedpaths.observed(scripts, unownedpaths.fingerprints(scripts))
        return dataclasses.replace(
            record, packages_installed=installed, unowned_paths_created=made
        ), detail

    def _check_dpkg_finished(self, wanted: dict[str, str]) -> None:
        """After apt returned 0: dpkg's journal is empty and every planned package is
        "install ok installed" at the bundle's version; else the step fails."""
        facts = read_dpkg_facts()
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
                details=[*wrong, f"apt's output: {self.apt_log}"],
            )

    def _reconcile_packages(self, record: InstallRecord) -> InstallRecord:
        """packages_installed as the host has it, after a run was killed once apt was done
        (the record still holds the write-ahead estimate)."""
        now = installed_versions(self.names, self.manifest.arch)
        kept = {n: v for n, v in record.packages_installed.items() if n not in self.names}
        ours = changed_packages(record.packages_before, now)
        scripts = record.unowned_paths_created
        return dataclasses.replace(
            record,
            packages_installed=dict(sorted({**kept, **ours}.items())),
            unowned_paths_created=unownedpaths.observed(
                scripts, unownedpaths.fingerprints(scripts)
            ),
        )

    def _engine(self) -> engines.EngineAdapter:
        return engines.adapter_for(self.opts.runtime)

    def configure_runtime(self, record: InstallRecord) -> tuple[InstallRecord, str]:
        adapter = self._engine()
        path, kind = adapter.config_path(), adapter.file_kind
        if record.runtime_pending and record.runtime_change is not None:
            if runtime_intent.undo_pending_runtime(record.runtime_change):
                self.console.info(f"restored {path} as it was before an interrupted run")
            record = dataclasses.replace(record, runtime_change=None)
        intent = (
            None
            if record.runtime_change
            else runtime_intent.intended_runtime_change(path, runtime_intent.BACKUP_DIR, kind)
        )
        if intent is not None:
            record = self._intend(record, RUNTIME, runtime_change=intent)
        else:
            record = self._intend(record, RUNTIME)
        change = adapter.configure(path, runtime_intent.BACKUP_DIR)
        if not change.changed and record.runtime_change and not record.runtime_pending:
            # configured by an earlier run: keep the change that records the original file
            return record, f"{path} already configured"
        detail = f"{path} " + ("updated" if change.changed else "already configured")
        return dataclasses.replace(record, runtime_change=change.as_dict()), detail

    def restart(self, record: InstallRecord) -> tuple[InstallRecord, str]:
        adapter = self._engine()
        facts = adapter.detect()
        self.engine_before = facts
        self.engine_env = engines.daemon.process_environ(facts.pid) if facts.pid else None
        if adapter.records_start:
            started = record.engine_started_by_gpubundle or not facts.running
            record = self._intend(record, RESTART, engine_started_by_gpubundle=started)
        else:
            record = self._intend(record, RESTART)
        outcome = adapter.restart(facts, Path(LOG_DIR), env=self.engine_env)
        version = adapter.wait_ready(facts, outcome, ENGINE_READY_TIMEOUT_S)
        return record, f"{outcome.method}; {adapter.label} {version} answers"

    def load_images(self, record: InstallRecord) -> tuple[InstallRecord, str]:
        archives = [self.bundle_dir / a for a in image_archives(self.manifest)]
        # Images Docker had before are the user's: not recorded, so uninstall keeps them.
        had = {i.ref for i in self.manifest.images if containers.image_present(i.ref)}
        coming = [i.ref for i in self.manifest.images if i.ref not in had]
        record = self._intend(
            record, IMAGES, images_loaded=tuple(dict.fromkeys((*record.images_loaded, *coming)))
        )
        size = sum(a.stat().st_size for a in archives)
        with self.console.progress("loading images", size) as bar:
            refs = containers.load_archives(archives, bar)
        new = [r for r in refs if r not in had]
        loaded = tuple(dict.fromkeys((*record.images_loaded, *new)))
        detail = ", ".join(refs)
        if had:
            detail += f"; there before, so uninstall keeps: {', '.join(sorted(had))}"
        return dataclasses.replace(record, images_loaded=loaded), detail

    def _cdi_spec(self, record: InstallRecord, driver_version: str) -> tuple[InstallRecord, str]:
        """Generate the CDI spec where install should; the record and a note for the report."""
        path = containers.CDI_SPEC
        try:
            text: str | None = path.read_text(errors="replace")
        except OSError:
            text = None
        ours = str(path) in record.cdi_specs_created
        reason = containers.regeneration_reason(text, ours, driver_version)
        if not reason:
            return record, f"CDI spec {path} kept (current)"
        if text is None or ours:  # a stale spec of someone else's is replaced, not claimed
            # Write-ahead: recorded before nvidia-ctk writes it, so uninstall finds it.
            specs = tuple(dict.fromkeys((*record.cdi_specs_created, str(path))))
            record = self._intend(record, PROOF, cdi_specs_created=specs)
        try:
            spec, path_note = containers.generate_cdi_spec(output=path, host_smi=find_nvidia_smi())
        except GpubundleError as err:
            # The CDI attempt still runs and shows what Docker says; this says why.
            return record, f"CDI spec not generated ({reason}): {err.message}; " + "; ".join(
                err.details[-3:]
            )
        note = f"CDI spec {spec.path} generated ({reason}), mounts nvidia-smi at "
        note += spec.nvidia_smi or "?"
        return record, note + (f"; {path_note}" if path_note else "")

    def prove(self, record: InstallRecord) -> tuple[InstallRecord, str]:
        driver = read_driver_facts()
        uuids = driver.uuids
        support = containers.docker_support(containers.docker_info())
        problem = containers.rule_problem(self.proof_rule, support)
        if problem:
            raise GpubundleError(
                f"cannot prove the GPUs as asked: {problem}",
                hint="run install again with --proof default (the --gpus forms decide), "
                'or enable CDI in Docker 25+ ("features": {"cdi": true} in daemon.json)',
            )
        cdi_note = ""
        # Where Docker has no CDI, a spec that is there (for containerd, podman) is still
        # kept current; a new one is written only for a Docker that reads it.
        if support.cdi or containers.CDI_SPEC.exists():
            record, cdi_note = self._cdi_spec(record, driver.version)
        # The builtin verification image first, then any registry images.
        images = [i.ref for i in proof_images(self.manifest)]
        results = containers.prove_images(images, uuids, support, rule=self.proof_rule)
        self.console.table(
            ["image", "path", "result", "evidence"],
            containers.proof_rows(results),
            title="GPU proof",
        )
        self.proof = [r.as_dict() for r in results]
        failure = containers.proof_failure(results, uuids, driver.problem)
        if failure is not None:
            if cdi_note:
                failure.details = (*failure.details, cdi_note)
            raise failure
        detail = containers.proof_summary(results, uuids)
        return record, detail + (f"; {cdi_note}" if cdi_note else "")

    # --- rollback -------------------------------------------------------------------

    def _roll_back(self, record: InstallRecord, err: GpubundleError) -> GpubundleError:
        """Undo the runtime configuration after a later step failed; say what stays."""
        notes = [f"cause: {err.message}", *err.details]
        try:
            adapter = self._engine()
            adapter.undo(runtime_intent.runtime_change(record.runtime_change or {}))
            facts, env = adapter.as_before(adapter.detect(), self.engine_before, self.engine_env)
            outcome = adapter.restart(facts, Path(LOG_DIR), env=env)
            adapter.wait_ready(facts, outcome, ENGINE_READY_TIMEOUT_S)
            notes.append(
                "the container runtime configuration was restored and the engine restarted"
            )
            steps = tuple(s for s in record.steps_completed if s not in _RUNTIME_STEPS)
            record = dataclasses.replace(record, runtime_change=None, steps_completed=steps)
        except GpubundleError as undo:
            notes.append(f"rolling the runtime configuration back failed too: {undo.message}")
        save_record(record)
        kept = ", ".join(f"{n} {v}" for n, v in record.packages_installed.items()) or "none"
        left = f"left installed: packages {kept}; apt source {SOURCES_LIST}"
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
