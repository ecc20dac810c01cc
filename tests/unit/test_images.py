"""The pure parts of bundler.images: reference parsing, image config Env, digest pinning."""

from __future__ import annotations

import pytest

from bundler.images import (
    archive_key,
    check_architecture,
    connect,
    env_value,
    parse_ref,
    pin_from_attrs,
    repo_digest,
)
from installer.errors import GpubundleError
from installer.manifest import ImagePin

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "registry", "path", "tag", "digest", "local"),
    [
        ("ubuntu", "docker.io", "library/ubuntu", "latest", "", "ubuntu:latest"),
        ("ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", "", "ubuntu:22.04"),
        ("nvidia/cuda:12.4.1-base", "docker.io", "nvidia/cuda", "12.4.1-base", "", None),
        (
            "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04",
            "nvcr.io",
            "nvidia/cuda",
            "12.4.1-base-ubuntu22.04",
            "",
            "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04",
        ),
        ("127.0.0.1:5000/test/tiny:1", "127.0.0.1:5000", "test/tiny", "1", "", None),
        ("localhost/app", "localhost", "app", "latest", "", "localhost/app:latest"),
        (f"nvcr.io/nvidia/cuda@{DIGEST}", "nvcr.io", "nvidia/cuda", "", DIGEST, None),
        ("registry:5000/a/b", "registry:5000", "a/b", "latest", "", None),
    ],
)
def test_parse_ref(
    ref: str, registry: str, path: str, tag: str, digest: str, local: str | None
) -> None:
    parsed = parse_ref(ref)
    assert (parsed.registry, parsed.path, parsed.tag, parsed.digest) == (
        registry,
        path,
        tag,
        digest,
    )
    if local is not None:
        assert parsed.local == local


def test_docker_hub_names_are_local_without_prefix() -> None:
    assert parse_ref("docker.io/library/ubuntu:22.04").local == "ubuntu:22.04"
    assert parse_ref("ubuntu").canonical == "docker.io/library/ubuntu:latest"


@pytest.mark.parametrize(
    "ref", ["", " ubuntu", "Ubuntu:1", "ubuntu:", "a//b", "ubuntu@md5:00", "/ubuntu", "a b"]
)
def test_parse_ref_refuses_garbage(ref: str) -> None:
    with pytest.raises(GpubundleError) as caught:
        parse_ref(ref)
    assert "NAME[:TAG]" in caught.value.hint


def test_env_value() -> None:
    env = ["PATH=/usr/bin", "NVIDIA_REQUIRE_CUDA=cuda>=12.4 brand=tesla,driver>=470", "EMPTY="]
    assert env_value(env, "NVIDIA_REQUIRE_CUDA") == "cuda>=12.4 brand=tesla,driver>=470"
    assert env_value(env, "EMPTY") == ""
    assert env_value(env, "MISSING") == ""
    assert env_value(None, "PATH") == ""
    assert env_value(["NOEQUALS"], "NOEQUALS") == ""


def test_repo_digest_matches_the_repository() -> None:
    digests = [f"other/repo@sha256:{'00' * 32}", f"nvcr.io/nvidia/cuda@{DIGEST}"]
    assert repo_digest(digests, parse_ref("nvcr.io/nvidia/cuda:12")) == DIGEST
    assert repo_digest([f"ubuntu@{DIGEST}"], parse_ref("docker.io/library/ubuntu")) == DIGEST
    assert repo_digest(digests, parse_ref("ubuntu")) == ""


def test_pin_from_attrs() -> None:
    attrs = {
        "Id": "sha256:" + "11" * 32,
        "RepoDigests": [f"127.0.0.1:5000/t/cuda@{DIGEST}"],
        "Config": {"Env": ["NVIDIA_REQUIRE_CUDA=cuda>=12.4"]},
    }
    pin = pin_from_attrs("127.0.0.1:5000/t/cuda:1", attrs)
    assert pin.digest == DIGEST
    assert pin.image_id == "sha256:" + "11" * 32
    assert pin.require_cuda == "cuda>=12.4"
    # Without a repo digest (a local-only image) the image id stands in.
    bare = pin_from_attrs("t/cuda:1", {"Id": "sha256:" + "22" * 32, "Config": {"Env": None}})
    assert bare.digest == "sha256:" + "22" * 32
    assert bare.require_cuda == ""


def test_archive_key_names_images_and_ids() -> None:
    one = ImagePin("r/a:1", "sha256:" + "1" * 64, "sha256:" + "a" * 64)
    two = ImagePin("r/b:1", "sha256:" + "2" * 64, "sha256:" + "b" * 64)
    assert archive_key([one, two]) == archive_key([two, one])
    assert archive_key([one]) != archive_key([one, two])
    moved = ImagePin("r/a:1", one.digest, "sha256:" + "c" * 64)  # the tag now names another image
    assert archive_key([moved]) != archive_key([one])


def test_connect_without_a_daemon_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/gpubundle-test.sock")
    with pytest.raises(GpubundleError) as caught:
        connect()
    assert "cannot reach the Docker daemon" in caught.value.message
    assert "--no-images" in caught.value.hint


def test_check_architecture() -> None:
    check_architecture("a:1", {"Architecture": "amd64"}, "amd64")
    check_architecture("a:1", {}, "arm64")  # unknown: docker pulled what the platform asked
    with pytest.raises(GpubundleError) as caught:
        check_architecture("a:1", {"Architecture": "arm64"}, "amd64")
    assert "--arch arm64" in caught.value.hint
