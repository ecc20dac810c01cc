"""The runtime and engine-restart steps, through the engine adapter of ``--runtime``.

A runtime change recorded as ``pending`` (a run killed while nvidia-ctk ran) is
rolled back to its backup before the step runs again.
"""

from __future__ import annotations

import dataclasses

from installer import engines, runtime_intent
from installer.installplan import RESTART, RUNTIME
from installer.record import InstallRecord
from installer.steps import StepContext

ENGINE_READY_TIMEOUT_S = 90


def configure(ctx: StepContext, record: InstallRecord) -> tuple[InstallRecord, str]:
    adapter = ctx.engine()
    path, kind, backups = adapter.config_path(ctx.host), adapter.file_kind, ctx.host.runtime_backups
    if record.runtime_pending and record.runtime_change is not None:
        if runtime_intent.undo_pending_runtime(record.runtime_change):
            ctx.console.info(f"restored {path} as it was before an interrupted run")
        record = dataclasses.replace(record, runtime_change=None)
    intent = (
        None
        if record.runtime_change
        else runtime_intent.intended_runtime_change(path, backups, kind)
    )
    if intent is not None:
        record = ctx.intend(record, RUNTIME, runtime_change=intent)
    else:
        record = ctx.intend(record, RUNTIME)
    change = adapter.configure(path, backups)
    if not change.changed and record.runtime_change and not record.runtime_pending:
        # configured by an earlier run: keep the change that records the original file
        return record, f"{path} already configured"
    detail = f"{path} " + ("updated" if change.changed else "already configured")
    return dataclasses.replace(record, runtime_change=change.as_dict()), detail


def restart(ctx: StepContext, record: InstallRecord) -> tuple[InstallRecord, str]:
    adapter = ctx.engine()
    facts = adapter.detect(ctx.host)
    ctx.engine_before = facts
    ctx.engine_env = engines.daemon.process_environ(facts.pid, ctx.host.proc) if facts.pid else None
    if adapter.records_start:
        started = record.engine_started_by_gpubundle or not facts.running
        record = ctx.intend(record, RESTART, engine_started_by_gpubundle=started)
    else:
        record = ctx.intend(record, RESTART)
    outcome = adapter.restart(facts, ctx.host, env=ctx.engine_env)
    version = adapter.wait_ready(facts, outcome, ENGINE_READY_TIMEOUT_S)
    return record, f"{outcome.method}; {adapter.label} {version} answers"


def undo(ctx: StepContext, record: InstallRecord) -> None:
    """The runtime configuration restored and the engine restarted as it ran before."""
    adapter = ctx.engine()
    adapter.undo(runtime_intent.runtime_change(record.runtime_change or {}))
    facts, env = adapter.as_before(adapter.detect(ctx.host), ctx.engine_before, ctx.engine_env)
    outcome = adapter.restart(facts, ctx.host, env=env)
    adapter.wait_ready(facts, outcome, ENGINE_READY_TIMEOUT_S)
