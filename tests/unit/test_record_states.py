"""The install record through a step's life: intent (write-ahead), completion, and what a
re-run and uninstall make of a record left by a run killed in between.

The runtime step runs for real against a fake nvidia-ctk (CTK_LIKE_NVIDIA of
tests/support/runtimeconfigs.py, which rewrites daemon.json like NVIDIA's code); the
record is written to a temporary file. apt's file names and extended_states are checked against
what apt 2.6 wrote in a Debian 12 root (tests/integration/test_uninstall_roots.py runs
apt itself).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from installer import engine, runtime_config, runtime_intent
from installer import record as record_module
from installer.aptlocal import (
    apt_mark_manual_argv,
    auto_installed,
    list_file_prefix,
    source_lists,
)
from installer.hostpaths import HostPaths
from installer.installplan import RUNTIME
from installer.record import InstallRecord, load_record, record_from_json, staging_leftovers
from installer.steps import runtime as runtime_steps
from installer.uninstallplan import HostNow, plan_uninstall
from tests.support.records import SHA, base_record
from tests.support.runtimeconfigs import CTK_LIKE_NVIDIA, USER_CONFIG
from tests.support.steps import step_runner

# --- record states ----------------------------------------------------------------------
BACKUPS = "/var/backups/gpubundle/20260101T000000Z"


def test_intent_then_completion() -> None:
    fresh = base_record()
    assert fresh.in_progress is None and fresh.steps_completed == ()
    intent = fresh.with_files("/etc/apt/sources.list.d/gpubundle.list").with_intent("apt-source")
    assert intent.in_progress == "apt-source"
    assert not intent.completed("apt-source")
    assert intent.files_created == ("/etc/apt/sources.list.d/gpubundle.list",)
    done = intent.with_step("apt-source")
    assert done.in_progress is None and done.completed("apt-source")
    assert done.files_created == intent.files_created


def test_new_fields_round_trip_and_old_records_still_load() -> None:
    record = base_record(apt_lists=("/var/lib/apt/lists/x_InRelease",), in_progress="packages")
    again = record_from_json(json.loads(json.dumps(record.as_json())))
    assert again == record
    old = {k: v for k, v in record.as_json().items() if k not in ("apt_lists", "in_progress")}
    loaded = record_from_json(old)
    assert loaded.apt_lists == () and loaded.in_progress is None


def test_pending_runtime_change_is_recognised() -> None:
    change = {"path": "/etc/docker/daemon.json", "backup_path": None, "sha256_before": None,
              "sha256_after": None, "changed": True, "pending": True}  # fmt: skip
    assert base_record(runtime_change=change).runtime_pending
    done = {**change, "sha256_after": "ab" * 32, "pending": False}
    assert not base_record(runtime_change=done).runtime_pending
    assert not base_record().runtime_pending


def test_staging_leftovers_are_only_this_bundles(tmp_path: Path) -> None:
    bundle = tmp_path / "bundles" / SHA
    (tmp_path / "bundles" / f".{SHA}.staging-abc123").mkdir(parents=True)
    (tmp_path / "bundles" / ".other.staging-abc123").mkdir()
    assert staging_leftovers(bundle) == [tmp_path / "bundles" / f".{SHA}.staging-abc123"]
    assert staging_leftovers(tmp_path / "absent" / SHA) == []


# --- apt's bookkeeping of the local source ---------------------------------------------------


def test_list_file_prefix_is_apts_name_for_the_source(tmp_path: Path) -> None:
    repo = Path(f"/var/lib/gpubundle/bundles/{SHA}/repo")
    # As apt 2.6 named them in a Debian 12 root after `apt-get update`.
    assert f"_var_lib_gpubundle_bundles_{SHA}_repo_InRelease".startswith(list_file_prefix(repo))
    assert list_file_prefix(Path("/a b/x_y~")) == "_a%20b_x%5fy%7e_"
    lists = tmp_path / "lists"
    (lists / "partial").mkdir(parents=True)
    ours = [lists / f"{list_file_prefix(repo)}InRelease", lists / "partial" / f"{list_file_prefix(repo)}Packages"]  # fmt: skip
    for path in [*ours, lists / "deb.debian.org_debian_dists_bookworm_InRelease", lists / "lock"]:
        path.write_text("")
    other = Path("/var/lib/gpubundle/bundles/ff/repo")
    (lists / f"{list_file_prefix(other)}InRelease").write_text("")
    assert source_lists(repo, lists) == sorted(ours)


def test_auto_installed_marks_and_apt_mark_argv() -> None:
    text = (
        "Package: libnvidia-container1\nArchitecture: amd64\nAuto-Installed: 1\n\n"
        "Package: gpgv\nArchitecture: amd64\nAuto-Installed: 0\n\n"
        "Package: nvidia-container-toolkit-base\nArchitecture: amd64\nAuto-Installed: 1\n"
    )
    assert auto_installed(text) == {"libnvidia-container1", "nvidia-container-toolkit-base"}
    assert auto_installed("") == set()
    argv = apt_mark_manual_argv(Path("/etc/apt/sources.list.d/gpubundle.list"), ["b", "a"])
    assert argv[0] == "apt-mark" and argv[-3:] == ["manual", "a", "b"]
    assert "Dir::Etc::sourceparts=-" in argv


# --- the runtime step: write-ahead, kill, re-run, uninstall -----------------------------------


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """daemon.json, backup dir and record in tmp; nvidia-ctk faked; the record's copy
    at the moment nvidia-ctk ran is kept in ``seen``."""
    paths = {
        "daemon": tmp_path / "docker" / "daemon.json",
        "root": tmp_path,  # the host's paths (record, backups) lie under it
        "backups": HostPaths(tmp_path).runtime_backups,
        "record": HostPaths(tmp_path).record,
        "seen": tmp_path / "record-when-ctk-ran.json",
    }
    paths["daemon"].parent.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    ctk = bindir / "nvidia-ctk"
    # Snapshot the record, then behave like NVIDIA's nvidia-ctk.
    ctk.write_text(
        CTK_LIKE_NVIDIA.replace(
            "args = sys.argv[1:]\n",
            f"args = sys.argv[1:]\nimport shutil\nif os.path.exists({str(paths['record'])!r}):\n"
            f"    shutil.copy({str(paths['record'])!r}, {str(paths['seen'])!r})\n",
        )
    )
    ctk.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("CTK_LOG", str(tmp_path / "ctk.log"))
    facts = engine.EngineFacts("docker.io", "26.1", True, paths["daemon"], False, "")
    monkeypatch.setattr(engine, "detect_engine", lambda *a, **k: facts)
    return paths


def configure(host: dict[str, Path], record: InstallRecord) -> tuple[InstallRecord, str]:
    """The runtime step's body, its record and backups under the test's root."""
    return runtime_steps.configure(step_runner(host["root"]).ctx, record)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def user_daemon_json(path: Path) -> bytes:
    data = json.dumps(USER_CONFIG, indent=2).encode()
    path.write_bytes(data)
    return data


def test_runtime_change_is_recorded_pending_before_nvidia_ctk_runs(host: dict[str, Path]) -> None:
    original = user_daemon_json(host["daemon"])
    record, _ = configure(host, base_record())
    seen = load_record(host["seen"], HostPaths(host["seen"].parent))
    assert seen is not None and seen.in_progress == RUNTIME
    pending = seen.runtime_change or {}
    assert pending["pending"] is True and pending["sha256_after"] is None
    assert pending["sha256_before"] == sha(original)
    assert Path(pending["backup_path"]).read_bytes() == original  # backed up before the record
    done = record.runtime_change or {}
    assert "pending" not in done and not record.runtime_pending
    assert done["sha256_after"] == sha(host["daemon"].read_bytes())
    assert done["backup_path"] == pending["backup_path"]  # runtime_config names it the same


def test_killed_after_nvidia_ctk_wrote_rerun_restores_and_redoes(host: dict[str, Path]) -> None:
    original = user_daemon_json(host["daemon"])
    intent = runtime_intent.intended_runtime_change(host["daemon"], host["backups"])
    assert intent is not None
    killed = base_record(runtime_change=intent, in_progress=RUNTIME)
    # What a kill right after nvidia-ctk left: its rewrite, without the re-merge of user keys.
    ctk = runtime_config.configure_argv("nvidia-ctk", host["daemon"], set_default=False, cdi=True)
    subprocess.run(ctk, check=True)  # the fake: with --cdi.enabled it drops "features"
    assert json.loads(host["daemon"].read_bytes()).get("features") == {"cdi": True}

    # uninstall from that record alone puts the original back.
    now = HostNow(daemon_json=host["daemon"].read_bytes(), daemon_backup=original)
    plan = plan_uninstall(killed, now, backup_dir=BACKUPS)
    write = next(a for a in plan.actions if a.kind == "write-daemon-json")
    assert write.content == original.decode()

    # a re-run restores the original first, then configures it: no user key is lost.
    record, _ = configure(host, killed)
    change = record.runtime_change or {}
    assert change["sha256_before"] == sha(original) and change["changed"] is True
    assert not record.runtime_pending
    config = json.loads(host["daemon"].read_bytes())
    assert config["features"] == USER_CONFIG["features"]
    assert "nvidia" in config["runtimes"] and "crun" in config["runtimes"]
    assert Path(change["backup_path"]).read_bytes() == original


def test_killed_before_nvidia_ctk_ran_rerun_configures(host: dict[str, Path]) -> None:
    intent = runtime_intent.intended_runtime_change(host["daemon"], host["backups"])
    assert intent is not None and intent["backup_path"] is None  # no daemon.json before
    killed = base_record(runtime_change=intent, in_progress=RUNTIME)
    assert plan_uninstall(
        killed, HostNow(), backup_dir=BACKUPS
    ).nothing_to_do  # nothing was written yet
    record, _ = configure(host, killed)
    assert (record.runtime_change or {})["sha256_before"] is None
    # uninstall of the completed record deletes the file install created.
    now = HostNow(daemon_json=host["daemon"].read_bytes())
    assert [a.kind for a in plan_uninstall(record, now, backup_dir=BACKUPS).actions] == [
        "delete-daemon-json"
    ]


def test_a_configured_daemon_json_gets_no_intent_and_no_backup(host: dict[str, Path]) -> None:
    host["daemon"].write_text(json.dumps({"runtimes": {"nvidia": {"path": "x"}}}))
    assert runtime_intent.intended_runtime_change(host["daemon"], host["backups"]) is None
    record, detail = configure(host, base_record())
    assert (record.runtime_change or {})["changed"] is False
    assert not host["backups"].exists()
    assert "already configured" in detail


# --- uninstall of what a killed run left ------------------------------------------------------


def test_uninstall_plans_lists_marks_staging_and_state_dirs() -> None:
    record = base_record(
        packages_installed={"libnvidia-container1": "1.20.1-1", "nvidia-container-toolkit": "1"},
        files_created=(f"/var/lib/gpubundle/bundles/{SHA}",),
        in_progress="packages",
    )
    now = HostNow(
        packages={"libnvidia-container1": "1.20.1-1"},  # the kill came before the toolkit
        auto_marked=frozenset({"libnvidia-container1"}),
        apt_lists=frozenset({f"/var/lib/apt/lists/_var_lib_gpubundle_bundles_{SHA}_repo_InRelease"}),
        staging=frozenset({f"/var/lib/gpubundle/bundles/.{SHA}.staging-x1"}),
        state_dirs=("/var/lib/gpubundle/bundles", "/var/lib/gpubundle"),
    )  # fmt: skip
    plan = plan_uninstall(
        record, now, record_path="/var/lib/gpubundle/install-record.json", backup_dir=BACKUPS
    )

    def kinds(kind: str) -> tuple[str, ...]:
        return next(a.targets for a in plan.actions if a.kind == kind)

    order = [a.kind for a in plan.actions]
    assert order == ["unmark-auto", "remove-packages", "remove-paths", "remove-apt-lists",
                     "remove-record", "remove-empty-dirs"]  # fmt: skip
    assert kinds("unmark-auto") == ("libnvidia-container1",)
    assert kinds("remove-packages") == ("libnvidia-container1",)
    assert kinds("remove-paths") == (f"/var/lib/gpubundle/bundles/.{SHA}.staging-x1",)
    assert kinds("remove-empty-dirs") == now.state_dirs


def test_carried_over_keeps_what_an_earlier_bundle_changed() -> None:
    change = {"path": "/etc/docker/daemon.json", "backup_path": None, "sha256_before": None,
              "sha256_after": "ab" * 32, "changed": True}  # fmt: skip
    earlier = base_record(
        files_created=("/var/lib/gpubundle/bundles/aa",),
        apt_lists=("/var/lib/apt/lists/_var_lib_gpubundle_bundles_aa_repo_InRelease",),
        runtime_change=change,
        images_loaded=("cuda:12",),
    )
    kept = record_module.carried_over(earlier)
    assert kept["runtime_change"] == change and kept["images_loaded"] == ("cuda:12",)
    assert kept["apt_lists"] == earlier.apt_lists
    assert kept["files_created"] == earlier.files_created
