"""The CLI frame: lazy commands, error rendering, exit codes, JSON errors."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from installer.cli import handle_errors, json_option, make_group
from installer.console import Console, format_table
from installer.errors import ExitCode, GpubundleError, VerificationError
from installer.runner import run


def test_help_teaches_the_two_commands() -> None:
    result = CliRunner().invoke(make_group(), ["--help"])
    assert result.exit_code == 0
    assert "gpubundle build --distro ubuntu22.04 --sign-key FPR" in result.output
    # the form the air-gapped host has: the installer file and its stock python3
    assert "sudo sh gpubundle-installer.pyz install BUNDLE" in result.output


def test_missing_lazy_module_is_not_listed() -> None:
    group = make_group({"ghost": "bundler.no_such_module:ghost"})
    result = CliRunner().invoke(group, ["--help"])
    assert "ghost" not in result.output


def _failing_command() -> click.Command:
    @click.command()
    @json_option
    def fail(json_mode: bool) -> None:
        console = Console(json_mode=json_mode)

        def body() -> None:
            raise VerificationError("bad hash", hint="copy it again", details=["a: x != y"])

        handle_errors(console, body)

    return fail


def test_error_renders_message_details_hint_and_exit_code() -> None:
    result = CliRunner().invoke(_failing_command(), [])
    assert result.exit_code == ExitCode.VERIFICATION
    assert "error: bad hash" in result.output
    assert "a: x != y" in result.output
    assert "hint: copy it again" in result.output


def test_error_as_json_on_stdout() -> None:
    result = CliRunner().invoke(_failing_command(), ["--json"])
    assert result.exit_code == ExitCode.VERIFICATION
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert doc["message"] == "bad hash"
    assert doc["exit_code"] == 3


def test_runner_reports_missing_program_by_name() -> None:
    try:
        run(["gpubundle-no-such-tool", "--x"])
    except GpubundleError as err:
        assert "gpubundle-no-such-tool not found" in err.message
    else:  # pragma: no cover
        raise AssertionError("expected GpubundleError")


def test_runner_failure_carries_output_tail() -> None:
    try:
        run(["sh", "-c", "echo first; echo oops >&2; exit 3"], hint="do X")
    except GpubundleError as err:
        assert "exit code 3" in err.message
        assert "oops" in err.details and "first" in err.details
        assert err.hint == "do X"
    else:  # pragma: no cover
        raise AssertionError("expected GpubundleError")


def test_runner_closes_stdin_and_pins_locale() -> None:
    proc = run(["sh", "-c", "cat; echo $LC_ALL"])
    assert proc.stdout == b"C.UTF-8\n"


def test_format_table_aligns_columns() -> None:
    text = format_table(["check", "result"], [["root", "ok"], ["distro", "mismatch"]])
    lines = text.splitlines()
    assert lines[0] == "check   result"
    assert lines[3] == "distro  mismatch"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tables_are_results_on_stdout_and_never_cut_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        ["libnvidia-container-tools", "1.20.1-1", "amd64", "nvidia", "x" * 60],
        ["nvidia-container-toolkit-base", "1.20.1-1", "amd64", "nvidia", "y" * 60],
    ]
    headers = ["package", "version", "arch", "source", "detail"]
    Console().table(headers, rows, title="plan")  # not a terminal: plain text
    out, err = capsys.readouterr()
    assert "libnvidia-container-tools" in out and err == ""

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setenv("COLUMNS", "80")
    Console().table(headers, rows, title="plan")  # a terminal at 80 columns: rich
    shown = re.sub(r"\x1b\[[0-9;]*m", "", terminal.getvalue())  # colours are not width
    assert "libnvidia-container-tools " in shown and "nvidia-container-toolkit-base " in shown
    assert max(len(line) for line in shown.splitlines()) <= 80


def test_results_go_to_stdout_and_progress_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    console = Console()
    console.step("verifying")
    console.info("reading")
    console.warn("careful")
    console.result("verified")
    out, err = capsys.readouterr()
    assert out == "verified\n"
    assert err == "==> verifying\nreading\nwarning: careful\n"
    Console(json_mode=True).result("verified")
    assert capsys.readouterr().out == ""


def test_no_library_log_noise_unless_debug(tmp_path: Path) -> None:
    """python-gnupg logs "gpg returned a non-zero error code" as a WARNING when a key is
    missing; the user gets only our error, the library's line only under --debug."""
    argv = [sys.executable, "-m", "bundler", "build", "--distro", "debian12",
            "--sign-key", "A" * 40, "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    # A GnuPG home that does not exist: gpg exits 2 and python-gnupg logs it.
    env = {**os.environ, "GNUPGHOME": str(tmp_path / "no-gnupg")}
    plain = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert plain.returncode == 2, plain.stderr
    assert plain.stderr.startswith("error: no secret key"), plain.stderr
    assert "gpg returned" not in plain.stderr
    debug = subprocess.run(
        [*argv[:3], "--debug", *argv[3:]], capture_output=True, text=True, env=env, check=False
    )
    assert debug.returncode == 2 and "gpg returned a non-zero error code" in debug.stderr
