"""``gpubundle uninstall`` after a real install on this host, with the real dockerd.

Judged as data against the host as it was before install (tests/support/hostsnapshot.py):
dpkg's packages, apt sources, keyrings, daemon.json and the runtimes Docker lists
must be back; Docker must still start and run a container; a second uninstall has
nothing to do. A daemon.json the user edited after install loses only the nvidia
entries. ``tests/support/hostguard.py`` puts the host back whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from installer import engine
from installer.hostpaths import UNOWNED_PATHS, HostPaths
from tests.support import hostguard, hostsnapshot
from tests.support.hostsnapshot import DAEMON_JSON, HostSnapshot
from tests.support.installbundles import (
    HostBundle,
    gpubundle,
    install,
    ok_document,
)
from tests.support.registry import CUDA_STANDIN

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.root]


def uninstall(*extra: str) -> dict[str, Any]:
    return ok_document(gpubundle("uninstall", "--yes", "--json", *extra))


def assert_docker_runs_containers() -> None:
    """Docker answers and runs the glibc test image (pulled again from the local registry)."""
    proc = subprocess.run(
        ["docker", "run", "--rm", CUDA_STANDIN.ref, "/bin/sh", "-c", "echo ran"],
        capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, "ran\n"), proc.stderr


def test_uninstall_puts_the_host_back(host_bundle: HostBundle, docker_host: HostSnapshot) -> None:
    argv = engine.detect_engine(HostPaths.system()).argv
    had = {p: os.path.lexists(p) for p in UNOWNED_PATHS}
    doc = ok_document(install(host_bundle, "--json"))
    assert "nvidia" in (hostsnapshot.capture().runtimes or ())
    made = doc["record"]["unowned_paths_created"]  # config.toml, its directory, the hook link
    assert set(made) == {p for p, there in had.items() if not there and os.path.lexists(p)}

    done = uninstall()

    kinds = [a["kind"] for a in done["actions"]]
    # What the postinst made where missing goes after the purge: files, then directories.
    unowned = ["remove-paths"] if any(v != "dir" for v in made.values()) else []
    unowned += ["remove-empty-dirs"] if "dir" in made.values() else []
    assert kinds == [
        "remove-images", "write-daemon-json", "restart-engine", "unmark-auto",
        "remove-packages", *unowned, "remove-paths", "remove-apt-lists", "remove-record",
        "remove-empty-dirs",
    ]  # fmt: skip
    assert {p: os.path.lexists(p) for p in UNOWNED_PATHS} == had
    after = hostsnapshot.capture()
    assert after.daemon_json == docker_host.daemon_json  # the user's own bytes, from the backup
    assert (after.sources, after.keyrings, after.runtimes) == (
        docker_host.sources,
        docker_host.keyrings,
        docker_host.runtimes,
    )
    # Purged: dpkg's table is exactly as before, no "config-files" left.
    assert after.installed() == docker_host.installed()
    assert after.packages == docker_host.packages
    assert not HostPaths.system().record.exists()
    assert not hostguard.image_present(CUDA_STANDIN.ref)  # install loaded it: removed
    assert engine.detect_engine(HostPaths.system()).argv == argv
    assert_docker_runs_containers()

    again = uninstall()
    assert again["nothing_to_do"] is True and again["actions"] == []
    assert hostsnapshot.capture() == after  # and changed nothing


def test_uninstall_keeps_daemon_json_edits_made_after_install(
    host_bundle: HostBundle, docker_host: HostSnapshot
) -> None:
    ok_document(install(host_bundle, "--json"))
    edited = json.loads(DAEMON_JSON.read_text())
    edited["debug"] = True
    edited["log-opts"] = {"max-size": "20m"}
    edited["default-runtime"] = "nvidia"  # what many users do next
    DAEMON_JSON.write_text(json.dumps(edited, indent=2))
    hostguard.restart_dockerd()  # the user applies it; containers now run via nvidia

    done = uninstall("--purge")

    assert "write-daemon-json" in [a["kind"] for a in done["actions"]]
    after = hostsnapshot.capture()
    expected = {**hostguard.USER_SETTINGS, "debug": True, "log-opts": {"max-size": "20m"}}
    assert after.daemon_config() == expected  # no runtimes, no default-runtime, edits kept
    assert after.packages == docker_host.packages  # purged: dpkg is exactly as before
    assert (after.sources, after.keyrings, after.runtimes) == (
        docker_host.sources,
        docker_host.keyrings,
        docker_host.runtimes,
    )
    info = subprocess.run(
        ["docker", "info", "--format", "{{json .Debug}} {{.DefaultRuntime}}"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()  # fmt: skip
    assert info == ["true", "runc"]  # the running daemon reads the cleaned file
    assert_docker_runs_containers()
    assert uninstall()["nothing_to_do"] is True


def test_uninstall_keeps_an_image_docker_had_before_install(
    host_bundle: HostBundle, docker_host: HostSnapshot
) -> None:
    subprocess.run(["docker", "pull", "-q", CUDA_STANDIN.ref], check=True, capture_output=True)
    doc = ok_document(install(host_bundle, "--json"))
    verify = host_bundle.manifest.images[0].ref  # the builtin image, which Docker did not have
    assert doc["record"]["images_loaded"] == [verify]
    images = next(s for s in doc["result"]["steps"] if s["id"] == "images")
    assert "uninstall keeps" in images["detail"], images

    done = uninstall()

    removed = [t for a in done["actions"] if a["kind"] == "remove-images" for t in a["targets"]]
    assert removed == [verify]
    assert hostguard.image_present(CUDA_STANDIN.ref)


def test_daemon_json_created_by_install_is_deleted_by_uninstall(
    host_bundle: HostBundle, docker_host: HostSnapshot
) -> None:
    DAEMON_JSON.unlink()  # a fresh Docker host has none
    hostguard.restart_dockerd()
    doc = ok_document(install(host_bundle, "--json"))
    assert doc["record"]["runtime_change"]["backup_path"] is None
    assert "nvidia" in json.loads(DAEMON_JSON.read_text())["runtimes"]

    done = uninstall()

    assert "delete-daemon-json" in [a["kind"] for a in done["actions"]]
    assert not DAEMON_JSON.exists()
    assert "nvidia" not in (hostsnapshot.capture().runtimes or ())
    assert_docker_runs_containers()
