"""A fixture /proc tree: PID 1 and the given processes, with comm, stat and cmdline, as
the engine and daemon code reads them."""

from __future__ import annotations

from pathlib import Path


def fake_proc(tmp_path: Path, comm1: str, procs: dict[int, tuple[str, str, list[str]]]) -> Path:
    """A /proc under ``tmp_path``: PID 1 is ``comm1``; ``procs`` maps pid to (comm, state, argv)."""
    root = tmp_path / "proc"
    (root / "1").mkdir(parents=True)
    (root / "1" / "comm").write_text(comm1 + "\n")
    (root / "1" / "stat").write_text(f"1 ({comm1}) S 0\n")
    (root / "1" / "cmdline").write_bytes(b"")
    (root / "self").mkdir()
    for pid, (comm, state, argv) in procs.items():
        entry = root / str(pid)
        entry.mkdir()
        (entry / "comm").write_text(comm + "\n")
        (entry / "stat").write_text(f"{pid} ({comm}) {state} 1\n")
        (entry / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    return root
