"""Small, real, signed bundles (and their parts) for tests of any module.

Everything here is made with the real tools: ``dpkg-deb --build`` for the
.debs, ``bundler.localrepo`` for the repository metadata, ``bundler.signing``
for the signatures and ``bundler.pack.write_bundle`` for the bundle, so a
test bundle is exactly what ``gpubundle build`` would write for those inputs.

Why this exists beside the real build: the unit tier has no network, no archive and
no root, and ``gpubundle build`` needs the distro archive to resolve against. Tests
that can run the real build (the integration tier) use
``tests.support.installbundles.build_target_bundle``, the one bundle builder there;
this module is for everything that must stay offline and fast, and for bundles
tampered with member by member.

Typical uses::

    key = make_key(tmp_path / "gnupg")                       # tests.support.testkeys
    bundle = make_test_bundle(tmp_path, key)                   # two tiny .debs, a repo, images
    verify_bundle(bundle.path, [key.fingerprint], extract_to=tmp_path / "x")

    # a repository only (apt tests): debs/, Packages, Release, InRelease
    pins = write_repo(tmp_path / "repo", key, [DebSpec("hello-gpubundle")])

    # a split bundle: parts of at most 64 KiB and their signed index, in tmp_path / "split"
    split = split_test_bundle(bundle, key, tmp_path / "split", 64 * 1024)
    verify_bundle(split.index, [key.fingerprint])

    # tampering: ``mutate`` edits the list of raw tar members after signing
    make_test_bundle(tmp_path, key, mutate=flip_byte("repo/Packages"))
    make_test_bundle(tmp_path, key, mutate=add(symlink("repo/x", "/etc/passwd")))

The default images archive is a placeholder tar, not a loadable docker image;
pass ``files={layout.IMAGES_ARCHIVE: docker_save_bytes}`` for a real one.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from bundler.localrepo import repo_files
from bundler.pack import file_entries, hash_file, write_bundle
from bundler.signing import Signer
from bundler.split import SplitResult, write_split
from installer import layout
from installer.manifest import ImagePin, Manifest, PackagePin
from tests.support.testkeys import TestKey

EPOCH = 1_700_000_000
Member = tuple[tarfile.TarInfo, bytes]
Mutator = Callable[[list[Member]], None]


@dataclass(frozen=True)
class DebSpec:
    name: str
    version: str = "1.0-1"
    architecture: str = "amd64"
    depends: str = ""
    files: Mapping[str, bytes] = dataclasses.field(default_factory=dict)  # path in the package


DEFAULT_DEBS = (
    DebSpec("gpubundle-test-tool", depends="gpubundle-test-lib (>= 1.0)"),
    DebSpec("gpubundle-test-lib", files={"usr/share/gpubundle-test/lib.txt": b"lib\n"}),
)


@dataclass(frozen=True)
class TestBundle:
    __test__ = False  # not a pytest test class

    path: Path
    manifest: Manifest
    fingerprint: str  # the signer's: what --trust takes
    sha256: str


def make_deb(out_dir: Path, spec: DebSpec) -> Path:
    """A real .deb built with dpkg-deb (reproducible: fixed mtimes, root-owned)."""
    with tempfile.TemporaryDirectory(prefix="gpubundle-deb-") as tmp:
        return _build_deb(Path(tmp), out_dir, spec)


def _build_deb(root: Path, out_dir: Path, spec: DebSpec) -> Path:
    (root / "DEBIAN").mkdir(parents=True)
    control = [
        f"Package: {spec.name}",
        f"Version: {spec.version}",
        f"Architecture: {spec.architecture}",
        "Maintainer: gpubundle tests <test@gpubundle.invalid>",
        *([f"Depends: {spec.depends}"] if spec.depends else []),
        f"Description: gpubundle test package {spec.name}",
        " Built by tests/support/bundles.py.",
    ]
    (root / "DEBIAN" / "control").write_text("\n".join(control) + "\n")
    for rel, data in spec.files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    deb = out_dir / layout.deb_filename(spec.name, spec.version, spec.architecture)
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)},
    )
    return deb


def deb_pin(deb: Path, spec: DebSpec, source: str = "test") -> PackagePin:
    size, sha256 = hash_file(deb)
    return PackagePin(
        spec.name, spec.version, spec.architecture, size, sha256, layout.repo_deb(deb.name), source
    )


def write_repo(repo_dir: Path, key: TestKey, specs: Sequence[DebSpec]) -> list[PackagePin]:
    """A flat apt repository at ``repo_dir``: debs/ plus Packages, Release, InRelease."""
    debs_dir = repo_dir / "debs"
    debs_dir.mkdir(parents=True, exist_ok=True)
    debs = [(deb_pin(deb, spec), deb) for spec in specs for deb in [make_deb(debs_dir, spec)]]
    signer = Signer(key.fingerprint, key.gnupghome)
    for bundle_path, data in repo_files(debs, signer, EPOCH).items():
        (repo_dir / Path(bundle_path).relative_to(layout.REPO_DIR)).write_bytes(data)
    return [pin for pin, _ in debs]


def make_test_bundle(
    tmp: Path,
    key: TestKey,
    *,
    debs: Sequence[DebSpec] = DEFAULT_DEBS,
    files: Mapping[str, bytes] | None = None,
    images: Sequence[ImagePin] = (),
    manifest_changes: Mapping[str, Any] | None = None,
    mutate: Mutator | None = None,
    name: str = "bundle.tar.zst",
) -> TestBundle:
    """Build a signed bundle under ``tmp`` (``tmp/parts`` holds its inputs).

    ``files`` adds or replaces members ({bundle path: bytes}); ``manifest_changes``
    overrides manifest fields before signing; ``mutate`` edits the raw tar members
    after signing (see ``flip_byte``, ``drop``, ``add``, ``replace``).
    """
    parts = tmp / "parts"
    repo = parts / layout.REPO_DIR
    pins = write_repo(repo, key, debs)
    contents = {layout.IMAGES_ARCHIVE: placeholder_images_tar(), **(files or {})}
    for rel, data in contents.items():
        (parts / rel).parent.mkdir(parents=True, exist_ok=True)
        (parts / rel).write_bytes(data)
    members = sorted((p.relative_to(parts).as_posix(), p) for p in parts.rglob("*") if p.is_file())
    manifest = Manifest(
        format=layout.FORMAT_VERSION,
        created_by="tests.support.bundles",
        source_date_epoch=EPOCH,
        distro="ubuntu22.04",
        arch="amd64",
        python="3.10",
        toolkit_version=debs[0].version,
        signer_fingerprint=key.fingerprint,
        requested=(debs[0].name,),
        sources=(),
        packages=tuple(pins),
        images=tuple(images),
        files=file_entries(members),
    )
    manifest = dataclasses.replace(manifest, **(manifest_changes or {}))
    signer = Signer(key.fingerprint, key.gnupghome)
    raw = manifest.to_json()
    head = {
        layout.MANIFEST: raw,
        layout.MANIFEST_SIG: signer.sign_detached(raw, timestamp=EPOCH),
        layout.SIGNER_KEY: signer.public_key(),
    }
    path = tmp / name
    sha256 = write_bundle(path, head, members, mtime=EPOCH, threads=1, level=3)
    if mutate is not None:
        entries = read_members(path)
        mutate(entries)
        write_members(path, entries)
        sha256 = hash_file(path)[1]
    return TestBundle(path, manifest, key.fingerprint, sha256)


def split_test_bundle(
    bundle: TestBundle, key: TestKey, out_dir: Path, part_size: int, *, signer_key: bytes = b""
) -> SplitResult:
    """``bundle`` split as ``gpubundle build --split-size`` would, into ``out_dir``.

    The index is signed by ``key``; ``signer_key`` replaces the public key it carries.
    """
    signer = Signer(key.fingerprint, key.gnupghome)
    out_dir.mkdir(parents=True, exist_ok=True)

    def produce(sink: Any) -> None:
        with bundle.path.open("rb") as src:
            shutil.copyfileobj(src, sink, 10_000)  # writes that straddle part boundaries

    return write_split(
        out_dir / bundle.path.name,
        part_size,
        produce,
        signer_key=signer_key or signer.public_key(),
        fingerprint=key.fingerprint,
        sign=lambda raw: signer.sign_detached(raw, timestamp=EPOCH),
    )


def placeholder_images_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size, info.mtime = 3, EPOCH
        tar.addfile(info, io.BytesIO(b"[]\n"))
    return buf.getvalue()


def read_members(bundle: Path) -> list[Member]:
    """Every member of a bundle with its data, in archive order."""
    with bundle.open("rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh) as raw:
        data = raw.read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return [
            (info, (tar.extractfile(info).read() if info.isreg() else b""))  # type: ignore[union-attr]
            for info in tar.getmembers()
        ]


def write_members(bundle: Path, members: Sequence[Member]) -> None:
    """Write raw members (however hostile) as a bundle, with no checks at all."""
    with (
        bundle.open("wb") as fh,
        zstandard.ZstdCompressor(level=3).stream_writer(fh) as out,
        tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


# Mutators: each returns a function that edits the member list in place.


def _index(members: list[Member], name: str) -> int:
    return next(i for i, (info, _) in enumerate(members) if info.name == name)


def flip_byte(name: str, offset: int = -1) -> Mutator:
    def mutate(members: list[Member]) -> None:
        i = _index(members, name)
        data = bytearray(members[i][1])
        data[offset] ^= 0x01
        members[i] = (members[i][0], bytes(data))

    return mutate


def replace(name: str, data: bytes) -> Mutator:
    def mutate(members: list[Member]) -> None:
        i = _index(members, name)
        info = members[i][0]
        info.size = len(data)
        members[i] = (info, data)

    return mutate


def drop(name: str) -> Mutator:
    def mutate(members: list[Member]) -> None:
        del members[_index(members, name)]

    return mutate


def add(member: Member, position: int | None = None) -> Mutator:
    def mutate(members: list[Member]) -> None:
        members.insert(len(members) if position is None else position, member)

    return mutate


def chain(*mutators: Mutator) -> Mutator:
    def mutate(members: list[Member]) -> None:
        for mutator in mutators:
            mutator(members)

    return mutate


def regular(name: str, data: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> Member:
    """A non-regular member: tarfile.SYMTYPE, LNKTYPE, CHRTYPE, BLKTYPE, FIFOTYPE, DIRTYPE."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = kind, linkname, EPOCH
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info, b""


def symlink(name: str, target: str) -> Member:
    return special(name, tarfile.SYMTYPE, target)
