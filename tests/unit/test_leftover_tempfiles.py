"""Temporary files of killed runs are recognisable and swept by the next run; a live
run's are never touched. Processes are killed for real (SIGKILL), not simulated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bundler.zipapp import build_zipapp
from installer import bootstrap
from installer.atomicfile import leftovers, write_atomically
from installer.cli import main
from installer.record import save_record
from tests.support.records import installed_record
from tests.support.wheels import probe_wheel

ROOT = Path(__file__).resolve().parents[2]


def killed_write(target: Path) -> None:
    """A real process SIGKILLed inside write_atomically, after the data, before the rename."""
    code = (
        "import os, sys; from pathlib import Path; from installer import atomicfile;"
        "os.replace = lambda *a: os.kill(os.getpid(), 9);"
        "atomicfile.write_atomically(Path(sys.argv[1]), b'new')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert proc.returncode == -9


def test_a_killed_write_leaves_a_recognisable_file_the_next_write_sweeps(tmp_path: Path) -> None:
    target = tmp_path / "gpubundle.list"
    target.write_bytes(b"old")
    killed_write(target)
    [left] = leftovers(target)
    assert left.name.startswith(".gpubundle.list.gpubundle-tmp-")
    assert target.read_bytes() == b"old"
    old_style = tmp_path / ".gpubundle.list.ab12cd_3.tmp"  # gpubundle 0.x's names
    not_ours = tmp_path / ".gpubundle.list.swp"
    old_style.write_bytes(b"")
    not_ours.write_bytes(b"")
    write_atomically(target, b"new")
    assert leftovers(target) == [] and not old_style.exists() and not_ours.exists()
    assert target.read_bytes() == b"new"


def test_uninstall_sweeps_a_killed_record_write_even_with_nothing_installed(
    tmp_path: Path,
) -> None:
    record = tmp_path / "install-record.json"
    killed_write(record)
    assert leftovers(record)
    env = {"GPUBUNDLE_RECORD": str(record), "GPUBUNDLE_LOCK": str(tmp_path / "lock")}
    result = CliRunner().invoke(main, ["uninstall", "--yes", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["nothing_to_do"] is True
    assert leftovers(record) == []


def test_the_next_save_sweeps_a_killed_record_write(tmp_path: Path) -> None:
    record = tmp_path / "install-record.json"
    save_record(installed_record(), record)
    killed_write(record)
    save_record(installed_record(), record)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "install-record.backup.json",
        "install-record.json",
    ]


def test_pylib_dirs_of_dead_runs_go_and_a_live_runs_stay(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead_dir = tmp_path / f"gpubundle-pylib-{dead.pid}-abc123_x"
        live_dir = tmp_path / f"gpubundle-pylib-{live.pid}-def456_y"
        mine = tmp_path / f"gpubundle-pylib-{os.getpid()}-ghi789_z"
        unrelated = tmp_path / "gpubundle-pylib-notapid"
        for d in (dead_dir, live_dir, mine, unrelated):
            (d / "zstandard").mkdir(parents=True)
        assert bootstrap.sweep_dead(tmp_path) == [dead_dir]
        assert not dead_dir.exists()
        assert live_dir.exists() and mine.exists() and unrelated.exists()
    finally:
        live.kill()
        live.wait()


@pytest.fixture(scope="module")
def pyz_with_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("pyz")
    return build_zipapp(tmp / "gpubundle-installer.pyz", [probe_wheel(tmp / "wheels")])


def test_a_killed_zipapp_run_leaves_its_pylib_for_the_next_run_to_remove(
    tmp_path: Path, pyz_with_wheel: Path
) -> None:
    env = {"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    code = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); import installer.bootstrap as b;"
        "b.activate(sys.argv[1]); os.kill(os.getpid(), 9)"
    )
    killed = subprocess.Popen([sys.executable, "-I", "-c", code, str(pyz_with_wheel)], env=env)
    assert killed.wait() == -9
    [left] = list(tmp_path.glob("gpubundle-pylib-*"))
    assert left.name.startswith(f"gpubundle-pylib-{killed.pid}-")
    again = subprocess.run(
        [sys.executable, "-I", str(pyz_with_wheel), "--help"],
        env=env,
        check=False,
        capture_output=True,
    )
    assert again.returncode == 0, again.stderr
    assert list(tmp_path.glob("gpubundle-pylib-*")) == []


def test_a_pylib_whose_lock_is_held_stays_whatever_its_pid_says(tmp_path: Path) -> None:
    """A run in another pid namespace: its pid means nothing here, its lock does."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    held = tmp_path / f"gpubundle-pylib-{gone.pid}-held1234"
    freed = tmp_path / f"gpubundle-pylib-{os.getpid() + 10**7}-free5678"
    for d in (held, freed):
        d.mkdir()
        (d / ".lock").write_text("")
    code = (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY);"
        "fcntl.flock(fd, fcntl.LOCK_SH); print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(held / ".lock")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        assert bootstrap.sweep_dead(tmp_path) == [freed]
        assert held.is_dir()
    finally:
        holder.kill()
        holder.wait()
    assert bootstrap.sweep_dead(tmp_path) == [held]
