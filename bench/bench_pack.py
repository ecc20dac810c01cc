"""Throughput and peak memory of bundler.pack.write_bundle against ``tar | zstd -T0``.

    python3 bench/bench_pack.py                 # 2048 MB of data: the RSS goal's size
    python3 bench/bench_pack.py --size-mb 256   # a quicker run

The data (under .cache/bench/, reused) is half incompressible (like .debs)
and half text-like (like image layers). Each side runs in its own child
process; its peak RSS comes from wait4(). Goals: write_bundle ≥ 0.9× the
throughput of ``tar -cf - | zstd -T0 -LEVEL``, peak RSS ≤ 200 MB. Prints
PASS/MISS per goal; exits non-zero only when something crashes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bundler.pack import DEFAULT_LEVEL, write_bundle  # noqa: E402
from installer import layout  # noqa: E402

BENCH_DIR = ROOT / ".cache" / "bench"
FILE_MB = 64
RSS_GOAL_MB = 200.0
SPEED_GOAL = 0.9
_WORDS = (
    b"nvidia container toolkit runtime library libc6 amd64 usr lib x86_64-linux-gnu "
    b"Package Version Depends cuda 12.4 driver docker containerd layer sha256 json"
).split()


def _text_pool(rng: random.Random, size: int) -> bytes:
    seps = (b" ", b"\n", b"/", b"_")
    chunks = [
        b"".join(rng.choice(_WORDS) + rng.choice(seps) for _ in range(1 << 17))
        for _ in range(size // (1 << 19) + 1)
    ]
    return b"".join(chunks)[:size]


def make_data(size_mb: int) -> Path:
    """``size_mb`` MB of bench files, made once; half random, half text-like."""
    data = BENCH_DIR / f"data-{size_mb}mb"
    done = data / ".complete"
    if done.exists():
        return data
    data.mkdir(parents=True, exist_ok=True)
    rng = random.Random(size_mb)
    pool = _text_pool(rng, 32 << 20)
    count = max(1, size_mb // FILE_MB)
    per_file = (size_mb << 20) // count
    for i in range(count):
        with (data / f"{'debs' if i % 2 == 0 else 'layers'}-{i:04d}.bin").open("wb") as fh:
            left = per_file
            while left:
                n = min(1 << 20, left)
                if i % 2 == 0:
                    fh.write(os.urandom(n))
                else:
                    start = rng.randrange(0, len(pool) - n)
                    fh.write(pool[start : start + n])
                left -= n
    done.touch()
    return data


def members_of(data: Path) -> list[tuple[str, Path]]:
    return sorted((f"payload/{p.name}", p) for p in data.iterdir() if p.suffix == ".bin")


def run_child(argv: list[str]) -> tuple[float, float, str]:
    """Run ``argv``; return (wall seconds, peak RSS MB of the child tree's largest, stdout)."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"crash: {argv} exited with {proc.returncode}")
    return elapsed, usage.ru_maxrss / 1024, out


def child_pack(data: Path, output: Path, level: int) -> None:
    head = {name: b"bench\n" for name in layout.HEAD_MEMBERS}
    start = time.monotonic()
    digest = write_bundle(output, head, members_of(data), mtime=1_700_000_000, level=level)
    print(json.dumps({"seconds": time.monotonic() - start, "sha256": digest}))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--level", type=int, default=DEFAULT_LEVEL)
    parser.add_argument("--child", nargs=2, metavar=("DATA", "OUTPUT"), help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        make_data(args.size_mb)
        return 0
    if args.child:
        child_pack(Path(args.child[0]), Path(args.child[1]), args.level)
        return 0
    # Prepared in a child: a child's peak RSS includes its parent's at fork time.
    run_child([sys.executable, __file__, "--prepare", "--size-mb", str(args.size_mb)])
    data = make_data(args.size_mb)
    total_mb = sum(p.stat().st_size for _, p in members_of(data)) / 1e6
    out = BENCH_DIR / "out"
    out.mkdir(parents=True, exist_ok=True)
    _, ours_rss, report = run_child(
        [
            sys.executable,
            __file__,
            "--child",
            str(data),
            str(out / "ours.tar.zst"),
            "--level",
            str(args.level),
        ]
    )
    ours = json.loads(report)["seconds"]
    files = " ".join(f"'{p.name}'" for _, p in members_of(data))
    shell = (
        f"tar -cf - -C '{data}' {files} | zstd -q -T0 -{args.level} -o '{out / 'ref.tar.zst'}' -f"
    )
    ref, ref_rss, _ = run_child(["sh", "-c", shell])
    ratio = ref / ours
    ours_size = (out / "ours.tar.zst").stat().st_size / 1e6
    ref_size = (out / "ref.tar.zst").stat().st_size / 1e6
    print(
        f"data: {total_mb:.0f} MB in {len(members_of(data))} files, zstd level {args.level}, {os.cpu_count()} CPUs"
    )
    print(
        f"write_bundle:       {total_mb / ours:7.1f} MB/s  ({ours:.1f} s, {ours_size:.0f} MB out)"
    )
    print(
        f"tar | zstd -T0:     {total_mb / ref:7.1f} MB/s  ({ref:.1f} s, {ref_size:.0f} MB out, "
        f"RSS {ref_rss:.0f} MB)"
    )
    print(
        f"{verdict(ratio >= SPEED_GOAL)} throughput {ratio:.2f}x of tar|zstd (goal >= {SPEED_GOAL}x)"
    )
    print(
        f"{verdict(ours_rss <= RSS_GOAL_MB)} peak RSS {ours_rss:.0f} MB for {total_mb:.0f} MB (goal <= {RSS_GOAL_MB:.0f} MB)"
    )
    for name in ("ours.tar.zst", "ref.tar.zst"):
        (out / name).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
