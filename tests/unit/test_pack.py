"""bundler.pack: a deterministic tar stream in multi-threaded zstd, written via a .part file."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from bundler.pack import file_entries, hash_file, write_bundle
from installer import layout
from installer.errors import GpubundleError
from installer.manifest import FileEntry

HEAD = {layout.MANIFEST: b"{}\n", layout.MANIFEST_SIG: b"sig\n", layout.SIGNER_KEY: b"key\n"}
MTIME = 1_700_000_000


@pytest.fixture
def members(tmp_path: Path) -> list[tuple[str, Path]]:
    src = tmp_path / "src"
    src.mkdir()
    rng = os.urandom(300_000)
    files = {
        "repo/debs/b_1_amd64.deb": rng,
        "repo/Packages": b"Package: b\n" * 5000,
        "images/images.tar": rng[:1000] + b"\0" * 2_000_000,
        "z/" + "long-name-" * 20 + ".bin": b"long\n",
        "empty": b"",
    }
    out = []
    for i, (name, data) in enumerate(files.items()):
        path = src / f"f{i}"
        path.write_bytes(data)
        out.append((name, path))
    return out


def _members_of(bundle: Path) -> list[tarfile.TarInfo]:
    with bundle.open("rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh) as raw:
        data = raw.read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return tar.getmembers()


def test_same_inputs_give_identical_bytes_for_any_thread_count(
    tmp_path: Path, members: list[tuple[str, Path]]
) -> None:
    one = write_bundle(tmp_path / "a.tar.zst", HEAD, members, mtime=MTIME, threads=1, level=3)
    two = write_bundle(
        tmp_path / "b.tar.zst", HEAD, list(reversed(members)), mtime=MTIME, threads=2, level=3
    )
    assert one == two
    assert (tmp_path / "a.tar.zst").read_bytes() == (tmp_path / "b.tar.zst").read_bytes()
    assert one == hashlib.sha256((tmp_path / "a.tar.zst").read_bytes()).hexdigest()
    other = write_bundle(tmp_path / "c.tar.zst", HEAD, members, mtime=MTIME + 1, level=3)
    assert other != one
    assert not list(tmp_path.glob("*.part"))


def test_member_order_and_attributes(tmp_path: Path, members: list[tuple[str, Path]]) -> None:
    bundle = tmp_path / "b.tar.zst"
    write_bundle(bundle, HEAD, members, mtime=MTIME, level=1)
    infos = _members_of(bundle)
    names = [info.name for info in infos]
    assert names[:3] == list(layout.HEAD_MEMBERS)
    assert names[3:] == sorted(name for name, _ in members)
    for info in infos:
        assert info.isreg()
        assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "", "")
        assert (info.mode, info.mtime) == (0o644, MTIME)
    sizes = {info.name: info.size for info in infos}
    assert all(sizes[name] == path.stat().st_size for name, path in members)


def test_gnu_tar_and_zstd_read_the_bundle(tmp_path: Path, members: list[tuple[str, Path]]) -> None:
    if shutil.which("zstd") is None or shutil.which("tar") is None:
        pytest.skip("zstd or tar not installed")
    bundle = tmp_path / "b.tar.zst"
    write_bundle(bundle, HEAD, members, mtime=MTIME, level=3)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        f"zstd -dc {bundle} | tar -xf - -C {out}", shell=True, check=True, capture_output=True
    )
    for name, path in members:
        assert (out / name).read_bytes() == path.read_bytes()


def test_progress_counts_every_content_byte(
    tmp_path: Path, members: list[tuple[str, Path]]
) -> None:
    seen: list[int] = []
    write_bundle(tmp_path / "b.tar.zst", HEAD, members, mtime=MTIME, level=1, progress=seen.append)
    total = sum(p.stat().st_size for _, p in members)
    assert sum(seen) == total


def test_hash_file_and_file_entries(tmp_path: Path, members: list[tuple[str, Path]]) -> None:
    name, path = members[0]
    data = path.read_bytes()
    assert hash_file(path) == (len(data), hashlib.sha256(data).hexdigest())
    entries = file_entries(members)
    assert [e.path for e in entries] == sorted(n for n, _ in members)
    assert FileEntry(name, len(data), hashlib.sha256(data).hexdigest()) in entries


@pytest.mark.parametrize("bad", ["/abs", "a/../b", "./a", "a//b", "a/", "", "manifest.json", "dup"])
def test_bad_member_names_are_refused(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    members = [("dup", path), (bad, path)]
    with pytest.raises(GpubundleError):
        write_bundle(tmp_path / "b.tar.zst", HEAD, members, mtime=MTIME)
    assert not (tmp_path / "b.tar.zst").exists()


def test_head_must_be_exactly_the_layout_head(tmp_path: Path) -> None:
    with pytest.raises(GpubundleError, match="bundle head"):
        write_bundle(tmp_path / "b.tar.zst", {layout.MANIFEST: b"{}"}, [], mtime=MTIME)


def test_a_file_that_changes_size_fails_and_leaves_nothing(tmp_path: Path) -> None:
    # /proc files report size 0 but have content: exactly a file that "grew" while packing.
    out = tmp_path / "b.tar.zst"
    with pytest.raises(GpubundleError, match="changed size"):
        write_bundle(out, HEAD, [("status", Path("/proc/self/status"))], mtime=MTIME)
    assert not out.exists()
    assert not out.with_name(out.name + ".part").exists()


def test_unwritable_output_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GpubundleError, match="cannot write"):
        write_bundle(tmp_path / "missing-dir" / "b.tar.zst", HEAD, [], mtime=MTIME)
