"""The host lock: one run at a time, and the refusal names the holder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from installer.errors import ExitCode, LockedError
from installer.hostlock import host_lock


def test_second_holder_is_refused_with_the_first_pid(tmp_path: Path) -> None:
    lock = tmp_path / "run" / "gpubundle.lock"
    with host_lock(lock):
        assert lock.read_text().strip() == str(os.getpid())
        with pytest.raises(LockedError) as caught, host_lock(lock, command="gpubundle install"):
            pass
    assert caught.value.code == ExitCode.LOCKED
    assert f"pid {os.getpid()}" in caught.value.message
    assert "gpubundle install" in caught.value.hint


def test_lock_is_free_again_after_the_block(tmp_path: Path) -> None:
    lock = tmp_path / "gpubundle.lock"
    with host_lock(lock):
        pass
    with host_lock(lock):
        pass
    assert lock.read_text() == ""
