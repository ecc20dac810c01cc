"""tests/support/mounts.py reads mount points under a directory from mountinfo's text."""

from __future__ import annotations

from pathlib import Path

from tests.support.mounts import mounts_under

MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
60 22 0:5 / /tmp/run/root/proc rw,relatime - proc proc rw
61 22 0:22 / /tmp/run/root/dev rw,nosuid shared:2 - devtmpfs udev rw
62 61 0:23 / /tmp/run/root/dev/pts rw - devpts devpts rw
63 22 0:40 / /tmp/run/with\\040space rw - tmpfs tmpfs rw
64 22 0:41 / /tmp/runner rw - tmpfs tmpfs rw
"""


def test_points_under_the_directory_in_mount_order(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    assert mounts_under(Path("/tmp/run"), mountinfo=info) == [
        "/tmp/run/root/proc",
        "/tmp/run/root/dev",
        "/tmp/run/root/dev/pts",
        "/tmp/run/with space",
    ]


def test_a_sibling_with_the_same_prefix_is_not_under_it(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    assert mounts_under(Path("/tmp/runner"), mountinfo=info) == ["/tmp/runner"]
    assert mounts_under(Path("/tmp/ru"), mountinfo=info) == []
