"""``gpubundle uninstall`` is the exact inverse of install, compared as the whole root.

The packages are the faithful stand-ins (tests/support/standin_nvidia.py): NVIDIA's
files and its maintainer scripts' effects: config.toml made by toolkit-base's postinst,
the nvidia-cdi-refresh units enabled through the root's own ``deb-systemd-helper`` (and
masked by ``dpkg --remove``), the unowned ``/usr/bin/nvidia-container-toolkit`` link, the
conffile nvidia-cdi-refresh.env, and libnvidia-container1's ldconfig trigger. With
them a plain ``apt-get remove`` leaves 20 paths behind and a purge 2, as on a real host.

Each test lists the whole root (tests/support/rootsnapshot.py ``listing``: path, type,
mode, owner, link target, content hash) before install and after uninstall and wants
them equal, but for ``LISTING_SKIPPED`` (mount points, logs, apt's and ldconfig's
caches, dpkg's ``*-old`` copies, the lock file). Roots: a minbase Ubuntu 24.04 (where
issue #9 was seen), Ubuntu 22.04 and Debian 12 (config.toml's ldconfig differs:
``ldconfig.real`` on Ubuntu); a Debian
12 root where docker.io was installed before, whose enablement links must stay; and
that root with the user's own daemon.json, and config.toml and the conffile edited after
install: those two are saved under /var/backups/gpubundle/<stamp>/ first, and the
uninstall --json document says where; and a Debian 12 root where the bundle
(``gpubundle build --with-docker``) brought docker.io: it is purged with its enablement
links, and only the "docker" system group (no purge removes one), the /etc/hosts
netbase's postinst wrote (a debootstrap root has none) and adduser's lock in /run stay.

The installer runs with ``--runtime none``: in a chroot the host's processes are
visible (/proc), so ``--runtime docker`` would restart the shared dockerd; the
runtime step's daemon.json inverse is proven on the host by test_runtime_docker.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from installer import hostpaths, layout, unownedpaths
from tests.conftest import CACHE_DIR
from tests.support import testkeys
from tests.support.inroot import BUNDLE, gpubundle, ok_json, prime_apt, proc_mounted
from tests.support.installbundles import bundle_for_root
from tests.support.rootfiles import FAMILY, INCLUDE, VERSION
from tests.support.roots import debootstrap_root
from tests.support.rootsnapshot import Entry, listing, listing_differences
from tests.support.standin_served import ROOT_PYTHONS, ServedStandin

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.archive]

RECORD = "var/lib/gpubundle/install-record.json"
CONFIG_TOML = hostpaths.TOOLKIT_CONFIG
CDI_ENV = "/etc/nvidia-container-toolkit/nvidia-cdi-refresh.env"
WANTS = "/etc/systemd/system/multi-user.target.wants"
UNITS = ("nvidia-cdi-refresh.path", "nvidia-cdi-refresh.service")
DOCKER_LINKS = (f"{WANTS}/docker.service", "/etc/systemd/system/sockets.target.wants/docker.socket")
DAEMON_JSON = "/etc/docker/daemon.json"
WITH_DOCKER = (*INCLUDE, "docker.io")


@pytest.fixture(scope="module")
def installer_pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped installer, also for Ubuntu 24.04's python3.12 (the shared one has no 3.12)."""
    from bundler.zipapp import build_installer

    dest = tmp_path_factory.mktemp("pyz") / "gpubundle-installer.pyz"
    return build_installer(dest, CACHE_DIR, [*ROOT_PYTHONS, "3.12"], "amd64")


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("signer"), name="gpubundle inverse test")


def at(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def install(root: Path, fingerprint: str) -> dict[str, Any]:
    return ok_json(
        gpubundle(root, "install", BUNDLE, "--trust", fingerprint, "--runtime", "none",
                  "--skip-gpu-checks", "--yes", "--json")
    )  # fmt: skip


def assert_scripts_ran(root: Path, distro: str, record: dict[str, Any]) -> None:
    """The stand-ins' maintainer scripts did what NVIDIA's do, and install recorded it."""
    ldconfig = "@/sbin/ldconfig.real" if distro.startswith("ubuntu") else "@/sbin/ldconfig"
    assert f'ldconfig = "{ldconfig}"' in at(root, CONFIG_TOML).read_text()
    for unit in UNITS:
        assert at(root, f"{WANTS}/{unit}").is_symlink(), unit
    hook = at(root, hostpaths.HOOK_LINK)
    assert hook.is_symlink() and hook.resolve().name == "nvidia-container-runtime-hook"
    assert at(root, CDI_ENV).is_file()
    made = record["unowned_paths_created"]
    # dpkg makes /lib.usr-is-merged for toolkit-base's /lib/systemd/system where base-files
    # diverts /lib (DEP17, Ubuntu 24.04); no purge removes it.
    expected = set(hostpaths.UNOWNED_PATHS)
    if distro != "ubuntu24.04":
        expected.discard(hostpaths.DIVERTED_LIB)
    assert set(made) == expected, made
    assert made[hostpaths.TOOLKIT_CONFIG_DIR] == "dir"
    assert made[CONFIG_TOML] == unownedpaths.fingerprint(at(root, CONFIG_TOML))


def assert_as_before(before: dict[str, Entry], root: Path, ignored: tuple[str, ...] = ()) -> None:
    left = listing_differences(before, listing(root), ignored)
    assert left == [], "uninstall left the root changed:\n" + "\n".join(left)


def uninstall(root: Path) -> dict[str, Any]:
    done = ok_json(gpubundle(root, "uninstall", "--yes", "--json"))
    assert done["dry_run"] is False
    kinds = {a["kind"]: a["targets"] for a in done["actions"]}
    assert sorted(kinds["remove-packages"]) == sorted(FAMILY)
    assert "purge" in next(a for a in done["actions"] if a["kind"] == "remove-packages")["summary"]
    assert not at(root, RECORD).exists()
    return done


@pytest.mark.parametrize("distro", ["ubuntu24.04", "ubuntu22.04", "debian12"])
def test_minbase_root_is_as_before(
    distro: str,
    tmp_path: Path,
    key: testkeys.TestKey,
    installer_pyz: Path,
    standin_repo: ServedStandin,
) -> None:
    root = debootstrap_root(distro, "minbase", INCLUDE, dest=tmp_path / "root")
    bundle_for_root(
        root, distro, tmp_path / "out", key, standin_repo,
        pyz=installer_pyz, toolkit_version=VERSION,
    )  # fmt: skip
    with proc_mounted(root):
        prime_apt(root)
        before = listing(root)
        assert_scripts_ran(root, distro, install(root, key.fingerprint)["record"])

        done = uninstall(root)
        assert done["saved"] == {}
        assert_as_before(before, root)

        # --purge still works, and adds nothing to a plain uninstall.
        install(root, key.fingerprint)
        purged = ok_json(gpubundle(root, "uninstall", "--purge", "--yes", "--json"))
        assert purged["purge"] is True
        assert_as_before(before, root)


def test_root_with_docker_before_keeps_docker_as_it_was(
    tmp_path: Path, key: testkeys.TestKey, installer_pyz: Path, standin_repo: ServedStandin
) -> None:
    root = debootstrap_root("debian12", "minbase", WITH_DOCKER, dest=tmp_path / "root")
    bundle_for_root(
        root, "debian12", tmp_path / "out", key, standin_repo,
        pyz=installer_pyz, toolkit_version=VERSION,
    )  # fmt: skip
    for link in DOCKER_LINKS:  # docker.io's postinst enabled its units at debootstrap time
        assert at(root, link).is_symlink(), link
    with proc_mounted(root):
        prime_apt(root)
        before = listing(root)
        record = install(root, key.fingerprint)["record"]
        assert_scripts_ran(root, "debian12", record)
        assert "docker.io" not in record["packages_installed"]

        uninstall(root)
        assert_as_before(before, root)


def test_files_changed_since_install_are_saved_then_removed(
    tmp_path: Path, key: testkeys.TestKey, installer_pyz: Path, standin_repo: ServedStandin
) -> None:
    root = debootstrap_root("debian12", "minbase", WITH_DOCKER, dest=tmp_path / "root")
    bundle_for_root(
        root, "debian12", tmp_path / "out", key, standin_repo,
        pyz=installer_pyz, toolkit_version=VERSION,
    )  # fmt: skip
    users_daemon_json = json.dumps({"log-driver": "journald", "data-root": "/srv/docker"}) + "\n"
    at(root, DAEMON_JSON).parent.mkdir(exist_ok=True)
    at(root, DAEMON_JSON).write_text(users_daemon_json)
    with proc_mounted(root):
        prime_apt(root)
        before = listing(root)
        assert_scripts_ran(root, "debian12", install(root, key.fingerprint)["record"])
        # The user edits config.toml (made by the postinst) and the conffile.
        toml = at(root, CONFIG_TOML).read_text()
        edited = {
            CONFIG_TOML: toml.replace('log-level = "info"', 'log-level = "debug"'),
            CDI_ENV: at(root, CDI_ENV).read_text() + "NVIDIA_CTK_DEBUG=true\n",
        }
        for path, text in edited.items():
            assert text != at(root, path).read_text()
            at(root, path).write_text(text)

        dry = ok_json(gpubundle(root, "uninstall", "--dry-run", "--json"))
        assert set(dry["saved"]) == set(edited)
        done = uninstall(root)
        saved = done["saved"]
        assert set(saved) == set(edited)
        stamp_dir = Path(saved[CONFIG_TOML]).parent.parent.parent
        assert stamp_dir.parent == Path(layout.BACKUPS_DIR), saved
        for path, copy in saved.items():
            assert copy == f"{stamp_dir}{path}"
            assert at(root, copy).read_text() == edited[path], path
            assert not at(root, path).exists(), path
        # Everything else as before: daemon.json the user's, bytes and all.
        assert_as_before(before, root, (layout.BACKUPS_DIR,))
        assert at(root, DAEMON_JSON).read_text() == users_daemon_json


POLICY_RC_D = "/usr/sbin/policy-rc.d"  # exit 101: no service starts inside the chroot
# What stays after docker.io, brought by the bundle, is purged, and why uninstall leaves it:
GROUP_FILES = ("/etc/group", "/etc/group-", "/etc/gshadow", "/etc/gshadow-")  # the "docker"
# system group docker.io's postinst adds: no purge removes a system group (files may still
# be owned by it; users may have been added to it since), and neither does uninstall.
HOSTS = "/etc/hosts"  # netbase's postinst writes it where missing; hosts have one already
ADDUSER_LOCK = "/run/adduser"  # adduser's lock file; /run is emptied at boot


def test_docker_the_bundle_brought_is_purged_with_its_links(
    tmp_path: Path, key: testkeys.TestKey, installer_pyz: Path, standin_repo: ServedStandin
) -> None:
    root = debootstrap_root("debian12", "minbase", INCLUDE, dest=tmp_path / "root")
    bundle_for_root(
        root, "debian12", tmp_path / "out", key, standin_repo,
        pyz=installer_pyz, extra=("--with-docker",),
    )  # fmt: skip
    # A host's docker.io postinst starts dockerd; in a chroot that shares the host's
    # processes it must not: invoke-rc.d asks policy-rc.d first (as in a debootstrap).
    at(root, POLICY_RC_D).write_text("#!/bin/sh\nexit 101\n")
    at(root, POLICY_RC_D).chmod(0o755)
    with proc_mounted(root):
        prime_apt(root)
        before = listing(root)
        record = install(root, key.fingerprint)["record"]
        assert {"docker.io", "netbase"} <= set(record["packages_installed"]), record
        for link in DOCKER_LINKS:
            assert at(root, link).is_symlink(), link

        done = ok_json(gpubundle(root, "uninstall", "--yes", "--json"))
        purged = next(a for a in done["actions"] if a["kind"] == "remove-packages")
        assert "docker.io" in purged["targets"] and purged["summary"].startswith("purge")
        for link in DOCKER_LINKS:
            assert not os.path.lexists(at(root, link)), link
        assert_as_before(before, root, (*GROUP_FILES, HOSTS, ADDUSER_LOCK))
        assert "\ndocker:" in "\n" + at(root, "/etc/group").read_text()
