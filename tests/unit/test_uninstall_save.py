"""Uninstall's copies of files changed since install: where they go, and a failed copy;
what install's packages made outside dpkg's lists, saved and removed under a test root."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from installer.cmd_uninstall import execute, read_host, render_plan, save_copies
from installer.errors import GpubundleError
from installer.hostpaths import (
    DIVERTED_LIB,
    HOOK_LINK,
    TOOLKIT_CONFIG,
    TOOLKIT_CONFIG_DIR,
    HostPaths,
)
from installer.record import InstallRecord
from installer.uninstallplan import Action, HostNow, UninstallPlan, plan_uninstall
from installer.unownedpaths import fingerprint


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


def test_a_test_roots_uninstall_acts_on_the_roots_paths(tmp_path: Path) -> None:
    """The record keeps the paths as the host sees them; uninstall reads, saves and
    removes them under ``HostPaths.root``, and names each copy by the host's path."""
    host = HostPaths(tmp_path)
    toml = host.under(TOOLKIT_CONFIG)
    toml.parent.mkdir(parents=True)
    toml.write_text('log-level = "debug"\n')  # changed since install: saved first
    hook = host.under(HOOK_LINK)
    hook.parent.mkdir(parents=True)
    hook.symlink_to("nvidia-container-runtime-hook")
    record = InstallRecord(
        gpubundle_version="0.1.0", bundle_sha256="ab" * 32, signer_fingerprint="F" * 40,
        distro="debian12", arch="amd64", toolkit_version="1.20.1-1",
        started_at="2026-01-01T00:00:00Z",
        unowned_paths_created={
            TOOLKIT_CONFIG_DIR: "dir", TOOLKIT_CONFIG: "a" * 64,
            HOOK_LINK: "-> nvidia-container-runtime-hook", DIVERTED_LIB: "dir",  # gone since
        },
    )  # fmt: skip
    now = read_host(record, host)
    assert now.root == str(tmp_path)
    assert now.unowned_paths == {
        TOOLKIT_CONFIG_DIR: "dir", TOOLKIT_CONFIG: fingerprint(toml),
        HOOK_LINK: "-> nvidia-container-runtime-hook", DIVERTED_LIB: None,
    }  # fmt: skip
    backups = host.backups_dir / "20260101T000000Z"
    plan = plan_uninstall(record, now, backup_dir=str(backups))
    copy = backups / TOOLKIT_CONFIG.lstrip("/")
    assert plan.saved == {str(toml): str(copy)}
    targets = {t for a in plan.actions for t in a.targets}
    assert targets == {str(toml), str(hook), str(toml.parent)}
    for each in plan.actions:
        execute(each, plan, record, host)
    assert copy.read_text() == 'log-level = "debug"\n'
    assert not os.path.lexists(toml) and not os.path.lexists(hook)
    assert not toml.parent.exists() and (tmp_path / "usr/bin").is_dir()


def test_on_the_host_the_plan_names_the_hosts_paths() -> None:
    record = InstallRecord(
        gpubundle_version="0.1.0", bundle_sha256="ab" * 32, signer_fingerprint="F" * 40,
        distro="debian12", arch="amd64", toolkit_version="1.20.1-1",
        started_at="2026-01-01T00:00:00Z", unowned_paths_created={TOOLKIT_CONFIG: "a" * 64},
    )  # fmt: skip
    here = HostNow(unowned_paths={TOOLKIT_CONFIG: "b" * 64})
    plan = plan_uninstall(record, here, backup_dir="/b")
    assert plan.saved == {TOOLKIT_CONFIG: f"/b{TOOLKIT_CONFIG}"}
    assert [a.targets for a in plan.actions] == [(TOOLKIT_CONFIG,), (TOOLKIT_CONFIG,)]
    rooted = plan_uninstall(record, dataclasses.replace(here, root="/r/"), backup_dir="/b")
    assert rooted.saved == {f"/r{TOOLKIT_CONFIG}": f"/b{TOOLKIT_CONFIG}"}
