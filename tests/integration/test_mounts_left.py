"""A mount left in a test's directory is detached before the directory is deleted.

pytest deletes a passing test's tmp_path (pyproject.toml); tests/conftest.py's tmp_path
detaches whatever is still mounted there first, so the delete never reaches the files a
bind mount shows.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.mounts import detach_all, mounts_under

pytestmark = [pytest.mark.integration, pytest.mark.root]


def test_detached_mounts_leave_the_tree_and_the_bound_files_stay(tmp_path: Path) -> None:
    source = tmp_path / "host-files"
    source.mkdir()
    (source / "precious").write_text("kept\n")
    root = tmp_path / "root"
    bound = root / "host"
    proc = root / "proc"
    for where in (bound, proc):
        where.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(source), str(bound)], check=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
    assert mounts_under(root) == [str(bound), str(proc)]

    detach_all(mounts_under(root))

    assert mounts_under(root) == []
    assert not (bound / "precious").exists()
    assert (source / "precious").read_text() == "kept\n"
