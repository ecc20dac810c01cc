"""The uninstall plan as data: inverse of the record, user edits kept, no dangling default."""

from __future__ import annotations

import json

import pytest

from installer.conffiles import Conffile
from installer.errors import GpubundleError
from installer.record import InstallRecord
from installer.uninstallplan import (
    Action,
    HostNow,
    UninstallPlan,
    plan_uninstall,
    remove_nvidia_entries,
    sha256,
)

BEFORE = {"log-driver": "journald", "runtimes": {"crun": {"path": "/usr/bin/crun"}}}
AFTER = {
    **BEFORE,
    "runtimes": {**BEFORE["runtimes"], "nvidia": {"path": "nvidia-container-runtime", "args": []}},
    "default-runtime": "nvidia",
}
B = json.dumps(BEFORE).encode()
A = json.dumps(AFTER).encode()
TOOLKIT = {
    "nvidia-container-toolkit": "1.20.1-1",
    "nvidia-container-toolkit-base": "1.20.1-1",
    "libnvidia-container1": "1.20.1-1",
}


def record(**kw: object) -> InstallRecord:
    base: dict[str, object] = dict(
        gpubundle_version="0.1.0",
        bundle_sha256="ab" * 32,
        signer_fingerprint="F" * 40,
        distro="ubuntu22.04",
        arch="amd64",
        toolkit_version="1.20.1-1",
        started_at="2025-01-01T00:00:00Z",
        finished_at="2025-01-01T00:05:00Z",
        packages_installed=TOOLKIT,
        files_created=("/etc/apt/sources.list.d/gpubundle.list", "/var/lib/gpubundle/repo"),
        runtime_change={
            "path": "/etc/docker/daemon.json",
            "backup_path": "/var/lib/gpubundle/daemon.json.bak",
            "sha256_before": sha256(B),
            "sha256_after": sha256(A),
            "changed": True,
        },
        cdi_specs_created=("/etc/cdi/nvidia.yaml",),
        images_loaded=("sha256:1111",),
    )
    base.update(kw)
    return InstallRecord(**base)  # type: ignore[arg-type]


def now(**kw: object) -> HostNow:
    base: dict[str, object] = dict(
        packages=dict(TOOLKIT),
        daemon_json=A,
        daemon_backup=B,
        existing_paths=frozenset(
            {
                "/etc/apt/sources.list.d/gpubundle.list",
                "/var/lib/gpubundle/repo",
                "/etc/cdi/nvidia.yaml",
            }
        ),
        images_present=frozenset({"sha256:1111"}),
        engine_running=True,
    )
    base.update(kw)
    return HostNow(**base)  # type: ignore[arg-type]


def kinds(plan: object) -> list[str]:
    return [a.kind for a in plan.actions]  # type: ignore[attr-defined]


def test_full_inverse_in_order() -> None:
    plan = plan_uninstall(
        record(), now(), record_path="/var/lib/gpubundle/install-record.json", backup_dir=BACKUPS
    )
    assert kinds(plan) == [
        "remove-images",
        "write-daemon-json",
        "restart-engine",
        "remove-packages",
        "remove-paths",
        "remove-paths",
        "remove-record",
    ]
    write = plan.actions[1]
    assert json.loads(write.content or "") == BEFORE  # the backup, byte for byte
    assert write.content == B.decode()
    assert plan.actions[3].targets == tuple(sorted(TOOLKIT))


def test_user_edits_since_install_are_kept() -> None:
    edited = {**AFTER, "debug": True}
    plan = plan_uninstall(
        record(), now(daemon_json=json.dumps(edited).encode()), backup_dir=BACKUPS
    )
    write = next(a for a in plan.actions if a.kind == "write-daemon-json")
    assert json.loads(write.content or "") == {**BEFORE, "debug": True}
    assert "keeping the changes" in write.summary


def test_file_created_by_install_is_deleted() -> None:
    rec = record(
        runtime_change={
            "path": "/etc/docker/daemon.json",
            "backup_path": None,
            "sha256_before": None,
            "sha256_after": sha256(A),
        }
    )
    plan = plan_uninstall(rec, now(daemon_backup=None), backup_dir=BACKUPS)
    assert "delete-daemon-json" in kinds(plan)


def test_packages_present_before_are_kept_and_said_so() -> None:
    rec = record(packages_before={"libnvidia-container1": "1.17.8-1"})
    plan = plan_uninstall(rec, now(), backup_dir=BACKUPS)
    removed = next(a for a in plan.actions if a.kind == "remove-packages").targets
    assert "libnvidia-container1" not in removed
    assert any("keeping libnvidia-container1" in n and "1.17.8-1" in n for n in plan.notes)


def test_default_runtime_never_left_dangling() -> None:
    # The backup itself had default-runtime nvidia (user set it by hand) but the runtime goes away.
    before = {"default-runtime": "nvidia"}
    rec = record(
        runtime_change={
            "path": "/etc/docker/daemon.json",
            "backup_path": "/b",
            "sha256_before": sha256(json.dumps(before).encode()),
            "sha256_after": sha256(A),
        }
    )
    plan = plan_uninstall(rec, now(daemon_backup=json.dumps(before).encode()), backup_dir=BACKUPS)
    write = next(a for a in plan.actions if a.kind == "write-daemon-json")
    assert "default-runtime" not in json.loads(write.content or "")


def test_keep_images_and_purge() -> None:
    plan = plan_uninstall(record(), now(), keep_images=True, purge=True, backup_dir=BACKUPS)
    assert "remove-images" not in kinds(plan)
    assert any("--keep-images" in n for n in plan.notes)
    assert plan.purge
    assert next(a for a in plan.actions if a.kind == "remove-packages").summary.startswith("purge")


def test_second_run_has_nothing_to_do() -> None:
    done = now(packages={}, daemon_json=B, existing_paths=frozenset(), images_present=frozenset())
    plan = plan_uninstall(record(), done, backup_dir=BACKUPS)
    assert plan.nothing_to_do


def test_engine_not_running_is_not_restarted() -> None:
    plan = plan_uninstall(
        record(), now(engine_running=False, images_present=frozenset()), backup_dir=BACKUPS
    )
    assert "restart-engine" not in kinds(plan)
    assert any("not running" in n for n in plan.notes)


def test_unparseable_edit_is_an_error_with_hint() -> None:
    with pytest.raises(GpubundleError) as err:
        plan_uninstall(record(), now(daemon_json=b'{"runtimes": '), backup_dir=BACKUPS)
    assert "json.tool" in err.value.hint


def test_remove_nvidia_entries_restores_user_default() -> None:
    current = {"runtimes": {"nvidia": {}, "crun": {}}, "default-runtime": "nvidia"}
    out = remove_nvidia_entries(current, {"default-runtime": "crun"}, runtime_removed=True)
    assert out == {"runtimes": {"crun": {}}, "default-runtime": "crun"}


WITH_DOCKER = {**TOOLKIT, "docker.io": "29.1.3-0ubuntu3~24.04.2", "containerd": "2.2.1"}


def test_docker_that_came_with_the_bundle_is_stopped_before_removal() -> None:
    """Seen on the GPU host: uninstall removed docker.io and left its dockerd running."""
    plan = plan_uninstall(
        record(packages_installed=WITH_DOCKER, engine_started_by_gpubundle=True),
        now(packages=dict(WITH_DOCKER)),
        backup_dir=BACKUPS,
    )
    order = kinds(plan)
    assert "restart-engine" not in order
    assert order.index("write-daemon-json") < order.index("stop-engine")
    assert order.index("stop-engine") < order.index("remove-packages")
    assert not any("left running" in note for note in plan.notes)


def test_docker_kept_when_it_was_there_before() -> None:
    plan = plan_uninstall(
        record(
            packages_installed=WITH_DOCKER,
            packages_before={"docker.io": "24.0.7"},
            engine_started_by_gpubundle=True,
        ),
        now(packages=dict(WITH_DOCKER)),
        backup_dir=BACKUPS,
    )
    assert "stop-engine" not in kinds(plan) and "restart-engine" in kinds(plan)
    assert any("left running" in note for note in plan.notes)


TOML_BEFORE = b'version = 2\n[grpc]\naddress = "/run/containerd/containerd.sock"\n'
TOML_AFTER = TOML_BEFORE + b'[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n'


def toml_record(
    backup: str | None = "/var/lib/gpubundle/backup/config.toml.x.bak",
) -> InstallRecord:
    change = {
        "path": "/etc/containerd/config.toml",
        "backup_path": backup,
        "sha256_before": sha256(TOML_BEFORE) if backup else None,
        "sha256_after": sha256(TOML_AFTER),
        "changed": True,
        "kind": "containerd-toml",
    }
    return record(runtime_change=change, images_loaded=(), cdi_specs_created=())


def test_containerd_config_unchanged_since_install_gets_its_backup_and_a_restart() -> None:
    plan = plan_uninstall(
        toml_record(), now(daemon_json=TOML_AFTER, daemon_backup=TOML_BEFORE), backup_dir=BACKUPS
    )
    write = next(a for a in plan.actions if a.kind == "write-config")
    assert write.content == TOML_BEFORE.decode()
    restart = next(a for a in plan.actions if a.kind == "restart-engine")
    assert restart.targets == ("containerd",)
    assert "write-daemon-json" not in kinds(plan) and "stop-engine" not in kinds(plan)


def test_crio_dropin_install_created_is_deleted() -> None:
    rec = toml_record(backup=None)
    change = {**(rec.runtime_change or {}), "kind": "crio-toml", "path": "/etc/crio/x.toml"}
    plan = plan_uninstall(
        record(runtime_change=change), now(daemon_json=TOML_AFTER), backup_dir=BACKUPS
    )
    assert [a.targets for a in plan.actions if a.kind == "delete-config"] == [("/etc/crio/x.toml",)]


def test_containerd_config_edited_since_install_is_left_with_a_note() -> None:
    edited = TOML_AFTER + b"oom_score = 0\n"
    plan = plan_uninstall(
        toml_record(), now(daemon_json=edited, daemon_backup=TOML_BEFORE), backup_dir=BACKUPS
    )
    assert not {"write-config", "delete-config", "restart-engine"} & set(kinds(plan))
    assert any("containerd.runtimes.nvidia" in n and "by hand" in n for n in plan.notes)


def test_containerd_not_running_is_not_restarted() -> None:
    host = now(daemon_json=TOML_AFTER, daemon_backup=TOML_BEFORE, engine_running=False)
    plan = plan_uninstall(toml_record(), host, backup_dir=BACKUPS)
    assert "restart-engine" not in kinds(plan)
    assert any(n.startswith("containerd is not running") for n in plan.notes)


# --- purge, what the packages made outside dpkg's lists, and saving what the user changed

CDI_ENV = "/etc/nvidia-container-toolkit/nvidia-cdi-refresh.env"
TOML = "/etc/nvidia-container-runtime/config.toml"
TOML_DIR = "/etc/nvidia-container-runtime"
HOOK = "/usr/bin/nvidia-container-toolkit"
MD5 = "5" * 32
TOML_SHA = "7" * 64
MADE = {TOML_DIR: "dir", TOML: TOML_SHA, HOOK: "-> /usr/bin/nvidia-container-runtime-hook"}
BACKUPS = "/var/backups/gpubundle/20260101T000000Z"


def env_conffile(current: str | None = MD5) -> Conffile:
    return Conffile("nvidia-container-toolkit-base", CDI_ENV, MD5, current)


def scripted(
    *, made: dict[str, str | None] = MADE, here: dict[str, str | None] = MADE, **kw: object
) -> UninstallPlan:
    """The plan for a record whose packages made ``made`` (unowned); ``here`` is the host now."""
    return plan_uninstall(
        record(unowned_paths_created=dict(made), **kw),
        now(conffiles=(env_conffile(),), unowned_paths=dict(here)),
        backup_dir=BACKUPS,
    )


def action(plan: UninstallPlan, kind: str, summary_has: str = "") -> Action:
    return next(a for a in plan.actions if a.kind == kind and summary_has in a.summary)


def test_packages_install_added_are_purged_without_the_flag() -> None:
    plan = scripted()
    assert not plan.purge
    assert action(plan, "remove-packages").summary.startswith("purge")
    assert set(action(plan, "remove-packages").targets) == set(TOOLKIT)


def test_what_the_scripts_made_goes_after_the_purge_directories_last() -> None:
    plan = scripted()
    assert plan.saved == {}
    assert "save-files" not in kinds(plan)
    order = [(a.kind, a.targets) for a in plan.actions]
    purge = order.index(("remove-packages", tuple(sorted(TOOLKIT))))
    files = order.index(("remove-paths", (TOML, HOOK)))
    dirs = order.index(("remove-empty-dirs", (TOML_DIR,)))
    assert purge < files < dirs


def test_a_config_toml_changed_since_install_is_saved_first() -> None:
    plan = scripted(here={**MADE, TOML: "8" * 64})
    assert plan.saved == {TOML: f"{BACKUPS}{TOML}"}
    assert kinds(plan)[0] == "save-files"  # before any change: a failed copy stops it all
    assert TOML in action(plan, "remove-paths", "outside dpkg").targets
    assert plan.as_dict()["saved"] == {TOML: f"{BACKUPS}{TOML}"}


def test_a_config_toml_there_before_install_is_the_users() -> None:
    """Not recorded as made by install: neither saved nor removed, changed or not."""
    made = {HOOK: MADE[HOOK]}
    plan = scripted(made=made, here={**MADE, TOML: "8" * 64})
    assert plan.saved == {}
    touched = {t for a in plan.actions for t in a.targets}
    assert TOML not in touched and TOML_DIR not in touched


def test_a_path_written_ahead_but_never_seen_is_removed_unsaved() -> None:
    """A run killed inside the packages step: the postinst's file, nobody edited it."""
    plan = scripted(made={TOML_DIR: None, TOML: None}, here={TOML_DIR: "dir", TOML: TOML_SHA})
    assert plan.saved == {}
    assert action(plan, "remove-paths", "outside dpkg").targets == (TOML,)
    assert action(plan, "remove-empty-dirs", "outside dpkg").targets == (TOML_DIR,)


def test_unowned_paths_already_gone_are_left_out() -> None:
    plan = scripted(here={})
    assert not any("outside dpkg" in a.summary for a in plan.actions)


def test_a_changed_conffile_of_a_purged_package_is_saved_first() -> None:
    plan = plan_uninstall(
        record(),
        now(conffiles=(env_conffile("9" * 32),)),
        backup_dir=BACKUPS,
    )
    assert plan.saved == {CDI_ENV: f"{BACKUPS}{CDI_ENV}"}
    assert action(plan, "save-files").targets == (CDI_ENV,)
    assert kinds(plan)[0] == "save-files"


def test_conffiles_of_kept_packages_are_never_touched() -> None:
    plan = plan_uninstall(
        record(packages_before={"nvidia-container-toolkit-base": "1.17.8-1"}),
        now(conffiles=(env_conffile("9" * 32),)),
        backup_dir=BACKUPS,
    )
    assert plan.saved == {}
    assert "nvidia-container-toolkit-base" not in action(plan, "remove-packages").targets


def test_docker_that_came_with_the_bundle_is_purged_too() -> None:
    plan = plan_uninstall(
        record(packages_installed=WITH_DOCKER),
        now(
            packages=dict(WITH_DOCKER),
            conffiles=(Conffile("docker.io", "/etc/default/docker", MD5, "1" * 32),),
        ),
        backup_dir=BACKUPS,
    )
    assert "docker.io" in action(plan, "remove-packages").targets
    assert action(plan, "remove-packages").summary.startswith("purge")
    assert plan.saved == {"/etc/default/docker": f"{BACKUPS}/etc/default/docker"}
