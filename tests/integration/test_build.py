"""``gpubundle build`` end to end: stand-in NVIDIA repo + the real Ubuntu archive + images.

Every bundle carries the builtin verification image, made from the archive's own glibc
and busybox .debs: a build with only that one must not contact Docker at all (it runs
with DOCKER_HOST pointing nowhere). A build with ``--image`` adds a registry test
image. Two builds from the same inputs must give the same bytes; the bundle's manifest
must verify with plain gpg, every file it lists must hash as listed, and the
installer's own verifier must accept it. Downloads are cached in .cache/build.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard

from installer import layout
from installer.bundle_reader import verify_bundle
from tests.support import testkeys
from tests.support.buildcli import BUILD_CACHE, build, source_args
from tests.support.registry import CUDA_STANDIN
from tests.support.standin_served import ServedStandin

pytestmark = [pytest.mark.integration, pytest.mark.archive]

PLAN_KEYS = {"name", "version", "architecture", "size", "sha256", "filename", "source"}
VERIFY_TAG = "gpubundle/verify:ubuntu22.04-amd64"
# Any contact with Docker through this fails: the SDK and the CLI both read DOCKER_HOST.
NO_DOCKER = {"DOCKER_HOST": "unix:///nonexistent/gpubundle-test-no-docker.sock"}


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
    builtin, cuda = plan["images"]  # the builtin verification image first, with its .debs
    assert (builtin["ref"], builtin["kind"], builtin["archive"]) == (
        VERIFY_TAG, "builtin", layout.VERIFY_IMAGE_ARCHIVE,
    )  # fmt: skip
    made_of = {p["name"]: p for p in builtin["packages"]}
    assert {"libc6", "busybox"} <= set(made_of)
    assert all(set(p) >= PLAN_KEYS and len(p["sha256"]) == 64 for p in made_of.values())
    assert made_of["busybox"]["source"].startswith("ubuntu")
    assert (cuda["ref"], cuda["kind"], cuda["archive"]) == (
        CUDA_STANDIN.ref, "registry", layout.IMAGES_ARCHIVE,
    )  # fmt: skip
    assert cuda["packages"] == []
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
    assert "busybox" not in packages  # the image's .debs stay out of the apt repository
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
    # The builtin image only: the target's nvcr.io images are suggestions for --image.
    assert [(i["ref"], i["kind"]) for i in default["images"]] == [(VERIFY_TAG, "builtin")]


def test_dry_run_refuses_unknown_distro() -> None:
    proc = build("--distro", "ubuntu99.04", "--dry-run", "--json")
    assert proc.returncode == 2  # a bad command line, found before any download
    error = json.loads(proc.stdout)
    assert error["ok"] is False and "ubuntu22.04" in error["hint"]


@dataclass(frozen=True)
class Built:
    key: testkeys.TestKey
    result: dict[str, Any]
    bundle: Path
    again: Path
    stdout: str  # the human (non --json) run's results


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
    # For people: progress on stderr, the result (signer, install command) on stdout.
    assert "==> " in stderr and "==> " not in human_stdout
    return Built(key, json.loads(stdout), bundle, again, human_stdout)


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
    assert set(result["timings"]) >= {
        "sources", "resolve", "fetch", "validate", "images", "verify-image", "pack",
    }  # fmt: skip
    assert (
        built.key.fingerprint in built.stdout and "gpubundle-installer.pyz install" in built.stdout
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
    assert {
        layout.REPO_INRELEASE, layout.IMAGES_ARCHIVE, layout.VERIFY_IMAGE_ARCHIVE,
        layout.INSTALLER_PYZ, layout.SBOM,
    } <= set(listed)  # fmt: skip
    assert (root / layout.INSTALLER_PYZ).read_bytes() == (
        built.bundle.parent / "gpubundle-installer.pyz"
    ).read_bytes()
    verify, image = manifest["images"]  # the builtin image first
    assert (verify["ref"], verify["archive"], verify["require_cuda"]) == (
        VERIFY_TAG, layout.VERIFY_IMAGE_ARCHIVE, "",
    )  # fmt: skip
    assert image["ref"] == CUDA_STANDIN.ref and image["digest"].startswith("sha256:")
    assert image["require_cuda"].startswith("cuda>=12.4")
    assert image["archive"] == layout.IMAGES_ARCHIVE
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


@pytest.fixture(scope="module")
def builtin_only(
    tmp_path_factory: pytest.TempPathFactory, standin_repo: ServedStandin, nvidia_key_file: Path
) -> Built:
    """Two builds with no --image, with Docker unreachable: the builtin image needs none."""
    tmp = tmp_path_factory.mktemp("builtin")
    key = testkeys.make_key(tmp / "signer", name="gpubundle builtin image test signer")
    outputs = []
    for run in ("first", "second"):
        out = tmp / run / "ubuntu22.04.tar.zst"
        proc = build(
            *source_args(standin_repo, nvidia_key_file),
            "--sign-key", key.fingerprint, "--gnupghome", str(key.gnupghome),
            "--output", str(out), "--json", env=NO_DOCKER,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        outputs.append((json.loads(proc.stdout), out, proc.stderr))
    (result, bundle, _), (_, again, stderr) = outputs
    return Built(key, result, bundle, again, stderr)


def test_builtin_image_build_needs_no_docker_and_is_byte_identical(builtin_only: Built) -> None:
    for name in (
        builtin_only.bundle.name,
        "gpubundle-installer.pyz",
        "gpubundle-installer.pyz.asc",
    ):
        first, second = builtin_only.bundle.parent / name, builtin_only.again.parent / name
        assert first.read_bytes() == second.read_bytes(), name
    timings = builtin_only.result["timings"]
    assert "verify-image" in timings and not {"validate", "images"} & set(timings)


def test_builtin_image_is_the_bundles_only_image_and_loads_as_its_tag(
    builtin_only: Built, tmp_path: Path
) -> None:
    manifest = verify_bundle(builtin_only.bundle, [builtin_only.key.fingerprint])
    [pin] = manifest.images
    assert (pin.ref, pin.archive, pin.require_cuda) == (VERIFY_TAG, layout.VERIFY_IMAGE_ARCHIVE, "")
    assert pin.digest == pin.image_id and pin.image_id.startswith("sha256:")
    listed = manifest.file_map()
    assert layout.VERIFY_IMAGE_ARCHIVE in listed and layout.IMAGES_ARCHIVE not in listed
    # The image's .debs are in the image only, not in the apt repository.
    assert "busybox" not in {p.name for p in manifest.packages}
    assert not [path for path in listed if path.startswith("repo/debs/busybox_")]
    planned = {
        p["name"]: p["version"] for p in builtin_only.result["plan"]["images"][0]["packages"]
    }
    root = tmp_path / "x"
    _extract(builtin_only.bundle, root)
    with tarfile.open(root / layout.VERIFY_IMAGE_ARCHIVE) as tar:
        [entry] = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        config_bytes = tar.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
    assert entry["RepoTags"] == [VERIFY_TAG]
    assert "sha256:" + hashlib.sha256(config_bytes).hexdigest() == pin.image_id
    labels = json.loads(config_bytes)["config"]["Labels"]
    assert labels["io.gpubundle.packages"] == ", ".join(
        f"{name}={version}" for name, version in sorted(planned.items())
    )
    assert {"libc6", "busybox"} <= set(planned)


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
