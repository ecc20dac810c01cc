"""The gpubundle.airgap module's pure half, without Ansible: the installer's argv for each
command and check mode, and the mapping of its ``--json`` document and exit code onto
Ansible's ``changed``/``failed``/``msg``/``diff``; and the module's documented options
against its argument spec (what ``ansible-doc`` shows is what the module accepts)."""

from __future__ import annotations

import ast
import importlib.util
import json
from types import ModuleType
from typing import Any

import pytest

from tests.support.ansibleplay import COLLECTION

MODULE = COLLECTION / "plugins" / "modules" / "gpubundle.py"


def _load() -> ModuleType:
    path = COLLECTION / "plugins" / "module_utils" / "gpubundle_result.py"
    spec = importlib.util.spec_from_file_location("gpubundle_result", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R = _load()
PARAMS: dict[str, Any] = {
    "command": "install", "python": "/usr/bin/python3", "installer": "/d/gpubundle-installer.pyz",
    "bundle": "/d/b.tar.zst", "trust": ["AAAA", "BBBB"], "runtime": "none",
    "skip_gpu_checks": True, "keep_images": False, "collect": None, "images": [],
}  # fmt: skip
PLAN = {
    "bundle_sha256": "ab" * 32,
    "toolkit_version": "1.20.1-1",
    "packages": {"nvidia-container-toolkit": "1.20.1-1"},
    "steps": [
        {"id": "extract", "pending": True, "changes": ["unpack the bundle into /var/lib/x"]},
        {"id": "apt-source", "pending": False, "changes": ["add the local source"]},
        {"id": "packages", "pending": True, "changes": ["install nvidia-container-toolkit"]},
    ],
}


def run(command: str, rc: int, document: Any, check: bool = False, stderr: str = "") -> Any:
    stdout = json.dumps(document) if document is not None else ""
    return R.task_result(command, rc, stdout, stderr, check, False)


# --- argv ------------------------------------------------------------------------------


def test_install_argv_is_the_installers_command_line() -> None:
    assert R.installer_argv(PARAMS, check_mode=False) == [
        "/usr/bin/python3", "/d/gpubundle-installer.pyz", "install", "/d/b.tar.zst",
        "--trust", "AAAA", "--trust", "BBBB", "--runtime", "none", "--skip-gpu-checks",
        "--yes", "--json",
    ]  # fmt: skip


def test_check_mode_is_dry_run_for_install_and_uninstall() -> None:
    assert R.installer_argv(PARAMS, check_mode=True)[-2:] == ["--dry-run", "--json"]
    uninstall = {**PARAMS, "command": "uninstall", "keep_images": True}
    assert R.installer_argv(uninstall, check_mode=True)[2:] == [
        "uninstall",
        "--keep-images",
        "--dry-run",
        "--json",
    ]
    assert R.installer_argv(uninstall, check_mode=False)[-2:] == ["--yes", "--json"]


def test_verify_takes_bundle_and_trust_only() -> None:
    verify = {**PARAMS, "command": "verify"}
    assert R.installer_argv(verify, check_mode=True)[2:] == [
        "verify",
        "/d/b.tar.zst",
        "--trust",
        "AAAA",
        "--trust",
        "BBBB",
        "--json",
    ]


def test_doctor_collects_only_outside_check_mode() -> None:
    doctor = {**PARAMS, "command": "doctor", "collect": "/d/doc.tar.gz", "images": ["cuda:12"]}
    assert R.installer_argv(doctor, check_mode=False)[2:] == [
        "doctor",
        "--image",
        "cuda:12",
        "--collect",
        "/d/doc.tar.gz",
        "--json",
    ]
    assert "--collect" not in R.installer_argv(doctor, check_mode=True)


# --- install ---------------------------------------------------------------------------


def test_install_that_changed_reports_changed_and_the_plans_diff() -> None:
    result = run("install", 0, {"ok": True, "plan": PLAN, "result": {"changed": True},
                                "record": {"finished_at": "t"}})  # fmt: skip
    assert result["changed"] is True and "failed" not in result
    assert result["record"] == {"finished_at": "t"}
    prepared = result["diff"]["prepared"]
    assert "+ extract: unpack the bundle into /var/lib/x" in prepared
    assert "+ packages: install nvidia-container-toolkit" in prepared
    assert "apt-source" not in prepared  # done already: not a change
    assert result["msg"] == "installed nvidia-container-toolkit 1.20.1-1: 2 change(s)"


def test_already_installed_is_not_changed() -> None:
    done = {**PLAN, "steps": [{**s, "pending": False} for s in PLAN["steps"]]}
    result = run("install", 0, {"ok": True, "plan": done, "result": {"changed": False}})
    assert result["changed"] is False
    assert "diff" not in result
    assert "already installed" in result["msg"]


def test_check_mode_changed_follows_the_plans_pending_steps() -> None:
    dry = run("install", 0, {"ok": True, "dry_run": True, "plan": PLAN}, check=True)
    assert dry["changed"] is True and dry["msg"].startswith("would install")
    assert "record" not in dry
    done = {**PLAN, "steps": [{**s, "pending": False} for s in PLAN["steps"]]}
    assert (
        run("install", 0, {"ok": True, "dry_run": True, "plan": done}, check=True)["changed"]
        is False
    )


# --- failures --------------------------------------------------------------------------


def test_verification_failure_carries_message_hint_and_exit_code() -> None:
    error = {
        "ok": False, "error": "VerificationError", "exit_code": 3,
        "message": "b.tar.zst is not a valid zstd stream", "hint": "copy it again",
        "details": ["part002: sha256 differs"],
    }  # fmt: skip
    result = run("verify", 3, error)
    assert result["failed"] is True and result["changed"] is False
    assert result["exit_code"] == 3 and result["hint"] == "copy it again"
    assert result["msg"] == (
        "gpubundle verify failed (exit 3: the bundle failed verification; nothing on the host "
        "was changed): b.tar.zst is not a valid zstd stream [part002: sha256 differs]; "
        "hint: copy it again"
    )


@pytest.mark.parametrize(("rc", "meaning"), [(4, "requirements"), (6, "lock"), (1, "failed")])
def test_every_failure_exit_code_is_named(rc: int, meaning: str) -> None:
    result = run("install", rc, {"ok": False, "message": "m", "hint": "", "exit_code": rc})
    assert result["failed"] is True and meaning in result["msg"]


def test_no_json_is_a_failure_with_the_end_of_stderr() -> None:
    result = run("install", 2, None, stderr="Usage: x\nError: No such option: --bogus\n")
    assert result["failed"] is True and result["exit_code"] == 2
    assert result["msg"].endswith("Usage: x / Error: No such option: --bogus")


def test_exit_zero_without_ok_is_still_a_failure() -> None:
    assert run("install", 0, {"ok": False, "message": "m"})["failed"] is True


# --- uninstall, doctor, verify -----------------------------------------------------------


def test_uninstall_changed_unless_nothing_to_do() -> None:
    actions = [{"kind": "purge", "summary": "purge packages", "targets": ["a", "b"]}]
    result = run("uninstall", 0, {"ok": True, "nothing_to_do": False, "actions": actions})
    assert result["changed"] is True
    assert "+ purge packages: a, b" in result["diff"]["prepared"]
    nothing = run("uninstall", 0, {"ok": True, "nothing_to_do": True, "actions": []})
    assert nothing["changed"] is False and "nothing to do" in nothing["msg"]


def test_doctor_findings_are_data_not_a_failure() -> None:
    findings = [{"check_id": "driver.loaded", "status": "failure"},
                {"check_id": "toolkit.installed", "status": "ok"}]  # fmt: skip
    doc = {"ok": False, "status": "failure", "findings": findings,
           "collected": {"file": "/d/doc.tar.gz", "members": ["doctor.json"]}}  # fmt: skip
    result = run("doctor", 1, doc)
    assert result["failed"] is False and result["changed"] is False
    assert result["findings"] == findings and result["status"] == "failure"
    assert result["collected"]["file"] == "/d/doc.tar.gz"
    assert result["msg"] == "doctor: failure, 1 failing check(s)"
    strict = R.task_result("doctor", 1, json.dumps(doc), "", False, True)
    assert strict["failed"] is True


def test_doctor_error_document_is_a_failure() -> None:
    result = run("doctor", 1, {"ok": False, "message": "cannot read /etc", "exit_code": 1})
    assert result["failed"] is True and "cannot read /etc" in result["msg"]


def test_verify_never_changes() -> None:
    doc = {"ok": True, "distro": "debian12", "arch": "amd64", "toolkit_version": "1.20.1-1",
           "signer": "AAAA"}  # fmt: skip
    result = run("verify", 0, doc)
    assert result["changed"] is False and "failed" not in result
    assert (
        result["msg"]
        == "verified: debian12/amd64, nvidia-container-toolkit 1.20.1-1, signed by AAAA"
    )


# --- the documented options are the argument spec ----------------------------------------


def _module_constants() -> dict[str, Any]:
    tree = ast.parse(MODULE.read_text())
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("DOCUMENTATION", "ARGUMENT_SPEC"):
                found[name] = ast.literal_eval(node.value)
    return found


def test_documentation_matches_the_argument_spec() -> None:
    yaml = pytest.importorskip("yaml")
    constants = _module_constants()
    documented = yaml.safe_load(constants["DOCUMENTATION"])["options"]
    spec: dict[str, dict[str, Any]] = constants["ARGUMENT_SPEC"]
    assert documented.keys() == spec.keys()
    for name, option in spec.items():
        doc = documented[name]
        assert doc["type"] == option["type"], name
        assert doc.get("required", False) == option.get("required", False), name
        assert doc.get("default") == option.get("default"), name
        assert doc.get("choices") == option.get("choices"), name
        assert doc.get("elements") == option.get("elements"), name
        assert doc["description"], name
    assert tuple(spec["command"]["choices"]) == R.COMMANDS
