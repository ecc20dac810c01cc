"""The repository client against the real Ubuntu and Debian archives, with the manifests' keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bundler.http import make_session
from bundler.httpclient import Response, TransportError
from bundler.index import PackageIndex
from bundler.repo import RepoClient
from bundler.targets import list_targets, load_target
from installer.errors import VerificationError

pytestmark = [pytest.mark.integration, pytest.mark.archive]


def reachable(url: str) -> bool:
    try:
        with make_session(retries=0, timeout=(10.0, 10.0)).request("HEAD", url):
            return True
    except TransportError:
        return False


@pytest.mark.parametrize(
    ("target_name", "source_id", "fingerprint"),
    [
        ("ubuntu22.04", "ubuntu", "F6ECB3762474EDA9D21B7022871920D1991BC93C"),
        ("debian12", "debian", "B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8"),
    ],
)
def test_real_archive_main_is_verified(
    cache_dir: Path, target_name: str, source_id: str, fingerprint: str
) -> None:
    target = load_target(target_name)
    source = dataclasses.replace(target.source(source_id), components=("main",))
    if not reachable(source.url_for("amd64")):
        pytest.skip(f"{source.url_for('amd64')} is not reachable from this machine")
    fetched_urls: list[str] = []
    session = make_session()

    def record(response: Response) -> None:
        fetched_urls.append(response.url)

    session.response_hooks.append(record)
    client = RepoClient(session, cache_dir / "apt-indices")

    fetched = client.fetch(source, "amd64")
    assert fetched.release_name == "InRelease"
    assert fingerprint in fetched.keys.trusted
    assert fetched.release_bytes.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")
    (packages,) = fetched.packages_files
    index = PackageIndex(source_id, fetched.base_url, packages.read_bytes(), "amd64")
    (libc6, *_) = index.versions("libc6")
    assert libc6.sha256 and libc6.url.startswith(f"{source.url_for('amd64')}/pool/main/")
    assert len(index) > 5000

    # Same Release again: only the InRelease is downloaded; the indices come from the cache.
    fetched_urls.clear()
    again = client.fetch(source, "amd64")
    assert again.packages_files == fetched.packages_files
    assert [u.rsplit("/", 1)[-1] for u in fetched_urls] == ["InRelease"]


def test_debian_release_is_refused_under_ubuntu_keys(cache_dir: Path) -> None:
    ubuntu = load_target("ubuntu22.04").source("ubuntu")
    debian = load_target("debian12").source("debian")
    if not reachable(debian.url_for("amd64")):
        pytest.skip(f"{debian.url_for('amd64')} is not reachable from this machine")
    impostor = dataclasses.replace(debian, id="ubuntu", key=ubuntu.key, components=("main",))
    with pytest.raises(VerificationError) as err:
        RepoClient(make_session(), cache_dir / "apt-indices").fetch(impostor, "amd64")
    assert "source ubuntu" in err.value.message
    assert "F6ECB3762474EDA9D21B7022871920D1991BC93C" in err.value.hint


@pytest.mark.parametrize("target_name", list_targets())
def test_every_distro_source_is_signed_by_its_pinned_keys(tmp_path: Path, target_name: str) -> None:
    """Release metadata only (no components): catches a rotated archive key in any manifest."""
    client = RepoClient(make_session(), tmp_path)
    for source in load_target(target_name).sources:
        if source.id == "nvidia":
            continue  # nvidia.github.io is covered by the unit tests on its real metadata
        if not reachable(source.url_for("amd64")):
            pytest.skip(f"{source.url_for('amd64')} is not reachable from this machine")
        fetched = client.fetch(dataclasses.replace(source, components=()), "amd64")
        assert fetched.packages_files == ()
        assert fetched.keys.trusted == source.key.fingerprints


@pytest.mark.parametrize("target_name", ["debian12", "debian13"])
def test_arm64_index_from_the_archive_reachable_here(cache_dir: Path, target_name: str) -> None:
    """arm64 from the manifest's own arm64 URL: Debian's archive (Ubuntu's arm64 is on
    ports.ubuntu.com, which these machines cannot reach)."""
    source = dataclasses.replace(load_target(target_name).source("debian"), components=("main",))
    if not reachable(source.url_for("arm64")):
        pytest.skip(f"{source.url_for('arm64')} is not reachable from this machine")
    fetched = RepoClient(make_session(), cache_dir / "apt-indices").fetch(source, "arm64")
    (packages,) = fetched.packages_files
    index = PackageIndex("debian", fetched.base_url, packages.read_bytes(), "arm64")
    (libc6, *_) = index.versions("libc6")
    assert libc6.architecture == "arm64" and libc6.url.endswith("_arm64.deb")
