"""bundler.repo against loopback copies of the real NVIDIA repository and generated dists/ repos."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bundler.http import make_session
from bundler.index import PackageIndex
from bundler.repo import FetchedSource, RepoClient
from bundler.targets import KeySpec, SourceSpec, Target, apply_overrides
from installer.errors import VerificationError
from tests.support import testkeys
from tests.support.httpserver import serve_directory
from tests.support.testkeys import make_key

# Loopback HTTP servers: real sockets, so not the unit tier.
pytestmark = pytest.mark.integration

NVIDIA_FPR = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
PACKAGES = b"""Package: hello
Version: 2.10-2
Architecture: amd64
Filename: pool/main/h/hello/hello_2.10-2_amd64.deb
Size: 100
SHA256: %s

Package: libfoo1
Version: 1.0-1
Architecture: amd64
Depends: libc6 (>= 2.34)
Filename: pool/main/libf/libfoo/libfoo1_1.0-1_amd64.deb
Size: 200
SHA256: %s
""" % (b"a" * 64, b"b" * 64)


class Recorder:
    """A failure hook that records paths and never fails (a callable object, not a function,
    because serve_directory stores the hook as a class attribute)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, path: str) -> int | None:
        self.paths.append(path)
        return None


@pytest.fixture(scope="module")
def keys(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[testkeys.TestKey, testkeys.TestKey]]:
    base = tmp_path_factory.mktemp("keys")
    pair = (make_key(base / "a", "repo key a"), make_key(base / "b", "repo key b"))
    yield pair
    for key in pair:
        subprocess.run(
            ["gpgconf", "--homedir", str(key.gnupghome), "--kill", "gpg-agent"], check=False
        )


def sign(key: testkeys.TestKey, release: Path, *, inline: bool) -> None:
    mode = (
        ["--clearsign", "-o", str(release.parent / "InRelease")]
        if inline
        else ["--armor", "--detach-sign", "-o", str(release.parent / "Release.gpg")]
    )
    subprocess.run(
        [
            "gpg",
            "--homedir",
            str(key.gnupghome),
            "--batch",
            "--yes",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--local-user",
            key.fingerprint,
            *mode,
            str(release),
        ],
        check=True,
        capture_output=True,
    )


def make_dists_repo(
    root: Path, key: testkeys.TestKey, *, inline: bool = True, signed: bool = True, extra: str = ""
) -> None:
    """dists/testing/main/binary-amd64/Packages{,.xz,.gz} with a SHA256 Release, signed by ``key``."""
    suite = root / "dists" / "testing"
    index = suite / "main" / "binary-amd64"
    index.mkdir(parents=True)
    forms = {"": PACKAGES, ".xz": lzma.compress(PACKAGES), ".gz": gzip.compress(PACKAGES)}
    lines = []
    for suffix, data in forms.items():
        (index / f"Packages{suffix}").write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        lines.append(f" {digest} {len(data)} main/binary-amd64/Packages{suffix}")
    release = suite / "Release"
    release.write_text(
        "Origin: Test\nSuite: testing\nCodename: test\nArchitectures: amd64\nComponents: main\n"
        f"{extra}SHA256:\n" + "\n".join(lines) + "\n"
    )
    if signed:
        sign(key, release, inline=inline)


def dists_source(
    base: str, key: testkeys.TestKey, *, pinned: testkeys.TestKey | None = None, key_file: Path
) -> SourceSpec:
    key_file.write_bytes((pinned or key).public_armored)
    return SourceSpec(
        id="testdist",
        url=base,
        suite="testing",
        components=("main",),
        key=KeySpec(((pinned or key).fingerprint,), file=key_file),
    )


def nvidia_tree(nvidia_fixtures: Path, tmp_path: Path) -> Path:
    root = tmp_path / "srv"
    shutil.copytree(nvidia_fixtures / "stable" / "deb" / "amd64", root / "stable" / "deb" / "amd64")
    shutil.copy(nvidia_fixtures / "gpgkey", root / "gpgkey")
    return root


def nvidia_source(base: str) -> SourceSpec:
    return SourceSpec(
        id="nvidia",
        url=base + "/stable/deb/{arch}",
        suite="/",
        components=(),
        key=KeySpec((NVIDIA_FPR,), url=base + "/gpgkey"),
    )


def fetch(tmp_path: Path, source: SourceSpec) -> FetchedSource:
    return RepoClient(make_session(retries=0), tmp_path / "cache").fetch(source, "amd64")


def test_real_nvidia_flat_repo_is_verified_and_parsed(
    nvidia_fixtures: Path, tmp_path: Path
) -> None:
    root = nvidia_tree(nvidia_fixtures, tmp_path)
    log = Recorder()
    with serve_directory(root, log) as base:
        fetched = fetch(tmp_path, nvidia_source(base))
        assert fetched.release_name == "InRelease"
        assert fetched.release_bytes == (root / "stable/deb/amd64/InRelease").read_bytes()
        assert fetched.keys.trusted == (NVIDIA_FPR,)
        assert fetched.base_url == base + "/stable/deb/amd64"
        assert fetched.record().key_fingerprints == (NVIDIA_FPR,)
        (packages,) = fetched.packages_files
        assert packages.read_bytes() == (nvidia_fixtures / "stable/deb/amd64/Packages").read_bytes()
        # The Release lists Packages.xz, which the fixture tree lacks: plain Packages is the fallback.
        assert log.paths == [
            "/gpgkey",
            "/stable/deb/amd64/InRelease",
            "/stable/deb/amd64/Packages.xz",
            "/stable/deb/amd64/Packages",
        ]
        index = PackageIndex("nvidia", fetched.base_url, packages.read_bytes(), "amd64")
        toolkit = index.versions("nvidia-container-toolkit")
        assert len(toolkit) == 28
        assert toolkit[0].url.startswith(base + "/stable/deb/amd64/nvidia-container-toolkit_")

        # Unchanged Release: the cached index is re-checked and reused, nothing else is fetched.
        log.paths.clear()
        again = fetch(tmp_path, nvidia_source(base))
        assert again.packages_files == fetched.packages_files
        assert log.paths == ["/gpgkey", "/stable/deb/amd64/InRelease"]


def test_tampered_inrelease_is_refused(nvidia_fixtures: Path, tmp_path: Path) -> None:
    root = nvidia_tree(nvidia_fixtures, tmp_path)
    inrelease = root / "stable/deb/amd64/InRelease"
    inrelease.write_bytes(inrelease.read_bytes().replace(b"178415 Packages", b"178416 Packages"))
    with serve_directory(root) as base, pytest.raises(VerificationError) as err:
        fetch(tmp_path, nvidia_source(base))
    assert "source nvidia" in err.value.message
    assert NVIDIA_FPR in err.value.hint and "--key nvidia=FILE" in err.value.hint


def test_packages_not_matching_the_release_is_refused(
    nvidia_fixtures: Path, tmp_path: Path
) -> None:
    root = nvidia_tree(nvidia_fixtures, tmp_path)
    packages = root / "stable/deb/amd64/Packages"
    packages.write_bytes(
        packages.read_bytes().replace(b"Version: 1.20.1-1", b"Version: 1.20.9-1", 1)
    )
    with serve_directory(root) as base, pytest.raises(VerificationError) as err:
        fetch(tmp_path, nvidia_source(base))
    assert "Packages does not match the signed Release" in err.value.message
    assert not list((tmp_path / "cache" / "by-hash").iterdir())  # nothing unverified was kept


def test_a_key_url_serving_another_key_is_refused(
    nvidia_fixtures: Path, tmp_path: Path, keys: tuple[testkeys.TestKey, testkeys.TestKey]
) -> None:
    root = nvidia_tree(nvidia_fixtures, tmp_path)
    (root / "gpgkey").write_bytes(keys[0].public_armored)
    with serve_directory(root) as base, pytest.raises(VerificationError) as err:
        fetch(tmp_path, nvidia_source(base))
    assert "not the pinned key" in err.value.message
    assert any(NVIDIA_FPR in line for line in err.value.details)
    assert any(keys[0].fingerprint in line for line in err.value.details)


def test_metadata_signed_by_another_key_is_refused(
    tmp_path: Path, keys: tuple[testkeys.TestKey, testkeys.TestKey]
) -> None:
    signer, pinned = keys
    make_dists_repo(tmp_path / "srv", signer)
    source = dists_source("", signer, pinned=pinned, key_file=tmp_path / "pinned.asc")
    with serve_directory(tmp_path / "srv") as base, pytest.raises(VerificationError) as err:
        fetch(tmp_path, SourceSpec(source.id, base, source.suite, source.components, source.key))
    assert "source testdist" in err.value.message
    assert pinned.fingerprint in err.value.hint


def test_dists_repo_signed_inline(
    tmp_path: Path, keys: tuple[testkeys.TestKey, testkeys.TestKey]
) -> None:
    make_dists_repo(tmp_path / "srv", keys[0])
    log = Recorder()
    with serve_directory(tmp_path / "srv", log) as base:
        fetched = fetch(tmp_path, dists_source(base, keys[0], key_file=tmp_path / "k.asc"))
    assert fetched.base_url == base and fetched.release_name == "InRelease"
    (packages,) = fetched.packages_files
    assert packages.read_bytes() == PACKAGES
    assert "/dists/testing/main/binary-amd64/Packages.xz" in log.paths
    assert not any(p.endswith((".gz", "/Packages")) for p in log.paths)
    index = PackageIndex("testdist", fetched.base_url, packages.read_bytes(), "amd64")
    assert index.versions("hello")[0].url == base + "/pool/main/h/hello/hello_2.10-2_amd64.deb"


def test_dists_repo_with_detached_release_gpg(
    tmp_path: Path, keys: tuple[testkeys.TestKey, testkeys.TestKey]
) -> None:
    make_dists_repo(tmp_path / "srv", keys[0], inline=False)
    with serve_directory(tmp_path / "srv") as base:
        fetched = fetch(tmp_path, dists_source(base, keys[0], key_file=tmp_path / "k.asc"))
    assert fetched.release_name == "Release"
    assert set(fetched.metadata_files()) == {"Release", "Release.gpg"}
    assert fetched.packages_files[0].read_bytes() == PACKAGES


def test_unsigned_repo_is_refused(
    tmp_path: Path, keys: tuple[testkeys.TestKey, testkeys.TestKey]
) -> None:
    make_dists_repo(tmp_path / "srv", keys[0], signed=False)
    with serve_directory(tmp_path / "srv") as base, pytest.raises(VerificationError) as err:
        fetch(tmp_path, dists_source(base, keys[0], key_file=tmp_path / "k.asc"))
    assert "not signed" in err.value.message and "testdist" in err.value.message


def test_mirror_resigned_by_another_key_needs_key_override(
    tmp_path: Path, keys: tuple[testkeys.TestKey, testkeys.TestKey]
) -> None:
    """A mirror re-signed by the organisation: refused under the pin, accepted with --key."""
    signer, pinned = keys
    make_dists_repo(tmp_path / "srv", signer)
    org_key = tmp_path / "org.asc"
    org_key.write_bytes(signer.public_armored)
    with serve_directory(tmp_path / "srv") as base:
        source = dists_source(base, signer, pinned=pinned, key_file=tmp_path / "pinned.asc")
        target = Target(
            name="t", distro_id="debian", version="12", codename="bookworm", python="3.11",
            arches=("amd64",), sources=(source,), images=(),
        )  # fmt: skip
        with pytest.raises(VerificationError):
            fetch(tmp_path / "pinned", source)
        overridden = apply_overrides(target, {}, {"testdist": org_key}).source("testdist")
        fetched = fetch(tmp_path / "override", overridden)
    assert fetched.keys.trusted == (signer.fingerprint,)


def test_expired_release_is_refused(
    tmp_path: Path, keys: tuple[testkeys.TestKey, testkeys.TestKey]
) -> None:
    make_dists_repo(tmp_path / "srv", keys[0], extra="Valid-Until: Sat, 01 Jan 2000 00:00:00 UTC\n")
    with serve_directory(tmp_path / "srv") as base, pytest.raises(VerificationError) as err:
        fetch(tmp_path, dists_source(base, keys[0], key_file=tmp_path / "k.asc"))
    assert "expired" in err.value.message


def test_damaged_cache_entry_is_fetched_again(
    tmp_path: Path, keys: tuple[testkeys.TestKey, testkeys.TestKey]
) -> None:
    make_dists_repo(tmp_path / "srv", keys[0])
    with serve_directory(tmp_path / "srv") as base:
        source = dists_source(base, keys[0], key_file=tmp_path / "k.asc")
        first = fetch(tmp_path, source)
        for cached in (tmp_path / "cache" / "by-hash").iterdir():
            cached.write_bytes(b"damaged")
        second = fetch(tmp_path, source)
    assert second.packages_files[0].read_bytes() == PACKAGES == first.packages_files[0].read_bytes()
