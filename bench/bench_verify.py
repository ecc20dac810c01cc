"""Throughput and peak memory of installer.bundle_reader.verify_bundle against ``zstd -dc | sha256sum``.

    python3 bench/bench_verify.py                 # a 2048 MB bundle: the RSS goal's size
    python3 bench/bench_verify.py --size-mb 256   # a quicker run

Builds (once, under .cache/bench/) a real signed bundle from bench_pack's
data, then times verify_bundle with extraction in a child process (peak RSS
from wait4()) and the baseline pipe. Goals: ≥ 0.9× the baseline's
throughput, peak RSS ≤ 200 MB. Prints PASS/MISS; exits non-zero only on a crash.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pack import BENCH_DIR, RSS_GOAL_MB, SPEED_GOAL, make_data, members_of, run_child, verdict  # noqa: E402

from bundler.pack import file_entries, write_bundle  # noqa: E402
from bundler.signing import Signer  # noqa: E402
from installer import layout  # noqa: E402
from installer.bundle_reader import verify_bundle  # noqa: E402
from installer.manifest import Manifest  # noqa: E402
from tests.support.testkeys import make_key  # noqa: E402

EPOCH = 1_700_000_000


def make_bundle(size_mb: int, level: int) -> tuple[Path, str]:
    """A signed bundle of the bench data and its signer's fingerprint, made once."""
    bundle = BENCH_DIR / f"bundle-{size_mb}mb-l{level}.tar.zst"
    fpr_file = bundle.with_suffix(".fpr")
    if bundle.exists() and fpr_file.exists():
        return bundle, fpr_file.read_text().strip()
    key = make_key(BENCH_DIR / f"gnupg-{size_mb}mb-l{level}")
    members = members_of(make_data(size_mb))
    manifest = Manifest(
        format=layout.FORMAT_VERSION,
        created_by="bench/bench_verify.py",
        source_date_epoch=EPOCH,
        distro="ubuntu22.04",
        arch="amd64",
        python="3.10",
        toolkit_version="0",
        signer_fingerprint=key.fingerprint,
        requested=(),
        sources=(),
        packages=(),
        images=(),
    )
    manifest = dataclasses.replace(manifest, files=file_entries(members))
    signer = Signer(key.fingerprint, key.gnupghome)
    raw = manifest.to_json()
    head = {
        layout.MANIFEST: raw,
        layout.MANIFEST_SIG: signer.sign_detached(raw, timestamp=EPOCH),
        layout.SIGNER_KEY: signer.public_key(),
    }
    write_bundle(bundle, head, members, mtime=EPOCH, level=level)
    fpr_file.write_text(key.fingerprint + "\n")
    return bundle, key.fingerprint


def child_verify(bundle: Path, fingerprint: str, dest: Path) -> None:
    start = time.monotonic()
    manifest = verify_bundle(bundle, [fingerprint], extract_to=dest if dest.name else None)
    print(json.dumps({"seconds": time.monotonic() - start, "files": len(manifest.files)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--level", type=int, default=10)
    parser.add_argument(
        "--child", nargs=3, metavar=("BUNDLE", "FPR", "DEST"), help=argparse.SUPPRESS
    )
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        make_bundle(args.size_mb, args.level)
        return 0
    if args.child:
        child_verify(Path(args.child[0]), args.child[1], Path(args.child[2]))
        return 0
    # Prepared in a child: a child's peak RSS includes its parent's at fork time.
    prepare = [sys.executable, __file__, "--prepare", "--size-mb", str(args.size_mb)]
    run_child([*prepare, "--level", str(args.level)])
    bundle, fingerprint = make_bundle(args.size_mb, args.level)
    dest = BENCH_DIR / "out" / "extracted"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(dest, ignore_errors=True)
    _, rss, report = run_child(
        [sys.executable, __file__, "--child", str(bundle), fingerprint, str(dest)]
    )
    ours = json.loads(report)["seconds"]
    total_mb = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) / 1e6
    shutil.rmtree(dest)
    ref, ref_rss, _ = run_child(["sh", "-c", f"zstd -dc '{bundle}' | sha256sum >/dev/null"])
    ratio = ref / ours
    _, _, report = run_child([sys.executable, __file__, "--child", str(bundle), fingerprint, ""])
    verify_only = json.loads(report)["seconds"]
    dest.mkdir()
    untar, _, _ = run_child(["sh", "-c", f"zstd -dc '{bundle}' | tar -xf - -C '{dest}'"])
    shutil.rmtree(dest)
    print(f"bundle: {bundle.stat().st_size / 1e6:.0f} MB compressed, {total_mb:.0f} MB of content")
    print(f"verify_bundle + extract: {total_mb / ours:7.1f} MB/s  ({ours:.1f} s)")
    print(
        f"zstd -dc | sha256sum:    {total_mb / ref:7.1f} MB/s  ({ref:.1f} s, RSS {ref_rss:.0f} MB)"
    )
    print(
        f"{verdict(ratio >= SPEED_GOAL)} throughput {ratio:.2f}x of zstd|sha256sum (goal >= {SPEED_GOAL}x)"
    )
    print(f"{verdict(rss <= RSS_GOAL_MB)} peak RSS {rss:.0f} MB (goal <= {RSS_GOAL_MB:.0f} MB)")
    print(f"verify_bundle only:      {total_mb / verify_only:7.1f} MB/s  (no extraction; info)")
    print(f"zstd -dc | tar -x:       {total_mb / untar:7.1f} MB/s  (extraction, no check; info)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
