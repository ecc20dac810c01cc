"""Writes that hit a real full filesystem (a tmpfs mounted for the test) say "no space".

Extraction into staging, the install record and its mirror, the packages ledger and any
atomic write: each reports ENOSPC as ``NoSpaceError`` (exit 1) naming the mount, never as
a damaged bundle, and leaves nothing half-written (no staging, no temporary file, the
previous content intact). Out of bytes and out of inodes alike.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from installer.atomicfile import leftovers, write_atomically
from installer.bundle_reader import verify_bundle
from installer.diskspace import NoSpaceError
from installer.errors import ExitCode
from installer.record import append_ledger, save_record
from tests.support import testkeys
from tests.support.bundles import make_test_bundle
from tests.support.records import installed_record

pytestmark = [pytest.mark.integration, pytest.mark.root]

Mount = Callable[[str], Path]  # tmpfs mount options -> the mounted directory


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Mount]:
    points: list[Path] = []

    def mount(options: str) -> Path:
        where = tmp_path / f"fs{len(points)}"
        where.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
        points.append(where)
        return where

    yield mount
    for where in points:
        subprocess.run(["umount", str(where)], check=False)


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("gnupg"))


@pytest.mark.parametrize("options", ["size=64k", "size=8m,nr_inodes=3"], ids=["bytes", "inodes"])
def test_extraction_into_a_full_filesystem_is_no_space_and_leaves_no_staging(
    tmp_path: Path, key: testkeys.TestKey, mounted: Mount, options: str
) -> None:
    bundle = make_test_bundle(tmp_path, key, files={"images/big.tar": os.urandom(256 * 1024)})
    fs = mounted(options)
    with pytest.raises(NoSpaceError) as caught:
        verify_bundle(bundle.path, [key.fingerprint], extract_to=fs / "bundle")
    assert caught.value.code == ExitCode.FAILURE
    assert caught.value.message.startswith(f"no space (or no inodes) left on {fs}")
    assert "copy it again" not in caught.value.hint
    assert list(fs.iterdir()) == []  # no staging, no bundle


def test_a_record_write_on_a_full_filesystem_keeps_the_old_record(mounted: Mount) -> None:
    fs = mounted("size=16k")
    record = fs / "install-record.json"
    save_record(installed_record(), record)
    old = record.read_bytes()
    bigger = installed_record().with_files(*(f"/var/lib/x/{i:05}" for i in range(2000)))
    with pytest.raises(NoSpaceError) as caught:
        save_record(bigger, record)
    assert str(fs) in caught.value.message
    assert record.read_bytes() == old and leftovers(record) == []


def test_ledger_and_atomic_writes_out_of_inodes_say_so(mounted: Mount) -> None:
    fs = mounted("size=1m,nr_inodes=2")
    (fs / "taken").write_text("")  # the root directory and this: no inode left
    with pytest.raises(NoSpaceError):
        append_ledger({"nvidia-container-toolkit": "1.20.1-1"}, fs / "installed-packages.ledger")
    with pytest.raises(NoSpaceError) as caught:
        write_atomically(fs / "gpubundle.list", b"deb [signed-by=...] file:/x /\n")
    assert caught.value.message.startswith(f"no space (or no inodes) left on {fs}")
    assert sorted(p.name for p in fs.iterdir()) == ["taken"]
