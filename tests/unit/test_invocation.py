"""Fixes are printed in the form the host runs gpubundle in (issue #9: `gpubundle install`
cannot be followed where the host has `python3 gpubundle-installer.pyz`)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from installer import invocation

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv0", "form"),
    [
        ("gpubundle-installer.pyz", "python3 gpubundle-installer.pyz"),
        ("/root/gpubundle-installer.pyz", "python3 /root/gpubundle-installer.pyz"),
        ("/media/usb stick/gpubundle-installer.pyz", "python3 '/media/usb stick/gpubundle-installer.pyz'"),
        ("/usr/local/bin/gpubundle", "gpubundle"),
        ("/work/main/installer/__main__.py", "python3 -m installer"),
        ("/usr/lib/python3/dist-packages/pytest/__main__.py", invocation.DEFAULT_PROGRAM),
        ("", invocation.DEFAULT_PROGRAM),
    ],
)  # fmt: skip
def test_program_form_follows_how_it_was_started(
    argv0: str, form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(invocation.LAUNCHER, raising=False)
    assert invocation.program(argv0) == form


def test_rerun_install_and_commands() -> None:
    assert invocation.rerun_install("/root/gpubundle-installer.pyz") == (
        "python3 /root/gpubundle-installer.pyz install BUNDLE --trust FINGERPRINT"
    )
    assert invocation.command("doctor", argv0="gpubundle") == "gpubundle doctor"


def test_started_by_the_sh_preamble_says_sh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(invocation.LAUNCHER, "sh")
    assert invocation.program("/root/gpubundle-installer.pyz") == (
        "sh /root/gpubundle-installer.pyz"
    )
    assert invocation.DEFAULT_PROGRAM == "sh gpubundle-installer.pyz"


def test_default_is_the_running_programs_own_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/tmp/x/gpubundle-installer.pyz", "doctor"])
    assert invocation.rerun_install().startswith("python3 /tmp/x/gpubundle-installer.pyz install")


def _printed_strings(tree: ast.AST) -> list[ast.Constant]:
    """String literals that can reach a user: not docstrings, not the lock holder's label."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            skip.add(id(body[0].value))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "host_lock":
            skip.update(id(n) for n in ast.walk(node))
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in skip
    ]


NOT_RUNNABLE_OFFLINE = re.compile(
    r"apt-get install|apt install|pip install|\bgpubundle (?:install|uninstall|doctor|verify)\b"
)


def test_no_fix_in_the_installer_says_gpubundle_install_or_fetches_from_the_network() -> None:
    """Every hint and fix the target side prints must be runnable on the air-gapped host."""
    offenders = []
    for path in sorted((REPO / "installer").rglob("*.py")):
        if path.name == "cli.py":  # the group's usage text names the commands generically
            continue
        for node in _printed_strings(ast.parse(path.read_text())):
            if NOT_RUNNABLE_OFFLINE.search(node.value):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value}")
    assert offenders == []
