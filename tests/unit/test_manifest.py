"""installer.manifest: canonical JSON and validation errors that name the field."""

from __future__ import annotations

import json

import pytest

from installer.errors import VerificationError
from installer.manifest import (
    FileEntry,
    ImagePin,
    Manifest,
    PackagePin,
    SourceRecord,
    parse_manifest,
)

SHA = "ab" * 32


def sample() -> Manifest:
    return Manifest(
        format=1,
        created_by="gpubundle 0.1.0",
        source_date_epoch=1700000000,
        distro="ubuntu22.04",
        arch="amd64",
        python="3.10",
        toolkit_version="1.17.8-1",
        signer_fingerprint="C" * 40,
        requested=("nvidia-container-toolkit",),
        sources=(SourceRecord("nvidia", "https://x/stable/deb/amd64", "/", (), ("C" * 40,)),),
        packages=(
            PackagePin("libcap2", "1:2.44-1", "amd64", 10, SHA, "repo/debs/libcap2.deb", "ubuntu"),
        ),
        images=(
            ImagePin(
                "gpubundle/verify:ubuntu22.04-amd64",
                "sha256:" + "3" * 64,
                "sha256:" + "3" * 64,
                "",
                "images/gpubundle-verify.tar",
            ),
            ImagePin(
                "cuda:12",
                "sha256:" + "1" * 64,
                "sha256:" + "2" * 64,
                "cuda>=12.4",
                "images/images.tar",
            ),
        ),
        files=(
            FileEntry("images/gpubundle-verify.tar", 20, SHA),
            FileEntry("images/images.tar", 30, SHA),
            FileEntry("repo/debs/libcap2.deb", 10, SHA),
        ),
    )


def test_round_trip_is_exact_and_canonical() -> None:
    manifest = sample()
    raw = manifest.to_json()
    assert parse_manifest(raw) == manifest
    assert raw == parse_manifest(raw).to_json()
    assert raw.endswith(b"\n")


def test_every_bad_field_is_reported_by_path() -> None:
    data = json.loads(sample().to_json())
    del data["distro"]
    data["packages"][0]["size"] = "10"
    data["files"][0]["sha256"] = "XYZ"
    with pytest.raises(VerificationError) as err:
        parse_manifest(json.dumps(data).encode())
    details = "\n".join(err.value.details)
    assert "$.distro: missing" in details
    assert "$.packages[0].size: expected int, got str" in details
    assert "$.files[0].sha256: not a lowercase hex sha256" in details


@pytest.mark.parametrize(
    ("archive", "error"),
    [
        (None, "$.images[1].archive: missing"),
        ("", "$.images[1].archive: not a tar under images/"),
        ("repo/debs/libcap2.deb", "$.images[1].archive: not a tar under images/"),
        ("images/../repo/x.tar", "$.images[1].archive: not a tar under images/"),
        ("images/other.tar", "$.images[1].archive: images/other.tar is not in $.files"),
    ],
)
def test_image_archive_is_a_listed_tar_under_images(archive: str | None, error: str) -> None:
    data = json.loads(sample().to_json())
    if archive is None:
        del data["images"][1]["archive"]
    else:
        data["images"][1]["archive"] = archive
    with pytest.raises(VerificationError) as err:
        parse_manifest(json.dumps(data).encode())
    assert list(err.value.details) == [error]


def test_bool_is_not_accepted_as_int() -> None:
    data = json.loads(sample().to_json())
    data["files"][0]["size"] = True
    with pytest.raises(VerificationError, match="does not match"):
        parse_manifest(json.dumps(data).encode())


def test_duplicate_paths_refused() -> None:
    data = json.loads(sample().to_json())
    data["files"].append(dict(data["files"][0]))
    with pytest.raises(VerificationError) as err:
        parse_manifest(json.dumps(data).encode())
    assert any("more than once" in line for line in err.value.details)


def test_future_format_refused_with_hint() -> None:
    data = json.loads(sample().to_json())
    data["format"] = 99
    with pytest.raises(VerificationError, match="format 99 is not supported"):
        parse_manifest(json.dumps(data).encode())


def test_not_json_refused() -> None:
    with pytest.raises(VerificationError, match="not valid JSON"):
        parse_manifest(b"\x00\xff")
