"""Uninstall's copies of files changed since install: where they go, and a failed copy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from installer.cmd_uninstall import render_plan, save_copies
from installer.errors import GpubundleError
from installer.uninstallplan import Action, UninstallPlan


def test_copies_keep_content_mode_and_times_under_their_whole_path(tmp_path: Path) -> None:
    config = tmp_path / "etc/nvidia-container-runtime/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[nvidia-container-runtime]\nlog-level = "debug"\n')
    config.chmod(0o600)
    os.utime(config, (1_700_000_000, 1_700_000_000))
    copy = tmp_path / "backups/20260101T000000Z" / str(config).lstrip("/")
    save_copies({str(config): str(copy)})
    assert copy.read_bytes() == config.read_bytes()
    assert (copy.stat().st_mode & 0o777, copy.stat().st_mtime) == (0o600, 1_700_000_000)


def test_a_copy_that_cannot_be_made_is_an_error_saying_what_to_do(tmp_path: Path) -> None:
    blocker = tmp_path / "backups"
    blocker.write_text("a file where the backup directory should go")
    with pytest.raises(GpubundleError) as err:
        save_copies({str(tmp_path / "missing.toml"): str(blocker / "x/missing.toml")})
    assert "cannot save" in err.value.message
    assert "re-run uninstall" in err.value.hint


def test_the_plan_shows_where_each_file_is_saved() -> None:
    copy = "/var/backups/gpubundle/20260101T000000Z/etc/x.env"
    plan = UninstallPlan(
        (Action("save-files", "save 1 file(s) changed since install", ("/etc/x.env",)),),
        saved={"/etc/x.env": copy},
    )
    assert f"/etc/x.env -> {copy}" in render_plan(plan)
