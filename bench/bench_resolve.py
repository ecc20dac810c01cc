"""Resolution speed on the real Ubuntu 22.04 indices, against apt itself.

(a) cold: a fresh Python process reads the uncompressed Packages files,
    indexes them and resolves nvidia-container-toolkit + docker.io; compared
    with ``apt-get -s install`` of the same roots over the same lists after
    deleting apt's binary caches (so apt parses the lists too). Goal: ≤ 1.0×.
(b) warm: the indices already parsed, one resolve() call. Goal: ≤ 0.5 s.

Medians of a few runs. Prints PASS/MISS per goal; exits non-zero only on a crash.
Indices come from the apt oracle's verified cache (downloaded on first use).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bundler.resolver import resolve  # noqa: E402
from tests.support.aptoracle import (  # noqa: E402
    distro_index_files,
    nvidia_index_file,
    parse_simulation,
    prepare_apt_root,
)

DISTRO = "ubuntu22.04"
ROOTS = ("nvidia-container-toolkit", "docker.io")
RUNS = 3
WARM_RUNS = 5

_COLD = """
import sys, time
start = time.perf_counter()
from bundler.index import PackageIndex
from bundler.resolver import resolve
specs = [line.split("\\t") for line in sys.stdin.read().splitlines()]
with_data = [(s, b, open(p, "rb").read()) for s, b, p in specs]
indices = [PackageIndex(s, b, d, "amd64") for s, b, d in with_data]
result = resolve(indices, sys.argv[1:], arch="amd64")
print(time.perf_counter() - start, len(result.packages))
"""


def _cold_ours(spec_lines: str) -> tuple[float, float, int]:
    """(seconds inside the process, seconds of the whole process, packages)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _COLD, *ROOTS],
        input=spec_lines,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    total = time.perf_counter() - start
    inner, count = proc.stdout.split()
    return float(inner), total, int(count)


def main() -> int:
    files = [*distro_index_files(DISTRO), nvidia_index_file()]
    size = sum(f.path.stat().st_size for f in files) / 1e6
    print(f"indices: {DISTRO} ({len(files) - 1} Packages files) + NVIDIA, {size:.0f} MB")
    spec_lines = "\n".join(f"{f.source_id}\t{f.base_url}\t{f.path}" for f in files)

    with tempfile.TemporaryDirectory(prefix="bench-apt-") as tmp:
        apt = prepare_apt_root(files, Path(tmp))
        apt_times: list[float] = []
        apt_set: set[tuple[str, str]] = set()
        for _ in range(RUNS):
            apt.fresh_cache()
            start = time.perf_counter()
            apt_set = parse_simulation(apt.simulate_install(ROOTS))
            apt_times.append(time.perf_counter() - start)

    cold = [_cold_ours(spec_lines) for _ in range(RUNS)]
    inner = statistics.median(c[0] for c in cold)
    process = statistics.median(c[1] for c in cold)
    apt_median = statistics.median(apt_times)
    ratio = process / apt_median

    indices = [f.load() for f in files]
    resolve(indices, ROOTS, arch="amd64")  # parse the touched stanzas once
    warm_times: list[float] = []
    ours_set: set[tuple[str, str]] = set()
    for _ in range(WARM_RUNS):
        start = time.perf_counter()
        ours_set = resolve(indices, ROOTS, arch="amd64").pairs()
        warm_times.append(time.perf_counter() - start)
    warm = statistics.median(warm_times)

    print(f"roots: {' '.join(ROOTS)}; packages: ours {len(ours_set)}, apt {len(apt_set)}")
    print(f"same set as apt: {ours_set == apt_set}")
    print(f"(a) cold apt-get -s, fresh pkgcache: median {apt_median:.3f} s of {RUNS}")
    print(f"(a) cold resolve, fresh process:     median {process:.3f} s of {RUNS}")
    print(f"    of which read+index+resolve:     median {inner:.3f} s")
    print(f"(a) ratio ours/apt: {ratio:.2f}x (goal <= 1.0x) {'PASS' if ratio <= 1.0 else 'MISS'}")
    print(
        f"(b) warm resolve: median {warm:.4f} s of {WARM_RUNS} (goal <= 0.5 s) "
        f"{'PASS' if warm <= 0.5 else 'MISS'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
