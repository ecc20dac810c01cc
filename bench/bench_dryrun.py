"""`gpubundle build --dry-run` end to end, against apt's own warm `--print-uris`.

Ours: the whole `gpubundle build --distro ubuntu22.04 --dry-run --json` process, warm
(its cache already holds the verified indices and their parsed offsets), with NVIDIA's
real signed metadata served on loopback as `--mirror nvidia=URL` (verified with the key
shipped in manifests/keys) and the real Ubuntu archive for the rest: it still fetches
and verifies every InRelease, as a build must.
apt: `apt-get --print-uris install nvidia-container-toolkit` in a private apt root whose
lists are the same index files, warm (its pkgcache.bin built by a first run).

Both run as installed: ours from byte-compiled modules (pip and pipx compile them at
install; a checkout under PYTHONDONTWRITEBYTECODE=1 would otherwise recompile ~45 modules
per run, ~0.2 s that no installed copy pays), apt from its built binary cache.

Goal: ratio <= 1.0x. Medians of RUNS whole processes each, interleaved so machine load
hits both alike. Prints PASS/MISS; exits non-zero only on a crash.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.aptoracle import (  # noqa: E402
    distro_index_files,
    nvidia_index_file,
    prepare_apt_root,
)
from tests.support.httpserver import serve_directory  # noqa: E402
from tests.support.nvidia_fixtures import required_dir  # noqa: E402

DISTRO = "ubuntu22.04"
ROOT = "nvidia-container-toolkit"
RUNS = 5


def _timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=True, env=env, cwd=REPO)
    return time.perf_counter() - start, proc.stdout


def main() -> int:
    # What `pip install` does: byte-compile the packages (written even under
    # PYTHONDONTWRITEBYTECODE, which only stops the interpreter writing them on import).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "bundler", "installer"],
        check=True, cwd=REPO, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    files = [*distro_index_files(DISTRO), nvidia_index_file()]
    with (
        tempfile.TemporaryDirectory(prefix="bench-dryrun-") as tmp,
        serve_directory(required_dir()) as nvidia,
    ):
        ours = [
            sys.executable, "-m", "bundler", "build", "--distro", DISTRO,
            "--mirror", f"nvidia={nvidia}/stable/deb/amd64",
            "--dry-run", "--json", "--cache-dir", str(Path(tmp) / "cache"),
        ]  # fmt: skip
        apt = prepare_apt_root(files, Path(tmp) / "apt")
        apt_argv = [
            "apt-get", *apt.options, "--print-uris", "-y", "--no-install-recommends", "install", ROOT,
        ]  # fmt: skip
        apt_env = {**apt.env, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        _, first = _timed(ours)  # warm both: our cache, apt's pkgcache.bin
        _timed(apt_argv, apt_env)
        ours_times, apt_times = [], []
        for _ in range(RUNS):
            ours_times.append(_timed(ours)[0])
            seconds, uris = _timed(apt_argv, apt_env)
            apt_times.append(seconds)
    plan = json.loads(first)
    ours_median, apt_median = statistics.median(ours_times), statistics.median(apt_times)
    ratio = ours_median / apt_median
    apt_uris = sum(1 for line in uris.splitlines() if line.startswith("'"))
    print(f"plan: {len(plan['packages'])} packages; apt prints {apt_uris} URIs")
    print(f"gpubundle build --dry-run (warm):  median {ours_median:.3f} s of {RUNS}")
    print(f"apt-get --print-uris (warm):       median {apt_median:.3f} s of {RUNS}")
    print(f"ratio ours/apt: {ratio:.2f}x (goal <= 1.0x) {'PASS' if ratio <= 1.0 else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
