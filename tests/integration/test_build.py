"""``gpubundle build`` end to end: stand-in NVIDIA repo + the real Ubuntu archive + a test image.

Two builds from the same inputs must give the same bytes; the bundle's manifest
must verify with plain gpg, every file it lists must hash as listed, and the
installer's own verifier must accept it. Downloads are cached in .cache/build.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard

from installer import layout
from installer.bundle_reader import verify_bundle
from tests.conftest import CACHE_DIR
from tests.integration.conftest import ServedStandin
from tests.support import testkeys
from tests.support.registry import CUDA_STANDIN

pytestmark = [pytest.mark.integration, pytest.mark.archive]

BUILD_CACHE = CACHE_DIR / "build"
PLAN_KEYS = {"name", "version", "architecture", "size", "sha256", "filename", "source"}


def build(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from bundler.cli import main; main()", "build", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        timeout=1200,
    )


def source_args(standin: ServedStandin, key_file: Path) -> list[str]:
    if not key_file.exists():
        key_file.write_bytes(standin.armored_key)
    return [
        "--distro", "ubuntu22.04",
        "--mirror", f"nvidia={standin.url}",
        "--key", f"nvidia={key_file}",
        "--cache-dir", str(BUILD_CACHE),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def nvidia_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys") / "standin-nvidia.asc"


def test_dry_run_json(standin_repo: ServedStandin, nvidia_key_file: Path) -> None:
    proc = build(
        *source_args(standin_repo, nvidia_key_file),
        "--toolkit-version", "1.17.8-1", "--image", CUDA_STANDIN.ref, "--dry-run", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)  # exactly one JSON document, nothing else on stdout
    assert plan["distro"] == "ubuntu22.04" and plan["arch"] == "amd64"
    assert plan["toolkit_version"] == "1.17.8-1"
    assert plan["images"] == [CUDA_STANDIN.ref]
    assert plan["requested"] == ["nvidia-container-toolkit"]
    packages = {p["name"]: p for p in plan["packages"]}
    for item in plan["packages"]:
        assert set(item) >= PLAN_KEYS
        assert len(item["sha256"]) == 64 and item["size"] > 0
    for name in ("nvidia-container-toolkit", "nvidia-container-toolkit-base",
                 "libnvidia-container-tools", "libnvidia-container1"):  # fmt: skip
        assert packages[name]["version"] == "1.17.8-1"
        assert packages[name]["source"] == "nvidia"
    assert packages["libc6"]["source"].startswith("ubuntu")
    assert plan["total_size"] == sum(p["size"] for p in plan["packages"])


def test_dry_run_without_images_and_with_docker(
    standin_repo: ServedStandin, nvidia_key_file: Path
) -> None:
    args = source_args(standin_repo, nvidia_key_file)
    proc = build(*args, "--no-images", "--with-docker", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["images"] == []
    assert plan["requested"] == ["nvidia-container-toolkit", "docker.io"]
    assert {"docker.io", "containerd", "runc"} <= {p["name"] for p in plan["packages"]}
    default = json.loads(build(*args, "--dry-run", "--json").stdout)
    assert default["images"] == ["nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04"]  # the target's


def test_dry_run_refuses_unknown_distro() -> None:
    proc = build("--distro", "ubuntu99.04", "--dry-run", "--json")
    assert proc.returncode == 1
    error = json.loads(proc.stdout)
    assert error["ok"] is False and "ubuntu22.04" in error["hint"]


@dataclass(frozen=True)
class Built:
    key: testkeys.TestKey
    result: dict[str, Any]
    bundle: Path
    again: Path
    stderr: str


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory,
    standin_repo: ServedStandin,
    nvidia_key_file: Path,
    test_images: list[str],
) -> Built:
    assert CUDA_STANDIN.ref in test_images
    tmp = tmp_path_factory.mktemp("build")
    key = testkeys.make_key(tmp / "signer", name="gpubundle build test signer")
    outputs = []
    for run, mode in (("first", ["--json"]), ("second", [])):  # the second one for people
        out = tmp / run / "ubuntu22.04.tar.zst"
        proc = build(
            *source_args(standin_repo, nvidia_key_file),
            "--image", CUDA_STANDIN.ref,
            "--sign-key", key.fingerprint, "--gnupghome", str(key.gnupghome),
            "--output", str(out), *mode,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        outputs.append((proc.stdout, out, proc.stderr))
    (stdout, bundle, _), (human_stdout, again, stderr) = outputs
    assert human_stdout == ""
    return Built(key, json.loads(stdout), bundle, again, stderr)


@pytest.mark.docker
def test_two_builds_are_byte_identical(built: Built) -> None:
    for name in (built.bundle.name, "gpubundle-installer.pyz", "gpubundle-installer.pyz.asc"):
        first, second = built.bundle.parent / name, built.again.parent / name
        assert first.read_bytes() == second.read_bytes(), name


@pytest.mark.docker
def test_result_names_signer_and_command(built: Built) -> None:
    result = built.result
    assert result["ok"] is True
    assert result["fingerprint"] == built.key.fingerprint
    assert result["command"].endswith(
        f"install {built.bundle.name} --trust {built.key.fingerprint}"
    )
    assert result["bundle_sha256"] == hashlib.sha256(built.bundle.read_bytes()).hexdigest()
    assert set(result["timings"]) >= {"sources", "resolve", "fetch", "images", "pack"}
    assert (
        built.key.fingerprint in built.stderr and "gpubundle-installer.pyz install" in built.stderr
    )


def _extract(bundle: Path, dest: Path) -> list[str]:
    dest.mkdir()
    names = []
    with (
        bundle.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        for member in tar:
            names.append(member.name)
            tar.extract(member, dest, filter="data")
    return names


@pytest.mark.docker
def test_bundle_verifies_with_plain_gpg_and_every_hash_matches(
    built: Built, tmp_path: Path
) -> None:
    root = tmp_path / "x"
    names = _extract(built.bundle, root)
    assert tuple(names[:3]) == layout.HEAD_MEMBERS
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch"]
    subprocess.run(
        [*gpg, "--import", str(root / layout.SIGNER_KEY)], check=True, capture_output=True
    )
    verified = subprocess.run(
        [*gpg, "--status-fd", "1", "--verify", str(root / layout.MANIFEST_SIG), str(root / layout.MANIFEST)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert f"VALIDSIG {built.key.fingerprint}" in verified.stdout
    manifest = json.loads((root / layout.MANIFEST).read_text())
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert sorted(names[3:]) == names[3:] == sorted(listed)  # nothing missing, nothing extra
    for path, entry in listed.items():
        data = (root / path).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"]), (
            path
        )
    for pin in manifest["packages"]:
        assert (listed[pin["filename"]]["sha256"], listed[pin["filename"]]["size"]) == (
            pin["sha256"],
            pin["size"],
        )
    assert manifest["signer_fingerprint"] == built.key.fingerprint
    assert {layout.REPO_INRELEASE, layout.IMAGES_ARCHIVE, layout.INSTALLER_PYZ} <= set(listed)
    assert (root / layout.INSTALLER_PYZ).read_bytes() == (
        built.bundle.parent / "gpubundle-installer.pyz"
    ).read_bytes()
    [image] = manifest["images"]
    assert image["ref"] == CUDA_STANDIN.ref and image["digest"].startswith("sha256:")
    assert image["require_cuda"].startswith("cuda>=12.4")
    # The installer beside the bundle carries a detached signature by the same key.
    pyz = built.bundle.parent / "gpubundle-installer.pyz"
    checked = subprocess.run(
        [*gpg, "--verify", f"{pyz}.asc", str(pyz)], capture_output=True, check=False
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.docker
def test_installer_verifier_accepts_the_bundle(built: Built) -> None:
    manifest = verify_bundle(built.bundle, [built.key.fingerprint])
    names = {p.name for p in manifest.packages}
    assert {"nvidia-container-toolkit", "libnvidia-container1", "libc6"} <= names
    assert manifest.toolkit_version == "1.20.1-1"
    assert manifest.python == "3.10"
    assert {s.id for s in manifest.sources} == {
        "ubuntu",
        "ubuntu-updates",
        "ubuntu-security",
        "nvidia",
    }


@pytest.mark.docker
def test_missing_image_tag_fails_before_any_download(
    tmp_path: Path, standin_repo: ServedStandin, nvidia_key_file: Path, test_images: list[str]
) -> None:
    key = testkeys.make_key(tmp_path / "signer")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "indices").symlink_to(BUILD_CACHE / "indices")  # the metadata may come from cache
    missing = CUDA_STANDIN.ref.rsplit(":", 1)[0] + ":no-such-tag"
    args = source_args(standin_repo, nvidia_key_file)
    args[args.index("--cache-dir") + 1] = str(cache)
    proc = build(
        *args, "--image", test_images[0], "--image", missing,
        "--sign-key", key.fingerprint, "--gnupghome", str(key.gnupghome),
        "--output", str(tmp_path / "out.tar.zst"),
    )  # fmt: skip
    assert proc.returncode == 1
    assert "1 image reference(s) cannot be found" in proc.stderr
    assert missing in proc.stderr and "hint:" in proc.stderr
    assert not (cache / "pool").exists() and not (cache / "images").exists()
    assert not (tmp_path / "out.tar.zst").exists()


@pytest.mark.docker
def test_images_are_pinned_and_saved_in_one_archive(tmp_path: Path, test_images: list[str]) -> None:
    from bundler import images
    from installer.console import Console

    client = images.connect()
    images.validate(client, test_images)
    pins = images.pull(client, test_images, Console(quiet=True))
    assert [p.ref for p in pins] == test_images
    assert all(p.digest.startswith("sha256:") and p.image_id.startswith("sha256:") for p in pins)
    by_ref = {p.ref: p for p in pins}
    assert by_ref[CUDA_STANDIN.ref].require_cuda.startswith("cuda>=12.4")
    archive = tmp_path / "images.tar"
    images.save(client, test_images, archive)
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert sorted(tag for entry in manifest for tag in entry["RepoTags"]) == sorted(test_images)
    assert not (tmp_path / "images.tar.part").exists()
