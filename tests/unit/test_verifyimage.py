"""The verification image: deterministic archive, docker-save structure, the rootfs it holds.

Small .debs are built here with the real ``dpkg-deb --build``; the image is read back
with tarfile and checked against what ``docker load`` relies on.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from bundler import ociarchive
from bundler.ociarchive import Entry, ImageSpec, entries_from_dir, layer_tar
from bundler.verifyimage import (
    SHELL_APPLETS,
    Tree,
    build_verification_image,
    check_tree,
    deb_entries,
    merge,
    resolve_path,
    usrmerge,
)
from installer.errors import GpubundleError
from tests.support.debs import BUSYBOX, LIBC, make_deb
from tests.support.docker_env import archive_ids

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")

EPOCH = 1_700_000_000
TAG = "gpubundle/verify:test-amd64"


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    where = tmp_path_factory.mktemp("debs")
    busybox = make_deb(where, "busybox", BUSYBOX, hardlinks={"bin/busybox-hard": "bin/busybox"})
    return [make_deb(where, "libc6", LIBC), busybox]


def build(debs: list[Path], out: Path, epoch: int = EPOCH) -> Any:
    return build_verification_image(debs, out, tag=TAG, arch="amd64", source_date_epoch=epoch)


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def layer_members(archive: Path) -> dict[str, tarfile.TarInfo]:
    files = members(archive)
    manifest = json.loads(files["manifest.json"])[0]
    with tarfile.open(fileobj=io.BytesIO(files[manifest["Layers"][0]])) as tar:
        return {m.name.rstrip("/"): m for m in tar}


def test_same_inputs_give_the_same_bytes(debs: list[Path], tmp_path: Path) -> None:
    one = build(debs, tmp_path / "one.tar")
    two = build(list(reversed(debs)), tmp_path / "two.tar")
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    assert one == two
    assert one.packages == (("busybox", "1.0-1"), ("libc6", "1.0-1"))
    assert one.size == (tmp_path / "one.tar").stat().st_size
    other = build(debs, tmp_path / "three.tar", epoch=EPOCH + 1)
    assert other.image_id != one.image_id


def test_archive_has_what_docker_load_reads(debs: list[Path], tmp_path: Path) -> None:
    info = build(debs, tmp_path / "image.tar")
    assert (tmp_path / "image.tar").stat().st_mode & 0o777 == 0o644
    files = members(tmp_path / "image.tar")
    [entry] = json.loads(files["manifest.json"])
    assert entry["RepoTags"] == [TAG]
    config_bytes, layer = files[entry["Config"]], files[entry["Layers"][0]]
    assert "sha256:" + hashlib.sha256(config_bytes).hexdigest() == info.image_id
    assert info.pin().image_id == info.image_id and info.pin().ref == TAG
    config = json.loads(config_bytes)
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer_digest]}
    assert entry["Layers"][0] == "blobs/sha256/" + layer_digest.removeprefix("sha256:")
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert config["created"] == "2023-11-14T22:13:20Z"
    env = config["config"]["Env"]
    assert (
        "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in env and "NVIDIA_VISIBLE_DEVICES=all" in env
    )
    path = next(e for e in env if e.startswith("PATH="))
    assert "/usr/local/nvidia/bin" in path and "/usr/bin" in path
    assert any(e.startswith("LD_LIBRARY_PATH=") and "/usr/local/nvidia/lib64" in e for e in env)
    assert config["config"]["Cmd"] == ["nvidia-smi", "-L"]
    assert config["config"]["Labels"]["io.gpubundle.packages"] == "busybox=1.0-1, libc6=1.0-1"
    # the OCI layout points at the same config and layer
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    [desc] = json.loads(files["index.json"])["manifests"]
    assert desc["annotations"]["io.containerd.image.name"] == "docker.io/" + TAG
    manifest_bytes = files["blobs/sha256/" + desc["digest"].removeprefix("sha256:")]
    assert desc["size"] == len(manifest_bytes)
    manifest = json.loads(manifest_bytes)
    assert manifest["config"]["digest"] == info.image_id
    # the IDs the two image stores show once it is loaded (test_verifyimage_docker)
    assert archive_ids(tmp_path / "image.tar") == (info.image_id, desc["digest"])
    assert manifest["layers"][0] == {
        "mediaType": ociarchive.OCI_LAYER,
        "digest": layer_digest,
        "size": len(layer),
    }
    with tarfile.open(tmp_path / "image.tar") as tar:
        names = tar.getnames()
        assert names[:2] == ["blobs", "blobs/sha256"]
        assert names[2:] == sorted(files)
        assert all(m.mtime == EPOCH and m.uid == 0 and m.gid == 0 for m in tar)


def test_rootfs_is_merged_usr_with_a_shell_and_the_loader(debs: list[Path], tmp_path: Path) -> None:
    build(debs, tmp_path / "image.tar")
    layer = layer_members(tmp_path / "image.tar")
    for alias in ("bin", "sbin", "lib", "lib64"):
        assert layer[alias].issym() and layer[alias].linkname == f"usr/{alias}"
    assert "lib32" not in layer  # only aliases the packages use, besides bin, sbin, lib
    assert layer["usr/bin/busybox"].isfile() and layer["usr/bin/busybox"].mode == 0o755
    assert layer["usr/bin/busybox-hard"].isfile()  # a hard link became a copy
    for applet in SHELL_APPLETS:
        assert layer[f"usr/bin/{applet}"].linkname == "busybox"
    assert layer["usr/lib64/ld-linux-x86-64.so.2"].linkname.endswith("ld-linux-x86-64.so.2")
    assert layer["usr/lib/x86_64-linux-gnu/libc.so.6"].isfile()
    assert layer["tmp"].isdir() and layer["tmp"].mode == 0o1777
    assert layer["etc/ld.so.conf"].isfile()
    names = list(layer)
    for name in names:  # every parent comes before its children
        parent = name.rsplit("/", 1)[0]
        assert "/" not in name or names.index(parent) < names.index(name)
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == EPOCH for m in layer.values())


def test_packages_built_for_merged_usr_get_the_links_too(tmp_path: Path) -> None:
    """Ubuntu 24.04's libc6 ships usr/lib64 and no lib64: /lib64 must still resolve."""
    merged = {f"usr/{name}": content for name, content in LIBC.items() if name.startswith("lib")}
    merged["usr/lib64/ld-linux-x86-64.so.2"] = "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    libc = make_deb(tmp_path, "libc6", merged)
    busybox = make_deb(tmp_path, "busybox", {"usr/bin/busybox": b"\x7fELF busybox"})
    build([libc, busybox], tmp_path / "image.tar")
    layer = layer_members(tmp_path / "image.tar")
    assert layer["lib64"].linkname == "usr/lib64"
    assert layer["usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"].isfile()


def test_a_set_without_glibc_is_refused(debs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(GpubundleError) as caught:
        build(debs[1:], tmp_path / "image.tar")
    assert caught.value.details == [
        "/lib64/ld-linux-x86-64.so.2 (the glibc loader nvidia-smi needs)"
    ]
    assert not (tmp_path / "image.tar").exists()


def test_other_architectures_are_refused(tmp_path: Path) -> None:
    deb = make_deb(tmp_path, "busybox", BUSYBOX, arch="arm64")
    with pytest.raises(GpubundleError, match="another architecture") as caught:
        build([deb], tmp_path / "image.tar")
    assert caught.value.details == ["busybox 1.0-1 is arm64"]


def test_a_set_without_a_shell_is_refused(debs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(GpubundleError, match="neither busybox nor dash"):
        build(debs[:1], tmp_path / "image.tar")


def tree_of(*entries: Entry) -> Tree:
    tree: Tree = {}
    merge(tree, entries, "test")
    return tree


def test_conflicting_files_are_refused_identical_ones_merge() -> None:
    tree = tree_of(Entry("usr", "dir", 0o755), Entry("usr/bin/x", "file", 0o755, b"a"))
    merge(tree, [Entry("usr", "dir", 0o700), Entry("usr/bin/x", "file", 0o755, b"a")], "b")
    with pytest.raises(GpubundleError, match="differs between the packages test and c"):
        merge(tree, [Entry("usr/bin/x", "file", 0o755, b"other")], "c")
    # /bin/x and /usr/bin/x collide once /bin moves under /usr
    tree["bin/x"] = (Entry("bin/x", "file", 0o755, b"b"), "d")
    with pytest.raises(GpubundleError, match="/usr/bin/x differs"):
        usrmerge(tree)


def test_resolve_path_follows_links_like_the_kernel() -> None:
    tree = usrmerge(
        tree_of(
            Entry("lib/x", "dir", 0o755),
            Entry("lib/x/ld.so", "file", 0o755, b"ld"),
            Entry("lib64/ld.so", "symlink", 0o777, target="/lib/x/ld.so"),
            Entry("lib64/rel", "symlink", 0o777, target="../lib/x/ld.so"),
            Entry("lib64/loop", "symlink", 0o777, target="loop"),
            Entry("lib64/dangling", "symlink", 0o777, target="/nowhere"),
        )
    )
    loader = resolve_path(tree, "/lib64/ld.so")
    assert loader is not None and loader.data == b"ld"
    assert resolve_path(tree, "/lib64/rel") == loader
    assert resolve_path(tree, "/bin/../lib/./x/ld.so") == loader
    assert resolve_path(tree, "/lib64/loop") is None
    assert resolve_path(tree, "/lib64/dangling") is None
    assert resolve_path(tree, "/lib/x/ld.so/more") is None
    with pytest.raises(GpubundleError, match="lack files") as caught:
        check_tree(tree, "amd64")
    assert len(caught.value.details) == 2


def spec(tag: str = TAG, arch: str = "amd64") -> ImageSpec:
    return ImageSpec(tag, arch, ("A=1",), ("true",), {}, "test")


def test_archive_members_refuse_digests_and_unknown_arches() -> None:
    with pytest.raises(GpubundleError, match="names a digest"):
        ociarchive.archive_members(spec("x@sha256:" + "0" * 64), b"", EPOCH)
    with pytest.raises(GpubundleError, match="riscv64"):
        ociarchive.archive_members(spec(arch="riscv64"), b"", EPOCH)
    config = json.loads(
        next(
            v
            for k, v in ociarchive.archive_members(spec(arch="arm64"), b"", EPOCH).items()
            if k.startswith("blobs/") and b'"rootfs"' in v
        )
    )
    assert (config["architecture"], config["variant"]) == ("arm64", "v8")


def test_a_rootfs_directory_gives_the_same_layer_as_its_entries(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "tool").write_bytes(b"tool")
    (root / "usr" / "bin" / "tool").chmod(0o755)
    (root / "bin").symlink_to("usr/bin")
    (root / "usr").chmod(0o755)
    (root / "usr" / "bin").chmod(0o755)
    entries = entries_from_dir(root)
    assert [e.path for e in entries] == ["bin", "usr", "usr/bin", "usr/bin/tool"]
    expected = [
        Entry("bin", "symlink", 0o777, target="usr/bin"),
        Entry("usr", "dir", 0o755),
        Entry("usr/bin", "dir", 0o755),
        Entry("usr/bin/tool", "file", 0o755, b"tool"),
    ]
    assert layer_tar(entries, EPOCH) == layer_tar(reversed(expected), EPOCH)
    with pytest.raises(ValueError, match="unique relative paths"):
        layer_tar([*expected, expected[0]], EPOCH)


def test_members_outside_the_root_are_refused() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("./usr/../../etc/passwd"), io.BytesIO())
    with pytest.raises(GpubundleError, match="outside its root"):
        deb_entries(buffer.getvalue(), "evil")
