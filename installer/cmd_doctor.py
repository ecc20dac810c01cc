"""``gpubundle doctor``: diagnose why GPU containers fail, without changing anything."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from installer.cli import handle_errors, host_paths, json_option
from installer.console import Console
from installer.doctor import gather, judge, report
from installer.doctor.checks import DoctorPaths, Finding, worst
from installer.doctor.collect import collect
from installer.hostpaths import HostPaths

_MARK = {"ok": "ok", "warning": "WARN", "failure": "FAIL", "skipped": "skip"}


def render(findings: list[Finding]) -> str:
    lines = []
    for f in findings:
        lines.append(f"[{_MARK[f.status]:>4}] {f.check_id}: {f.summary}")
        if f.status in ("warning", "failure"):
            lines.extend(f"         {e}" for e in f.evidence if e)
            lines.extend(f"   fix:  {cmd}" for cmd in f.fix)
    counts = {s: sum(1 for f in findings if f.status == s) for s in _MARK}
    lines.append(
        f"\n{counts['failure']} failure(s), {counts['warning']} warning(s), "
        f"{counts['ok']} ok, {counts['skipped']} skipped"
    )
    return "\n".join(lines)


@click.command()
@json_option
@click.option(
    "--collect",
    "collect_to",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a redacted diagnostic tar.gz to FILE (for a support request).",
)
@click.option(
    "--image",
    "images",
    multiple=True,
    metavar="REF",
    help="Also check this local image (CUDA requirement, nvidia-smi usable). Repeatable.",
)
@click.option(
    "--daemon-json",
    type=click.Path(path_type=Path),
    default=HostPaths.system().docker_daemon_json,  # shown; the command's host's when not given
    show_default=True,
    help="Docker's daemon configuration file.",
)
def doctor(
    json_mode: bool, collect_to: Path | None, images: tuple[str, ...], daemon_json: Path
) -> None:
    """Check driver, toolkit, Docker and known traps; print each finding with its fix.

    Read-only. Exits 1 when any check fails, 0 otherwise (warnings included).
    """
    console = Console(json_mode)
    given = click.get_current_context().get_parameter_source("daemon_json")
    told = given is not None and given != click.core.ParameterSource.DEFAULT

    def body() -> None:
        host = host_paths()
        paths = DoctorPaths.on(
            host, daemon_json=daemon_json if told else host.docker_daemon_json, images=images
        )
        facts = gather(paths)
        findings = judge(facts)
        document = report(findings)
        if collect_to is not None:
            document["collected"] = {
                "file": str(collect_to),
                "members": collect(paths, findings, collect_to, facts.cri),
            }
        if json_mode:
            console.emit(document)
        else:
            console.result(render(findings))  # the findings are the result: stdout
            if collect_to is not None:
                console.info(f"diagnostics written to {collect_to} (secrets redacted)")
        if worst(findings) == "failure":
            sys.exit(1)

    handle_errors(console, body)
