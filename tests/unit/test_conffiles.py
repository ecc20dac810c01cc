"""dpkg's conffiles as uninstall reads them: which ones were changed since install."""

from __future__ import annotations

import hashlib
from pathlib import Path

from installer.conffiles import Conffile, dpkg_query_argv, md5_of, parse_conffiles

# dpkg-query -W -f '${Package}\n${Conffiles}\n' for three packages, one without conffiles.
QUERY = """\
nvidia-container-toolkit-base
 /etc/nvidia-container-toolkit/nvidia-cdi-refresh.env 56be029390dc5f1e0a4bd39e1f0a9b04
nvidia-container-toolkit

docker.io
 /etc/default/docker 01b1e08e7a7e1bd8e61de0c7c2a4a2d4
 /etc/init.d/docker 9dd0a1e2a4ad4b34dd8a1e9c3b9d7c11 obsolete
"""


def test_parse_names_each_conffile_with_its_package() -> None:
    assert parse_conffiles(QUERY) == [
        ("nvidia-container-toolkit-base", "/etc/nvidia-container-toolkit/nvidia-cdi-refresh.env",
         "56be029390dc5f1e0a4bd39e1f0a9b04"),
        ("docker.io", "/etc/default/docker", "01b1e08e7a7e1bd8e61de0c7c2a4a2d4"),
        ("docker.io", "/etc/init.d/docker", "9dd0a1e2a4ad4b34dd8a1e9c3b9d7c11"),
    ]  # fmt: skip


def test_argv_reads_the_given_database() -> None:
    argv = dpkg_query_argv(Path("/x/dpkg"), ["a", "b"])
    assert argv[:3] == ["dpkg-query", "--admindir=/x/dpkg", "-W"]
    assert argv[-3:] == ["--", "a", "b"]


def test_changed_means_another_md5_than_dpkg_installed() -> None:
    md5 = "0" * 32
    assert Conffile("p", "/etc/x", md5, "1" * 32).changed
    assert not Conffile("p", "/etc/x", md5, md5).changed
    assert not Conffile("p", "/etc/x", md5, None).changed  # gone: nothing to save
    # Unpacked but never configured: dpkg has no MD5 yet, so no edit can be told.
    assert not Conffile("p", "/etc/x", "newconffile", "1" * 32).changed


def test_md5_of_regular_files_only(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"conf\n")
    (tmp_path / "l").symlink_to("f")
    assert md5_of(tmp_path / "f") == hashlib.md5(b"conf\n").hexdigest()
    assert md5_of(tmp_path / "l") is None
    assert md5_of(tmp_path / "missing") is None
    assert md5_of(tmp_path) is None
