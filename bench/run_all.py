"""Run every benchmark under bench/ in turn and print their figures.

Each benchmark measures gpubundle against a baseline in the same run (apt,
tar | zstd, zstd -d | sha256sum) and prints ratios with PASS/MISS per goal;
see each script's docstring. ``--quick`` uses smaller data where a script
accepts ``--size-mb``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SCRIPTS = ("bench_resolve.py", "bench_dryrun.py", "bench_pack.py", "bench_verify.py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="use 256 MB of data, not 2 GB")
    args = parser.parse_args()
    failed = []
    for name in SCRIPTS:
        script = BENCH_DIR / name
        if not script.exists():
            print(f"== {name}: not present", flush=True)
            continue
        argv = [sys.executable, str(script)]
        if args.quick and "--size-mb" in script.read_text():
            argv += ["--size-mb", "256"]
        print(f"== {name}", flush=True)
        if subprocess.run(argv, check=False).returncode != 0:
            failed.append(name)
    if failed:
        print("crashed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
