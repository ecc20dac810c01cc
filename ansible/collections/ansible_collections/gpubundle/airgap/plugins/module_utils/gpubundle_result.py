"""The installer's command line and its answer, as Ansible sees them. Pure: no Ansible, no I/O.

``installer_argv`` builds the argv of ``python3 gpubundle-installer.pyz COMMAND … --json``
(check mode: ``install``/``uninstall`` get ``--dry-run``; ``doctor`` writes no archive).
``task_result`` maps what the installer printed and its exit code onto Ansible's
conventions: ``changed`` only when the installer says it changed something,
``failed`` with the installer's own message, hint and exit code, ``diff`` with the
plan's changes. The installer's whole ``--json`` document is returned as ``gpubundle``.

The exit codes are the installer's (README.md): 0 success, 1 failure, 2 usage,
3 verification, 4 preflight, 6 locked; ``doctor`` exits 1 when a check fails, with
its findings as the document, which is data here, not a failed task.
"""

from __future__ import annotations

import json
from typing import Any

COMMANDS = ("install", "verify", "uninstall", "doctor", "status")
EXIT_MEANINGS = {
    1: "an operation failed",
    2: "bad command line, or confirmation needed",
    3: "the bundle failed verification; nothing on the host was changed",
    4: "the host does not meet the bundle's requirements; nothing was changed",
    6: "another gpubundle run holds the lock",
    130: "interrupted",
}


def installer_argv(params: dict[str, Any], check_mode: bool) -> list[str]:
    """The argv for the module's parameters (``python``, ``installer``, ``command`` …)."""
    command = params["command"]
    argv = [params.get("python") or "python3", params["installer"], command]
    if command in ("install", "verify"):
        argv.append(params["bundle"])
        for fingerprint in params.get("trust") or ():
            argv += ["--trust", fingerprint]
    if command == "install":
        argv += ["--runtime", params.get("runtime") or "docker"]
        if params.get("skip_gpu_checks"):
            argv.append("--skip-gpu-checks")
        argv.append("--dry-run" if check_mode else "--yes")
    elif command == "uninstall":
        if params.get("keep_images"):
            argv.append("--keep-images")
        argv.append("--dry-run" if check_mode else "--yes")
    elif command == "doctor":
        for ref in params.get("images") or ():
            argv += ["--image", ref]
        if params.get("collect") and not check_mode:
            argv += ["--collect", params["collect"]]
    argv.append("--json")
    return argv


def parse_document(stdout: str) -> dict[str, Any] | None:
    """The one JSON object ``--json`` prints, or None when stdout holds none."""
    try:
        document = json.loads(stdout)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _tail(text: str, lines: int = 5) -> str:
    return " / ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())


def failure_message(command: str, rc: int, document: dict[str, Any] | None, stderr: str) -> str:
    """``gpubundle COMMAND failed (exit RC): MESSAGE; hint: HINT`` from the error document,
    else from the last lines of stderr (a usage error prints no JSON)."""
    head = f"gpubundle {command} failed (exit {rc}"
    meaning = EXIT_MEANINGS.get(rc)
    head += f": {meaning})" if meaning else ")"
    if document and document.get("message"):
        text = f"{head}: {document['message']}"
        details = document.get("details") or []
        if details:
            text += " [" + "; ".join(str(d) for d in details) + "]"
        if document.get("hint"):
            text += f"; hint: {document['hint']}"
        return text
    return f"{head}: {_tail(stderr) or 'no output'}"


def plan_changes(plan: dict[str, Any]) -> list[str]:
    """``step: change`` for every pending step of an install plan, in plan order."""
    lines = []
    for step in plan.get("steps") or ():
        if step.get("pending"):
            lines += [f"{step['id']}: {change}" for change in step.get("changes") or ()]
    return lines


def uninstall_changes(document: dict[str, Any]) -> list[str]:
    """One line per action of an uninstall plan, with its targets."""
    lines = []
    for action in document.get("actions") or ():
        targets = ", ".join(str(t) for t in action.get("targets") or ())
        summary = str(action.get("summary", action.get("kind", "?")))
        lines.append(f"{summary}: {targets}" if targets else summary)
    return lines


def _diff(header: str, lines: list[str]) -> dict[str, str]:
    return {"prepared": "\n".join([header, *(f"+ {line}" for line in lines)]) + "\n"}


def task_result(
    command: str, rc: int, stdout: str, stderr: str, check_mode: bool, fail_on_findings: bool
) -> dict[str, Any]:
    """The module's result for one installer run (see the module docstring)."""
    document = parse_document(stdout)
    result: dict[str, Any] = {"changed": False, "rc": rc, "gpubundle": document}
    findings = document is not None and "findings" in document
    if command == "doctor" and findings and rc in (0, 1):
        status = document.get("status", "") if document else ""
        result.update(findings=document["findings"] if document else [], status=status)
        failures = [f for f in result["findings"] if f.get("status") == "failure"]
        result["msg"] = f"doctor: {status}, {len(failures)} failing check(s)"
        if document and document.get("collected"):
            result["collected"] = document["collected"]
        # Set either way: Ansible counts a result with a non-zero rc as failed otherwise.
        result["failed"] = bool(failures and fail_on_findings)
        return result
    if rc != 0 or document is None or document.get("ok") is not True:
        result.update(failed=True, msg=failure_message(command, rc, document, stderr))
        if document:
            result.update(exit_code=document.get("exit_code", rc), hint=document.get("hint", ""))
        else:
            result.update(exit_code=rc, stderr_tail=_tail(stderr, 20))
        return result
    if command == "install":
        plan = document.get("plan") or {}
        lines = plan_changes(plan)
        result["plan"] = plan
        if check_mode:
            result["changed"] = bool(lines)
        else:
            result["changed"] = bool((document.get("result") or {}).get("changed"))
            result["record"] = document.get("record")
        if result["changed"]:
            header = f"gpubundle install plan ({plan.get('bundle_sha256', '')})"
            result["diff"] = _diff(header, lines)
        result["msg"] = (
            ("would install" if check_mode else "installed")
            + f" nvidia-container-toolkit {plan.get('toolkit_version', '')}: "
            + (
                f"{len(lines)} change(s)"
                if result["changed"]
                else "already installed, every step done"
            )
        )
    elif command == "uninstall":
        lines = uninstall_changes(document)
        result["changed"] = not document.get("nothing_to_do", False)
        result["actions"] = document.get("actions") or []
        result["notes"] = document.get("notes") or []
        if result["changed"]:
            result["diff"] = _diff("gpubundle uninstall plan", lines)
        verb = "would undo" if check_mode else "undid"
        result["msg"] = (
            f"{verb} {len(lines)} action(s)"
            if result["changed"]
            else "nothing to do: gpubundle has not installed anything here"
        )
    elif command == "verify":
        result["msg"] = (
            f"verified: {document.get('distro')}/{document.get('arch')}, nvidia-container-toolkit "
            f"{document.get('toolkit_version')}, signed by {document.get('signer')}"
        )
    else:
        result["msg"] = f"gpubundle {command}: ok"
    return result
