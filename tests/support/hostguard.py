"""Tests that install on this very host: when they may run, and putting the host back.

They install the stand-in NVIDIA packages with dpkg, write the apt source and
keyring, change /etc/docker/daemon.json and restart the shared dockerd that
``scripts/services.sh start`` runs. Later tests in the same run share all of
that, so :func:`guarded_host` puts the host back whatever happens: uninstall
through gpubundle first, then by hand whatever is still left (packages, files,
daemon.json), then dockerd running with its original arguments, then the
images it had.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from installer import engine, unownedpaths
from installer.engines import daemon
from installer.hostpaths import UNOWNED_PATHS, HostPaths
from installer.layout import STATE_DIR
from tests.support import hostsnapshot
from tests.support.docker_env import in_ci
from tests.support.hostsnapshot import DAEMON_JSON, HostSnapshot, parse_dpkg_status
from tests.support.installbundles import gpubundle

CI_LOG_DIR = Path("/var/log/gpubundle-ci")  # where scripts/services.sh logs dockerd
NVIDIA_PREFIXES = ("nvidia-container-", "libnvidia-container")
HOST = HostPaths.system()  # the shared dockerd's host: this one
SOURCES_LIST = HOST.sources_list
RECORD_PATH = HOST.record
KEYRINGS = Path("/usr/share/keyrings")
STATE = Path(STATE_DIR)
APT_LISTS = Path("/var/lib/apt/lists")
LOCAL_LISTS = "_var_lib_gpubundle_bundles_*"  # apt's lists of the bundles' file: sources
# A user's own daemon.json: every key must survive install and uninstall.
USER_SETTINGS: dict[str, Any] = {
    "log-driver": "json-file",
    "log-opts": {"max-size": "10m"},
    "features": {"buildkit": True},
    "registry-mirrors": ["http://127.0.0.1:5999"],  # only used for Docker Hub pulls: none here
}


def _skip_or_fail(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=300
    )


def nvidia_packages(status: Path = Path("/var/lib/dpkg/status")) -> dict[str, str]:
    """{name:arch: status} of NVIDIA container packages dpkg knows in any state."""
    return {
        key: state
        for key, (_, state) in parse_dpkg_status(status.read_text()).items()
        if key.startswith(NVIDIA_PREFIXES)
    }


def require_host() -> engine.EngineFacts:
    """Skip (fail under CI=true) unless this host may be installed on and put back."""
    if os.geteuid() != 0:
        pytest.skip("installs packages and restarts dockerd: needs root")
    facts = engine.detect_engine(HOST)
    if facts.systemd or not facts.pid or not facts.running:
        _skip_or_fail(f"needs the directly started dockerd of scripts/services.sh, found {facts}")
    audit = _run("dpkg", "--audit").stdout.strip()
    if audit:
        _skip_or_fail(f"dpkg has unfinished work (run dpkg --configure -a): {audit[:200]}")
    if RECORD_PATH.exists():
        pytest.skip(f"{RECORD_PATH} exists: gpubundle installed here for real; not touching it")
    present = nvidia_packages()
    if present:
        pytest.skip(f"NVIDIA container packages are on this host already: {present}")
    return facts


def image_present(ref: str) -> bool:
    return _run("docker", "image", "inspect", ref).returncode == 0


def remove_image(ref: str) -> None:
    """Docker without ``ref``, so install really loads it (the guard pulls it back)."""
    if image_present(ref):
        proc = _run("docker", "image", "rm", ref)
        assert proc.returncode == 0, proc.stderr


def restart_dockerd(argv: tuple[str, ...] = ()) -> engine.EngineFacts:
    """Restart the shared dockerd (with ``argv`` if given) and wait until it answers."""
    facts = engine.detect_engine(HOST)
    if argv:
        facts = dataclasses.replace(facts, argv=argv)
    engine.wait_until_ready(
        90,
        engine.restart_engine(
            facts, CI_LOG_DIR, sysv_script=HOST.docker_sysv_script, proc_dir=HOST.proc
        ),
    )
    return engine.detect_engine(HOST)


def write_daemon_json(settings: dict[str, Any], path: Path = DAEMON_JSON) -> bytes:
    """The user's own daemon.json, applied by restarting dockerd; returns the bytes written."""
    data = json.dumps(settings, indent=2).encode() + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    restart_dockerd()
    return data


@dataclass(frozen=True)
class Before:
    daemon_json: bytes | None
    dockerd_argv: tuple[str, ...]
    images: frozenset[str]  # of the refs the tests load, those Docker had
    keyrings: frozenset[str]
    bundles: frozenset[str]  # entries of /var/lib/gpubundle/bundles
    apt_lists: frozenset[str]  # apt's lists of gpubundle's local sources
    unowned_paths: frozenset[str] = frozenset()  # of hostpaths.UNOWNED_PATHS, those present


def _listing(directory: Path, pattern: str = "*") -> frozenset[str]:
    return frozenset(str(p) for p in directory.glob(pattern)) if directory.is_dir() else frozenset()


def capture_before(images: Iterable[str]) -> Before:
    facts = engine.detect_engine(HOST)
    return Before(
        daemon_json=DAEMON_JSON.read_bytes() if DAEMON_JSON.exists() else None,
        dockerd_argv=facts.argv,
        images=frozenset(i for i in images if image_present(i)),
        keyrings=_listing(KEYRINGS, "gpubundle-*.gpg"),
        bundles=_listing(STATE / "bundles"),
        apt_lists=_listing(APT_LISTS, LOCAL_LISTS),
        unowned_paths=frozenset(unownedpaths.present(HOST)),
    )


def restore(before: Before) -> list[str]:
    """Put the host back as ``before`` says; returns what could not be done."""
    problems: list[str] = []
    if RECORD_PATH.exists():
        proc = gpubundle("uninstall", "--yes", "--purge", "--json", timeout=600)
        if proc.returncode != 0:
            problems.append(f"gpubundle uninstall failed: {proc.stdout[-800:]}")
    left = [k.split(":")[0] for k, s in nvidia_packages().items() if s]
    if left:
        proc = _run("dpkg", "--purge", *left)
        if proc.returncode != 0:
            problems.append(f"dpkg --purge {left}: {proc.stderr[-800:]}")
    for path in (SOURCES_LIST, RECORD_PATH):
        path.unlink(missing_ok=True)
    # What the packages' postinst made (config.toml, the hook link) and no purge removes.
    # Deepest first: config.toml before its directory.
    for made in sorted(set(UNOWNED_PATHS) - before.unowned_paths, reverse=True):
        path = Path(made)
        with contextlib.suppress(OSError):  # a directory with someone else's files stays
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
    for key in _listing(KEYRINGS, "gpubundle-*.gpg") - before.keyrings:
        Path(key).unlink(missing_ok=True)
    # Orphans once the source is gone (apt ignores them; its next update deletes them).
    for lst in _listing(APT_LISTS, LOCAL_LISTS) - before.apt_lists:
        Path(lst).unlink(missing_ok=True)
    for tree in _listing(STATE / "bundles") - before.bundles:
        shutil.rmtree(tree, ignore_errors=True)
    now = DAEMON_JSON.read_bytes() if DAEMON_JSON.exists() else None
    if before.daemon_json is None:
        DAEMON_JSON.unlink(missing_ok=True)
    elif now != before.daemon_json:
        DAEMON_JSON.write_bytes(before.daemon_json)
    facts = engine.detect_engine(HOST)
    if not facts.running:
        with contextlib.suppress(Exception):
            engine.wait_until_ready(
                90, daemon.start_detached(before.dockerd_argv or ("dockerd",), CI_LOG_DIR)
            )
    elif facts.argv != before.dockerd_argv or now != before.daemon_json or _has_nvidia():
        try:
            restart_dockerd(before.dockerd_argv)
        except Exception as exc:  # report it with the rest; the next steps still run
            problems.append(f"restarting dockerd: {exc}")
    if not engine.ping():
        problems.append("dockerd does not answer after restoring the host")
    for ref in before.images:
        if not image_present(ref) and _run("docker", "pull", "-q", ref).returncode != 0:
            problems.append(f"could not pull {ref} back")
    return problems


def _has_nvidia() -> bool:
    return "nvidia" in engine.docker_runtimes()


@contextlib.contextmanager
def guarded_host(images: Iterable[str]) -> Iterator[Before]:
    """The host as found before; on exit, whatever happened, the host is put back."""
    before = capture_before(images)
    try:
        yield before
    finally:
        problems = restore(before)
        assert not problems, f"could not put the host back: {problems}"


@contextlib.contextmanager
def user_host(images: Iterable[str]) -> Iterator[HostSnapshot]:
    """A guarded host where the user has a daemon.json of their own and Docker lacks ``images``.

    Yields the host as it is then: the "before" that install and uninstall are judged by.
    """
    refs = list(images)
    with guarded_host(refs):
        write_daemon_json(USER_SETTINGS)
        for ref in refs:
            remove_image(ref)
        yield hostsnapshot.capture()
