"""Space for an install: needs from the manifest, statvfs facts as data, verdicts per filesystem.

The effects on a real full filesystem (tmpfs) are in tests/integration/test_disk_full_roots.py.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from pathlib import Path

import pytest

from installer import diskspace
from installer.diskspace import (
    DiskFacts,
    Need,
    SpaceFact,
    check_space,
    install_needs,
    no_space_error,
    space_fact,
    tool_ran_out_of_space,
)
from installer.errors import ExitCode, GpubundleError
from installer.hostpaths import HostPaths
from installer.manifest import FileEntry, ImagePin
from installer.preflight import Options, run_preflight
from tests.support.hostfacts import GOOD
from tests.support.manifests import make_manifest

GIB = 2**30
HOST = HostPaths.system()  # the needs name the host's own directories
ROOT_FS = SpaceFact("/", "/", 1, 100 * GIB, 10**6)


def facts_for(needs: list[Need], **per_path: SpaceFact) -> dict[str, SpaceFact]:
    return {n.path: per_path.get(n.path, dataclasses.replace(ROOT_FS, path=n.path)) for n in needs}


def test_needs_name_every_directory_an_install_writes() -> None:
    needs = install_needs(
        make_manifest(),
        already_extracted=False,
        installed={},
        runtime="docker",
        temp_dir="/tmp",
        host=HOST,
    )
    assert [n.path for n in needs] == [
        "/tmp", "/var/lib/gpubundle/bundles", "/var/lib/dpkg", "/var/lib/apt",
        "/var/cache/apt", "/usr",
    ]  # fmt: skip
    store = needs[1]
    assert store.bytes >= 4 * 3 * 2**20 and store.inodes >= 4 + 3  # 4 files, repo/debs dirs
    assert needs[-1].bytes == 4 * 1000 * diskspace.INSTALLED_PER_DEB_BYTE


def test_nothing_to_extract_or_install_needs_only_the_temp_dir() -> None:
    manifest = make_manifest()
    installed = {p.name: p.version for p in manifest.packages}
    needs = install_needs(
        manifest,
        already_extracted=True,
        installed=installed,
        runtime="none",
        temp_dir="/t",
        host=HOST,
    )
    assert [n.path for n in needs] == ["/t"]


def test_images_need_room_in_docker_only_with_docker() -> None:
    image = ImagePin("cuda:12", "sha256:" + "a" * 64, "sha256:" + "b" * 64, "", "images/x.tar")
    manifest = make_manifest(images=(image,))
    manifest = dataclasses.replace(
        manifest, files=(*manifest.files, FileEntry("images/x.tar", GIB, "0" * 64))
    )
    kwargs = {"already_extracted": True, "installed": {}, "temp_dir": "/tmp", "host": HOST}
    docker = install_needs(manifest, runtime="docker", **kwargs)  # type: ignore[arg-type]
    assert docker[-1].path == "/var/lib/docker" and docker[-1].bytes == 2 * GIB
    crio = install_needs(manifest, runtime="crio", **kwargs)  # type: ignore[arg-type]
    assert "/var/lib/docker" not in {n.path for n in crio}


def test_needs_on_one_filesystem_add_up_with_the_margin() -> None:
    needs = [Need("/a", 600 * 2**20, 10, "a"), Need("/b", 500 * 2**20, 10, "b")]
    total = diskspace.with_margin(1100 * 2**20, diskspace.MARGIN_BYTES)
    tight = dataclasses.replace(ROOT_FS, free_bytes=total - 1)
    [verdict] = check_space(needs, {"/a": tight, "/b": tight})
    assert not verdict.ok and verdict.paths == ("/a", "/b")
    assert verdict.detail.startswith("not enough space on / (/a, /b): need 1.2 GiB, have 1.2 GiB")
    roomy = dataclasses.replace(ROOT_FS, free_bytes=total)
    assert check_space(needs, {"/a": roomy, "/b": roomy})[0].ok


def test_each_filesystem_is_judged_apart_bytes_then_inodes() -> None:
    needs = [Need("/var/lib/gpubundle/bundles", 2**20, 100, "the bundle"), Need("/tmp", 1, 1, "t")]
    store = SpaceFact("/var/lib/gpubundle/bundles", "/var/lib/gpubundle/bundles", 2, GIB, 50)
    verdicts = check_space(needs, facts_for(needs, **{"/var/lib/gpubundle/bundles": store}))
    assert [v.ok for v in verdicts] == [False, True]
    assert verdicts[0].detail.startswith(
        "not enough inodes on /var/lib/gpubundle/bundles (/var/lib/gpubundle/bundles): "
        "need 174, have 50"
    )
    assert "out of inodes" in verdicts[0].hint


def test_a_filesystem_without_an_inode_limit_is_not_checked_for_inodes() -> None:
    needs = [Need("/x", 1, 10**9, "many files")]
    btrfs = SpaceFact("/x", "/", 3, GIB, None)
    assert check_space(needs, {"/x": btrfs})[0].ok


def test_preflight_fails_with_the_place_named_and_exit_4() -> None:
    manifest = make_manifest()
    needs = install_needs(
        manifest,
        already_extracted=False,
        installed={},
        runtime="none",
        temp_dir="/tmp",
        host=HOST,
    )
    full = SpaceFact("/var/lib/gpubundle/bundles", "/var/lib/gpubundle", 9, 2**20, 10**5)
    space = facts_for(needs, **{"/var/lib/gpubundle/bundles": full})
    disk = DiskFacts(space, {}, "/tmp", 0, HOST)
    report = run_preflight(manifest, dataclasses.replace(GOOD, disk=disk), Options("none", True))
    failed = {c.name: c.detail for c in report.failures}
    assert list(failed) == ["disk /var/lib/gpubundle"]
    assert "not enough space on /var/lib/gpubundle (/var/lib/gpubundle/bundles)" in str(failed)
    with pytest.raises(Exception) as caught:
        report.raise_if_failed()
    assert getattr(caught.value, "code", None) == ExitCode.PREFLIGHT


def test_facts_of_a_path_not_yet_created_are_its_ancestors(tmp_path: Path) -> None:
    fact = space_fact(str(tmp_path / "not" / "yet"))
    st = os.statvfs(tmp_path)
    assert fact.device == tmp_path.stat().st_dev
    assert abs(fact.free_bytes - st.f_bfree * st.f_frsize) < 64 * 2**20
    assert Path(fact.mount) in (tmp_path, *tmp_path.parents)


def test_no_space_is_exit_1_and_names_the_filesystem(tmp_path: Path) -> None:
    err = no_space_error(tmp_path / "f", OSError(errno.ENOSPC, "No space left on device"))
    assert err.code == ExitCode.FAILURE
    assert err.message.startswith("no space (or no inodes) left on /")
    assert str(tmp_path / "f") in err.message and "copy it again" not in err.hint


def test_apt_saying_the_disk_is_full_is_no_space_on_the_path_it_names() -> None:
    apt = GpubundleError(
        "installing the packages failed (apt-get exit code 100)",
        hint="read apt's output above",
        details=[
            "Unpacking nvidia-container-toolkit-base (1.20.1-1) ...",
            "dpkg: error processing archive /var/lib/gpubundle/bundles/x/repo/debs/a.deb "
            "(--unpack):",
            " cannot copy extracted data for './usr/bin/nvidia-ctk' to "
            "'/usr/bin/nvidia-ctk.dpkg-new': failed to write (No space left on device)",
        ],
    )
    err = tool_ran_out_of_space(apt)
    assert err.code == ExitCode.FAILURE
    assert err.message.startswith("no space (or no inodes) left on /")
    assert "(/usr/bin/nvidia-ctk.dpkg-new): installing" in err.message
    assert list(err.details) == list(apt.details)
    other = GpubundleError("apt failed", details=["E: Unable to locate package x"])
    assert tool_ran_out_of_space(other) is other


def test_a_path_dpkg_names_without_quotes_is_found_too() -> None:
    dpkg = GpubundleError(
        "installing the packages failed (apt-get exit code 100)",
        details=[
            "dpkg: unrecoverable fatal error, aborting:",
            " unable to fill /var/lib/dpkg/updates/tmp.i with padding: No space left on device",
        ],
    )
    assert "(/var/lib/dpkg/updates/tmp.i)" in tool_ran_out_of_space(dpkg).message


def test_a_directory_that_cannot_be_examined_is_left_out_not_a_crash() -> None:
    needs = [Need("/a", 1, 1, "a"), Need("/b", 1, 1, "b")]
    assert [v.paths for v in check_space(needs, {"/a": ROOT_FS})] == [("/a",)]


def test_a_small_need_gets_a_small_cushion() -> None:
    need = Need("/tmp", diskspace.TEMP_BYTES, diskspace.TEMP_INODES, "gpgv")
    room = diskspace.with_margin(diskspace.TEMP_BYTES, diskspace.MARGIN_BYTES)
    assert room < 3 * diskspace.TEMP_BYTES
    assert check_space([need], {"/tmp": dataclasses.replace(ROOT_FS, free_bytes=room)})[0].ok


def test_a_roots_needs_and_facts_name_its_own_directories(tmp_path: Path) -> None:
    """Under a test root the needs and their statvfs facts are the root's directories."""
    host = HostPaths(tmp_path)
    host.dpkg_admin_dir.mkdir(parents=True)
    (host.dpkg_admin_dir / "status").write_bytes(b"x" * 1000)
    disk = diskspace.gather_disk_facts({}, host, temp_dir=str(tmp_path / "tmp"))
    assert disk.dpkg_status_bytes == 1000 and disk.host == host
    needs = install_needs(
        make_manifest(),
        already_extracted=False,
        installed={},
        runtime="docker",
        temp_dir=disk.temp_dir,
        host=host,
    )
    assert [n.path for n in needs][1:] == [
        str(tmp_path / d) for d in ("var/lib/gpubundle/bundles", "var/lib/dpkg", "var/lib/apt",
                                    "var/cache/apt", "usr")
    ]  # fmt: skip
    assert all(n.path in disk.space for n in needs)
    assert needs[2].bytes >= 3 * 1000  # the root's status file, rewritten beside status-old
