"""The CLI frame: lazy commands, error rendering, exit codes, JSON errors."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from installer.cli import handle_errors, json_option, make_group
from installer.console import Console, format_table
from installer.errors import ExitCode, GpubundleError, VerificationError
from installer.runner import run


def test_help_teaches_the_two_commands() -> None:
    result = CliRunner().invoke(make_group(), ["--help"])
    assert result.exit_code == 0
    assert "gpubundle build --distro ubuntu22.04" in result.output
    assert "gpubundle install BUNDLE --trust FINGERPRINT" in result.output


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
