"""The install steps, run in plan order with the install record saved after each.

Every step checks before it acts, so a run killed anywhere can be run again and
completes. A failure after the container runtime was configured rolls that
configuration back (and restarts the engine) and says what stays installed.
The runtime, engine and container steps call ``installer.runtime_config``,
``installer.engine`` and ``installer.containers``.

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
``GPUBUNDLE_TEST_KILL_AFTER=<step id>`` right after recording it. Nothing else
reads these variables.
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

from installer import (
    __version__,
    containers,
    criengine,
    engine,
    runtime_config,
    runtime_intent,
    runtime_toml,
    unownedpaths,
)
from installer.aptlocal import (
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
from installer.bundle_reader import verify_bundle
from installer.console import Console
from installer.errors import GpubundleError, VerificationError
from installer.gpu import read_driver_facts
from installer.hostinfo import installed_versions
from installer.installplan import (
    APT_SOURCE,
    EXTRACT,
    IMAGES,
    PACKAGES,
    PROOF,
    RESTART,
    RUNTIME,
    InstallPlan,
    image_archives,
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
    InstallRecord,
    carried_over,
    load_record,
    original_packages,
    save_record,
    staging_leftovers,
)
from installer.zstd_stream import open_zstd

KILL_HOOK = "GPUBUNDLE_TEST_KILL_AFTER"
KILL_BEFORE_HOOK = "GPUBUNDLE_TEST_KILL_BEFORE"
KILL_UNRECORDED_HOOK = "GPUBUNDLE_TEST_KILL_UNRECORDED"
ENGINE_READY_TIMEOUT_S = 90
_RUNTIME_STEPS = (RUNTIME, RESTART, IMAGES, PROOF)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def read_signer_key(bundle: Path, fingerprint: str) -> bytes:
    """The signer's public key from the bundle's head, checked to be the key with ``fingerprint``.

    The extracted bundle holds only the manifest's files; the key that apt will trust
    for the local repository is read from the head again and must be the signer's.
    """
    # A split bundle's index must be signed by that key too; only the head's parts are read.
    source = open_source(bundle, [fingerprint])
    with (
        source.reading(complete=False) as raw,
        open_zstd(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,  # type: ignore[call-overload]
    ):
        for _, info in zip(HEAD_MEMBERS, tar, strict=False):
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
    return key


def _test_kill(hook: str, step_id: str) -> None:
    if os.environ.get(hook) == step_id:
        os.kill(os.getpid(), signal.SIGKILL)


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
    ) -> None:
        self.bundle, self.trusted, self.manifest = bundle, list(trusted), manifest
        self.sha, self.bundle_dir, self.opts, self.console = sha, bundle_dir, opts, console
        self.stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.results: list[tuple[str, str, str]] = []
        self.names = sorted({p.name for p in manifest.packages})
        # How dockerd ran before we restarted it: a rollback must start it the same way.
        self.engine_before: engine.EngineFacts | None = None
        self.engine_env: dict[str, str] | None = None

    def rows(self) -> list[list[str]]:
        return [list(r) for r in self.results]

    def _summary(self) -> dict[str, Any]:
        return {"steps": [{"id": i, "result": r, "detail": d} for i, r, d in self.results]}

    # --- the record -----------------------------------------------------------------

    def start_record(self) -> InstallRecord:
        previous = load_record()
        if previous is not None and previous.bundle_sha256 == self.sha:
            return dataclasses.replace(previous, finished_at=None)
        m = self.manifest
        return InstallRecord(
            gpubundle_version=__version__,
            bundle_sha256=self.sha,
            signer_fingerprint=m.signer_fingerprint,
            distro=m.distro,
            arch=m.arch,
            toolkit_version=m.toolkit_version,
            started_at=now(),
            packages_before=original_packages(previous, installed_versions(self.names, m.arch)),
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
        step) or missing is completed; the host itself is not touched."""
        record = load_record()
        needed = [s.id for s in plan.steps if not s.skip_reason]
        if (
            record is None
            or record.bundle_sha256 != self.sha
            or record.finished_at is None
            or any(not record.completed(step) for step in needed)
        ):
            return self.run(plan) | {"changed": False}
        for step in plan.steps:
            self.results.append((step.id, step.state, ""))
        return self._summary() | {"changed": False}

    def run(self, plan: InstallPlan) -> dict[str, Any]:
        record = self.start_record()
        save_record(record)
        for step in plan.steps:
            if step.skip_reason:
                self.results.append((step.id, "skipped", step.skip_reason))
                continue
            if step.done:
                self.results.append((step.id, "already done", ""))
                if step.id in (EXTRACT, APT_SOURCE):
                    record = record.with_files(*step.paths)
                if step.id == PACKAGES and record.in_progress == PACKAGES:
                    record = self._reconcile_packages(record)
                record = record.with_step(step.id)
                continue
            self.console.step(step.title)
            try:
                record, detail = self._do(step.id, record)
            except GpubundleError as err:
                self.results.append((step.id, "FAILED", err.message))
                if step.id in _RUNTIME_STEPS and record.runtime_change is not None:
                    raise self._roll_back(record, err) from err
                raise
            self.results.append((step.id, "done", detail))
            _test_kill(KILL_UNRECORDED_HOOK, step.id)
            self._save(record, step.id)
        save_record(dataclasses.replace(record, finished_at=now()))
        return self._summary() | {"changed": True}

    def _do(self, step_id: str, record: InstallRecord) -> tuple[InstallRecord, str]:
        action = {
            EXTRACT: self.extract,
            APT_SOURCE: self.apt_source,
            PACKAGES: self.packages,
            RUNTIME: self.configure_runtime,
            RESTART: self.restart,
            IMAGES: self.load_images,
            PROOF: self.prove,
        }[step_id]
        record, detail = action(record)
        return record.with_step(step_id), detail

    # --- the steps ------------------------------------------------------------------

    def extract(self, record: InstallRecord) -> tuple[InstallRecord, str]:
        record = self._intend(record.with_files(str(self.bundle_dir)), EXTRACT)
        self.bundle_dir.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        for partial in staging_leftovers(self.bundle_dir):  # of a run killed while extracting
            shutil.rmtree(partial)
        if not self.bundle_dir.is_dir():
            verify_bundle(self.bundle, self.trusted, extract_to=self.bundle_dir)
        # The staging directory was made private; apt's _apt user must read the repo.
        os.chmod(self.bundle_dir, 0o755)
        return record.with_files(str(self.bundle_dir)), str(self.bundle_dir)

    def apt_source(self, record: InstallRecord) -> tuple[InstallRecord, str]:
        key = read_signer_key(self.bundle, self.manifest.signer_fingerprint)
        planned = (keyring_path(self.manifest.signer_fingerprint), SOURCES_LIST)
        record = self._intend(record.with_files(*map(str, planned)), APT_SOURCE)
        paths = install_source(key, self.manifest.signer_fingerprint, self.bundle_dir / REPO_DIR)
        return record.with_files(*map(str, paths)), ", ".join(map(str, paths))

    def packages(self, record: InstallRecord) -> tuple[InstallRecord, str]:
        pins = requested_pins(self.manifest)
        before = installed_versions(self.names, self.manifest.arch)
        self.console.info(
            f"apt reads only {SOURCES_LIST}; if another apt or dpkg holds the lock it waits "
            f"up to {DPKG_LOCK_TIMEOUT_S} s"
        )
        earlier = record.packages_installed
        # Write-ahead: every bundled package apt may install or upgrade. Uninstall removes
        # only those present and absent before gpubundle, so an over-estimate is safe.
        may_change = {
            p.name: p.version for p in self.manifest.packages if before.get(p.name) != p.version
        }
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
        run_apt(apt_update_argv(SOURCES_LIST), "reading the bundle's package index")
        lists = map(str, source_lists(self.bundle_dir / REPO_DIR))
        record = dataclasses.replace(
            record, apt_lists=tuple(dict.fromkeys((*record.apt_lists, *lists)))
        )
        save_record(record)
        run_apt(apt_install_argv(SOURCES_LIST, pins), "installing the packages")
        after = installed_versions(self.names, self.manifest.arch)
        wrong = [
            f"{n}: want {v}, have {after.get(n, 'none')}"
            for n, v in pins.items()
            if after.get(n) != v
        ]
        if wrong:
            raise GpubundleError(
                "apt finished but the requested packages are not at the bundle's versions",
                hint="check `apt-mark showhold` and `dpkg --audit`, then run install again",
                details=wrong,
            )
        changed = changed_packages(before, after)
        # Against packages_before, not this run's start: a killed run's installs count too.
        ours = changed_packages(record.packages_before, after)
        installed = {**earlier, **ours}
        detail = ", ".join(f"{n} {v}" for n, v in changed.items()) or "no package changed"
        made = unownedpaths.observed(scripts, unownedpaths.fingerprints(scripts))
        return dataclasses.replace(
            record, packages_installed=installed, unowned_paths_created=made
        ), detail

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

    def _config_file(self) -> tuple[Path, str]:
        """The file the runtime step changes, and its RuntimeChange kind."""
        runtime = self.opts.runtime
        if runtime in runtime_toml.RUNTIMES:
            return runtime_toml.DEFAULT_CONFIG[runtime], runtime_toml.FILE_KINDS[runtime]
        return engine.detect_engine().daemon_json, runtime_config.DOCKER_KIND

    def configure_runtime(self, record: InstallRecord) -> tuple[InstallRecord, str]:
        path, kind = self._config_file()
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
        if kind == runtime_config.DOCKER_KIND:
            change = runtime_config.configure_docker_runtime(path, runtime_intent.BACKUP_DIR)
        else:
            change = runtime_toml.configure_toml_runtime(
                self.opts.runtime, path, runtime_intent.BACKUP_DIR
            )
        if not change.changed and record.runtime_change and not record.runtime_pending:
            # configured by an earlier run: keep the change that records the original file
            return record, f"{path} already configured"
        detail = f"{path} " + ("updated" if change.changed else "already configured")
        return dataclasses.replace(record, runtime_change=change.as_dict()), detail

    def _restart_cri(self) -> str:
        runtime = self.opts.runtime
        facts = criengine.detect(runtime, runtime_toml.DEFAULT_CONFIG[runtime])
        if facts.kind == "none":
            raise GpubundleError(facts.problem, hint=f"install {runtime}, then re-run")
        outcome = criengine.restart(facts, Path(LOG_DIR))
        version = criengine.wait_until_ready(facts, outcome, ENGINE_READY_TIMEOUT_S)
        return f"{outcome.method}; {runtime} {version} answers"

    def restart(self, record: InstallRecord) -> tuple[InstallRecord, str]:
        if self.opts.runtime in runtime_toml.RUNTIMES:
            record = self._intend(record, RESTART)
            return record, self._restart_cri()
        facts = engine.detect_engine()
        self.engine_before = facts
        self.engine_env = engine.process_environ(facts.pid) if facts.pid else None
        started = record.engine_started_by_gpubundle or not facts.running
        record = self._intend(record, RESTART, engine_started_by_gpubundle=started)
        outcome = engine.restart_engine(facts, Path(LOG_DIR), env=self.engine_env)
        version = engine.wait_until_ready(ENGINE_READY_TIMEOUT_S, outcome)
        return record, f"{outcome.method}; Docker {version} answers"

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

    def prove(self, record: InstallRecord) -> tuple[InstallRecord, str]:
        driver = read_driver_facts()
        uuids = driver.uuids
        cdi = containers.cdi_enabled()
        cdi_note = ""
        if cdi and not containers.CDI_SPEC.exists():
            try:
                spec = containers.generate_cdi_spec()
            except GpubundleError as err:
                # Still prove what can be proved (--gpus) and say why CDI was not tried.
                cdi = False
                cdi_note = f"CDI not tried: {err.message}; " + "; ".join(err.details[-3:])
            else:
                specs = tuple(dict.fromkeys((*record.cdi_specs_created, spec.path)))
                record = dataclasses.replace(record, cdi_specs_created=specs)
                save_record(record)
                cdi_note = f"CDI spec {spec.path} mounts nvidia-smi at {spec.nvidia_smi or '?'}"
        # The builtin verification image first, then any registry images.
        images = [i.ref for i in proof_images(self.manifest)]
        results = containers.prove_images(images, uuids, cdi=cdi)
        failure = containers.proof_failure(results, uuids, driver.problem)
        if failure is not None:
            if cdi_note:
                failure.details = (*failure.details, cdi_note)
            raise failure
        forms = ", ".join(dict.fromkeys(a.name for r in results for a in r.attempts))
        detail = f"containers see {len(uuids)} GPU(s) in {', '.join(images)} ({forms})"
        return record, detail + (f"; {cdi_note}" if cdi_note else "")

    # --- rollback -------------------------------------------------------------------

    def _engine_to_restart(self) -> tuple[engine.EngineFacts, dict[str, str] | None]:
        """The engine now; if the failed restart left no dockerd, started as the one before.

        Without this a dockerd that would not start with the new configuration came back
        as a bare ``dockerd``: without its ``--data-root``, ``-H`` or bridge options.
        """
        facts = engine.detect_engine()
        before = self.engine_before
        if facts.pid or before is None or not before.argv:
            return facts, None
        return dataclasses.replace(facts, argv=before.argv), self.engine_env

    def _roll_back(self, record: InstallRecord, err: GpubundleError) -> GpubundleError:
        """Undo the runtime configuration after a later step failed; say what stays."""
        notes = [f"cause: {err.message}", *err.details]
        try:
            runtime_config.rollback_runtime(
                runtime_intent.runtime_change(record.runtime_change or {})
            )
            if self.opts.runtime in runtime_toml.RUNTIMES:
                self._restart_cri()
            else:
                facts, env = self._engine_to_restart()
                outcome = engine.restart_engine(facts, Path(LOG_DIR), env=env)
                engine.wait_until_ready(ENGINE_READY_TIMEOUT_S, outcome)
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
            + "fix it and run install again, or `gpubundle uninstall` to remove what was installed",
            details=notes,
        )
