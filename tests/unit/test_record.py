"""The install record: schema, atomic writes, resumable steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from installer.errors import GpubundleError
from installer.hostpaths import HostPaths
from installer.record import InstallRecord, load_record, save_record


def _record() -> InstallRecord:
    return InstallRecord(
        gpubundle_version="0.1.0",
        bundle_sha256="ab" * 32,
        signer_fingerprint="F" * 40,
        distro="ubuntu22.04",
        arch="amd64",
        toolkit_version="1.17.8-1",
        started_at="2026-01-01T00:00:00Z",
    )


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    path = tmp_path / "state" / "install-record.json"
    record = (
        _record()
        .with_files("/etc/apt/sources.list.d/gpubundle.list")
        .with_step("extract", packages_before={"libc6": "2.35-0ubuntu3"})
    )
    save_record(record, path)
    assert load_record(path, HostPaths(tmp_path)) == record
    data = json.loads(path.read_text())
    assert data["format"] == 1
    assert data["finished_at"] is None
    assert data["steps_completed"] == ["extract"]
    assert data["runtime_change"] is None
    assert set(data) >= {
        "gpubundle_version", "bundle_sha256", "signer_fingerprint", "distro", "arch",
        "toolkit_version", "started_at", "packages_before", "packages_installed",
        "files_created", "engine_started_by_gpubundle", "cdi_specs_created", "images_loaded",
    }  # fmt: skip


def test_steps_and_files_are_recorded_once() -> None:
    record = _record().with_step("extract").with_step("extract").with_files("/a", "/b", "/a")
    assert record.steps_completed == ("extract",)
    assert record.files_created == ("/a", "/b")
    assert record.completed("extract") and not record.completed("packages")


def test_missing_record_means_never_installed(tmp_path: Path) -> None:
    assert load_record(tmp_path / "none.json", HostPaths(tmp_path)) is None


def test_save_replaces_without_leaving_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "install-record.json"
    save_record(_record(), path)
    save_record(_record().with_step("packages"), path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["install-record.backup.json", "install-record.json"]
    assert path.read_bytes() == (tmp_path / "install-record.backup.json").read_bytes()
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_a_record_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "install-record.json"
    path.write_text('{"format": 99}')
    with pytest.raises(GpubundleError) as caught:
        load_record(path, HostPaths(tmp_path))
    assert "newer gpubundle" in caught.value.message
