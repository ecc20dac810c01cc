"""What install records of the paths its packages make that dpkg does not own; the record field."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from installer.hostpaths import DIVERTED_LIB, HOOK_LINK, UNOWNED_PATHS, HostPaths
from installer.hostpaths import TOOLKIT_CONFIG as CONFIG_TOML
from installer.hostpaths import TOOLKIT_CONFIG_DIR as CONFIG_DIR
from installer.record import InstallRecord, carried_over, load_record, save_record
from installer.unownedpaths import (
    fingerprint,
    fingerprints,
    intended,
    is_file_digest,
    observed,
    present,
)

TOML_SHA = "a" * 64


def test_fingerprint_of_each_kind(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to("/usr/bin/nvidia-container-runtime-hook")
    assert fingerprint(tmp_path / "f") == hashlib.sha256(b"x\n").hexdigest()
    assert is_file_digest(fingerprint(tmp_path / "f"))
    assert fingerprint(tmp_path / "d") == "dir"
    assert fingerprint(tmp_path / "l") == "-> /usr/bin/nvidia-container-runtime-hook"
    assert fingerprint(tmp_path / "missing") is None
    assert not is_file_digest("dir") and not is_file_digest("-> x") and not is_file_digest(None)


def test_read_under_the_root_keyed_as_the_host_sees_them(tmp_path: Path) -> None:
    """A test root's install sees the root's files; the record keeps the host's names."""
    host = HostPaths(tmp_path)
    assert present(host) == [] and fingerprints(host, [CONFIG_DIR]) == {CONFIG_DIR: None}
    (tmp_path / CONFIG_TOML.lstrip("/")).parent.mkdir(parents=True)
    (tmp_path / CONFIG_TOML.lstrip("/")).write_text("x\n")
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / HOOK_LINK.lstrip("/")).symlink_to("nvidia-container-runtime-hook")  # dangling
    assert present(host) == [CONFIG_DIR, CONFIG_TOML, HOOK_LINK]
    assert fingerprints(host, [CONFIG_DIR, CONFIG_TOML, HOOK_LINK, DIVERTED_LIB]) == {
        CONFIG_DIR: "dir",
        CONFIG_TOML: hashlib.sha256(b"x\n").hexdigest(),
        HOOK_LINK: "-> nvidia-container-runtime-hook",
        DIVERTED_LIB: None,
    }


def test_only_paths_absent_before_are_written_ahead() -> None:
    ahead = intended({}, present=[HOOK_LINK, DIVERTED_LIB])
    assert ahead == {CONFIG_DIR: None, CONFIG_TOML: None}


def test_an_earlier_runs_entries_are_kept() -> None:
    # Killed once after apt: the re-run finds config.toml present, yet it is still install's.
    ahead = intended({CONFIG_TOML: None, CONFIG_DIR: None}, present=UNOWNED_PATHS)
    assert ahead == {CONFIG_TOML: None, CONFIG_DIR: None}
    ahead = intended({CONFIG_TOML: TOML_SHA}, present=UNOWNED_PATHS)
    assert ahead == {CONFIG_TOML: TOML_SHA}


def test_observed_fills_what_the_scripts_made_and_drops_the_rest() -> None:
    ahead = {CONFIG_DIR: None, CONFIG_TOML: None, HOOK_LINK: None}
    now = {CONFIG_DIR: "dir", CONFIG_TOML: TOML_SHA, HOOK_LINK: None}
    assert observed(ahead, now) == {CONFIG_DIR: "dir", CONFIG_TOML: TOML_SHA}


def test_observed_keeps_what_an_earlier_run_saw() -> None:
    """An edit made after the first install stays the user's, whatever a re-run sees."""
    assert observed({CONFIG_TOML: TOML_SHA}, {CONFIG_TOML: "b" * 64}) == {CONFIG_TOML: TOML_SHA}


def test_the_record_keeps_the_field_and_carries_it_over(tmp_path: Path) -> None:
    record = InstallRecord(
        gpubundle_version="0.1.0", bundle_sha256="ab" * 32, signer_fingerprint="F" * 40,
        distro="debian12", arch="amd64", toolkit_version="1.20.1-1",
        started_at="2026-01-01T00:00:00Z",
        unowned_paths_created={CONFIG_DIR: "dir", CONFIG_TOML: TOML_SHA, HOOK_LINK: None},
    )  # fmt: skip
    path = tmp_path / "install-record.json"
    save_record(record, path)
    assert load_record(path, HostPaths(tmp_path)) == record
    assert json.loads(path.read_text())["unowned_paths_created"][HOOK_LINK] is None
    assert carried_over(record)["unowned_paths_created"] == record.unowned_paths_created


def test_a_record_without_the_field_reads_as_none_made(tmp_path: Path) -> None:
    path = tmp_path / "install-record.json"
    data = {
        "format": 1, "gpubundle_version": "0.1.0", "bundle_sha256": "ab" * 32,
        "signer_fingerprint": "F" * 40, "distro": "debian12", "arch": "amd64",
        "toolkit_version": "1.20.1-1", "started_at": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    path.write_text(json.dumps(data))
    record = load_record(path, HostPaths(tmp_path))
    assert record is not None and record.unowned_paths_created == {}


def test_the_paths_no_purge_removes() -> None:
    assert UNOWNED_PATHS == (
        "/etc/nvidia-container-runtime",  # toolkit-base's postinst, with config.toml
        "/etc/nvidia-container-runtime/config.toml",
        "/usr/bin/nvidia-container-toolkit",  # toolkit's postinst; its purge removes it
        "/lib.usr-is-merged",  # dpkg, for /lib/systemd/system under base-files' diversion
    )
