"""Host facts: os-release, dpkg-query output and free space, read from fixtures."""

from __future__ import annotations

from pathlib import Path

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


def test_free_bytes_of_a_path_not_yet_created(tmp_path: Path) -> None:
    assert free_bytes(tmp_path / "not" / "yet") == free_bytes(tmp_path) > 0
