"""status/uninstall on a host without a record: plain words, exit 0, nothing to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from installer.cli import main


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "GPUBUNDLE_RECORD": str(tmp_path / "record.json"),
        "GPUBUNDLE_LOCK": str(tmp_path / "lock"),
    }


def test_status_without_record(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["status", "--json"], env=env)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "ok": True,
        "installed": False,
        "record": None,
        "history": [],
    }


def test_uninstall_without_record_is_idempotent(env: dict[str, str]) -> None:
    for _ in range(2):
        result = CliRunner().invoke(main, ["uninstall", "--yes", "--json"], env=env)
        assert result.exit_code == 0
        assert json.loads(result.stdout)["nothing_to_do"] is True


def test_status_shows_record(env: dict[str, str]) -> None:
    record = {"format": 1, "gpubundle_version": "0.1.0", "bundle_sha256": "ab" * 32,
              "signer_fingerprint": "F" * 40, "distro": "ubuntu22.04", "arch": "amd64",
              "toolkit_version": "1.20.1-1", "started_at": "2025-01-01T00:00:00Z",
              "finished_at": None, "steps_completed": ["verify", "repo"],
              "packages_installed": {"nvidia-container-toolkit": "1.20.1-1"},
              "packages_before": {}, "files_created": [], "runtime_change": None,
              "engine_started_by_gpubundle": False, "cdi_specs_created": [],
              "images_loaded": []}  # fmt: skip
    Path(env["GPUBUNDLE_RECORD"]).write_text(json.dumps(record))
    result = CliRunner().invoke(main, ["status"], env=env)
    assert result.exit_code == 0
    # What status finds is its result: stdout.
    assert "NOT finished" in result.stdout
    assert "steps completed: verify, repo" in result.stdout
