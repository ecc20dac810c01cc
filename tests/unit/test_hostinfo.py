"""Host facts: os-release, dpkg-query output and free space, read from fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from installer.hostinfo import (
    distro_name,
    dpkg_query_argv,
    free_bytes,
    parse_dpkg_query,
    parse_os_release,
    read_os_release,
)

UBUNTU = """\
PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
# a comment
ID=ubuntu
ID_LIKE=debian
"""
DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\nID=debian\n'


def test_os_release_names_the_distro_as_bundles_do() -> None:
    assert distro_name(parse_os_release(UBUNTU)) == "ubuntu22.04"
    assert distro_name(parse_os_release(DEBIAN)) == "debian12"
    assert parse_os_release(UBUNTU)["PRETTY_NAME"] == "Ubuntu 22.04.4 LTS"


def test_os_release_falls_back_to_usr_lib(tmp_path: Path) -> None:
    usr_lib = tmp_path / "os-release"
    usr_lib.write_text(DEBIAN)
    assert read_os_release([tmp_path / "missing", usr_lib])["ID"] == "debian"
    assert read_os_release([tmp_path / "missing"]) == {}


def test_dpkg_query_counts_only_installed_packages_of_the_arch() -> None:
    output = (
        "nvidia-container-toolkit\tamd64\t1.17.8-1\tii \n"
        "libnvidia-container1\tamd64\t1.17.8-1\tiF \n"  # half-configured
        "libc6\ti386\t2.35-0ubuntu3\tii \n"
        "libc6\tamd64\t2.35-0ubuntu3.8\tii \n"
        "tzdata\tall\t2024a-0ubuntu0.22.04\tii \n"
        "gone\tamd64\t1.0\trc \n"
        "garbage line\n"
    )
    assert parse_dpkg_query(output, "amd64") == {
        "nvidia-container-toolkit": "1.17.8-1",
        "libc6": "2.35-0ubuntu3.8",
        "tzdata": "2024a-0ubuntu0.22.04",
    }


def test_dpkg_query_argv_asks_for_status_and_arch() -> None:
    argv = dpkg_query_argv(["b", "a", "b"])
    assert argv[:2] == ["dpkg-query", "-W"]
    assert "${db:Status-Abbrev}" in argv[2]
    assert argv[3:] == ["a", "b"]


def test_free_bytes_of_a_path_not_yet_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Measured on the nearest existing ancestor (asked of the filesystem once each: two
    reads of a busy disk's free space need not agree)."""
    asked: list[Path] = []
    real = shutil.disk_usage

    def disk_usage(path: Path) -> Any:
        asked.append(Path(path))
        return real(path)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    assert free_bytes(tmp_path / "not" / "yet") > 0
    assert asked == [tmp_path]


def test_a_roots_os_release_and_dpkg_database_are_read_under_it(tmp_path: Path) -> None:
    """Preflight's facts come from HostPaths' root: its os-release, its dpkg database."""
    from installer.hostinfo import installed_versions
    from installer.hostpaths import HostPaths

    host = HostPaths(tmp_path)
    assert read_os_release(host.os_release_files) == {}
    lib = tmp_path / "usr/lib/os-release"
    lib.parent.mkdir(parents=True)
    lib.write_text(DEBIAN)
    assert distro_name(read_os_release(host.os_release_files)) == "debian12"
    etc = tmp_path / "etc/os-release"
    etc.parent.mkdir()
    etc.write_text(UBUNTU)
    assert distro_name(read_os_release(host.os_release_files)) == "ubuntu22.04"

    host.dpkg_admin_dir.mkdir(parents=True)
    (host.dpkg_admin_dir / "status").write_text(
        "Package: nvidia-container-toolkit\nStatus: install ok installed\n"
        "Architecture: amd64\nVersion: 1.17.8-1\nMaintainer: x\nDescription: y\n"
    )
    (host.dpkg_admin_dir / "available").touch()
    (host.dpkg_admin_dir / "info").mkdir()
    names = ["nvidia-container-toolkit", "libc6"]
    assert dpkg_query_argv(names, host.dpkg_admin_dir)[1] == f"--admindir={host.dpkg_admin_dir}"
    found = installed_versions(names, "amd64", host.dpkg_admin_dir)
    assert found == {"nvidia-container-toolkit": "1.17.8-1"}  # the root's, not the machine's
