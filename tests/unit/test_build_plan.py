"""The pure parts of the build: resolution inputs, plan, pins, manifest, timestamp, key armour."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from bundler.assemble import writable_output
from bundler.buildplan import (
    BuildOptions,
    armored_keys,
    default_output,
    install_command,
    make_manifest,
    make_plan,
    package_pins,
    release_epoch,
    resolution_inputs,
    source_date_epoch,
)
from bundler.cli import main
from bundler.index import PackageIndex
from bundler.plan import BUILTIN, REGISTRY, PlannedImage
from bundler.resolver import resolve
from bundler.verifyimage import VERIFY_IMAGE_ROOTS
from installer.errors import ExitCode, GpubundleError
from installer.manifest import FileEntry, SourceRecord, parse_manifest
from installer.openpgp import armor, dearmor
from tests.support.testkeys import make_key

SHA = "ab" * 32


def _stanza(name: str, version: str, depends: str, size: int) -> str:
    return (
        f"Package: {name}\nVersion: {version}\nArchitecture: amd64\nDepends: {depends}\n"
        f"Filename: ./{name}_{version}_amd64.deb\nSize: {size}\nSHA256: {SHA}\n"
    )


def _family(version: str, size: int) -> list[str]:
    pin = f"(= {version})"
    return [
        _stanza("nvidia-container-toolkit", version,
                f"nvidia-container-toolkit-base {pin}, libnvidia-container-tools {pin}", size),
        _stanza("nvidia-container-toolkit-base", version, "libcap2 (>= 1:2.10)", 10),
        _stanza("libnvidia-container-tools", version, f"libnvidia-container1 {pin}", 10),
        _stanza("libnvidia-container1", version, "libcap2 (>= 1:2.10)", 10),
    ]  # fmt: skip


PACKAGES = "\n".join(_family("1.17.8-1", 1000) + _family("1.20.1-1", 1001)).encode()
ARCHIVE = f"""\
Package: libcap2
Version: 1:2.44-1
Architecture: amd64
Filename: pool/main/libc/libcap2/libcap2_2.44-1_amd64.deb
Size: 200
SHA256: {"cd" * 32}

Package: docker.io
Version: 24.0.7-0ubuntu2
Architecture: amd64
Filename: pool/universe/d/docker.io/docker.io_24.0.7-0ubuntu2_amd64.deb
Size: 300
SHA256: {"ef" * 32}
""".encode()
SOURCES = (
    SourceRecord("nvidia", "http://nv.example/deb/amd64", "/", (), ("A" * 40,)),
    SourceRecord("ubuntu", "http://archive.example/ubuntu", "jammy", ("main",), ("B" * 40,)),
)


def _indices(archive: bytes = ARCHIVE) -> list[PackageIndex]:
    return [
        PackageIndex("nvidia", "http://nv.example/deb/amd64", PACKAGES, "amd64"),
        PackageIndex("ubuntu", "http://archive.example/ubuntu", archive, "amd64"),
    ]


IMAGE_DEBS = f"""\
Package: libc6
Version: 2.35-0ubuntu3.18
Architecture: amd64
Depends: libgcc-s1
Filename: pool/main/g/glibc/libc6_2.35-0ubuntu3.18_amd64.deb
Size: 3000
SHA256: {"11" * 32}

Package: libgcc-s1
Version: 12.3.0-1ubuntu1~22.04
Architecture: amd64
Filename: pool/main/g/gcc-12/libgcc-s1_12.3.0-1ubuntu1~22.04_amd64.deb
Size: 50
SHA256: {"22" * 32}

Package: busybox
Version: 1:1.30.1-7ubuntu3.1
Architecture: amd64
Depends: libc6 (>= 2.34)
Filename: pool/universe/b/busybox/busybox_1.30.1-7ubuntu3.1_amd64.deb
Size: 400
SHA256: {"33" * 32}
""".encode()


def _plan(  # type: ignore[no-untyped-def]
    options: BuildOptions,
    archive: bytes = ARCHIVE,
    images: tuple[str, ...] = (),
    *,
    builtin: bool = False,
):
    roots, pins = resolution_inputs(options)
    indices = _indices(archive)
    resolution = resolve(indices, roots, arch="amd64", pins=pins)
    verify = resolve(indices, VERIFY_IMAGE_ROOTS, arch="amd64") if builtin else None
    return make_plan(options, roots, SOURCES, resolution, {}, images, verify)


def test_resolution_inputs() -> None:
    assert resolution_inputs(BuildOptions("ubuntu22.04")) == (("nvidia-container-toolkit",), {})
    roots, pins = resolution_inputs(
        BuildOptions(
            "ubuntu22.04",
            toolkit_version="1.17.8-1",
            with_docker=True,
            extra_packages=("jq", "docker.io", "jq"),
        )
    )
    assert roots == ("nvidia-container-toolkit", "docker.io", "jq")
    assert pins["nvidia-container-toolkit"] == "1.17.8-1"
    assert pins["libnvidia-container1"] == "1.17.8-1"


def test_plan_from_resolution() -> None:
    plan = _plan(
        BuildOptions("ubuntu22.04"), images=("nvcr.io/nvidia/cuda:12", "nvcr.io/nvidia/cuda:12")
    )
    assert plan.toolkit_version == "1.20.1-1"
    assert [p.name for p in plan.packages] == [
        "libcap2",
        "libnvidia-container-tools",
        "libnvidia-container1",
        "nvidia-container-toolkit",
        "nvidia-container-toolkit-base",
    ]
    assert {p.version for p in plan.packages[1:]} == {"1.20.1-1"}
    toolkit = plan.packages[3]
    assert toolkit.url == "http://nv.example/deb/amd64/nvidia-container-toolkit_1.20.1-1_amd64.deb"
    assert (toolkit.size, toolkit.sha256, toolkit.source) == (1001, SHA, "nvidia")
    assert plan.packages[0].url.endswith("/ubuntu/pool/main/libc/libcap2/libcap2_2.44-1_amd64.deb")
    assert plan.images == (PlannedImage("nvcr.io/nvidia/cuda:12", REGISTRY, "images/images.tar"),)
    assert plan.registry_refs == ("nvcr.io/nvidia/cuda:12",) and plan.verify_image is None
    data = plan.as_json()
    assert data["total_size"] == 1231
    assert set(data["packages"][0]) >= {"name", "version", "architecture", "size", "sha256",
                                         "filename", "source"}  # fmt: skip


def test_builtin_image_is_planned_first_from_its_own_closure_not_in_the_repo() -> None:
    options = BuildOptions("ubuntu22.04")
    plan = _plan(options, ARCHIVE + b"\n" + IMAGE_DEBS, ("nvcr.io/nvidia/cuda:12",), builtin=True)
    verify = plan.verify_image
    assert verify is not None and plan.images[0] == verify
    assert (verify.ref, verify.kind, verify.archive) == (
        "gpubundle/verify:ubuntu22.04-amd64",
        BUILTIN,
        "images/gpubundle-verify.tar",
    )
    assert [(p.name, p.version) for p in verify.packages] == [
        ("busybox", "1:1.30.1-7ubuntu3.1"),
        ("libc6", "2.35-0ubuntu3.18"),
        ("libgcc-s1", "12.3.0-1ubuntu1~22.04"),
    ]
    assert verify.packages[0].url.endswith("/busybox_1.30.1-7ubuntu3.1_amd64.deb")
    assert verify.packages[0].sha256 == "33" * 32
    # The image's .debs are the image's only: not in the apt repository, nor its size.
    assert not {"busybox", "libc6", "libgcc-s1"} & {p.name for p in plan.packages}
    assert plan.registry_refs == ("nvcr.io/nvidia/cuda:12",)
    data = plan.as_json()
    assert data["total_size"] == 1231
    assert [i["ref"] for i in data["images"]] == [verify.ref, "nvcr.io/nvidia/cuda:12"]
    assert [p["name"] for p in data["images"][0]["packages"]] == ["busybox", "libc6", "libgcc-s1"]
    assert not data["images"][1]["packages"]


def test_builtin_image_refuses_packages_without_sha256() -> None:
    image_debs = IMAGE_DEBS.replace(f"SHA256: {'33' * 32}\n".encode(), b"")
    with pytest.raises(GpubundleError) as caught:
        _plan(BuildOptions("ubuntu22.04"), ARCHIVE + b"\n" + image_debs, builtin=True)
    assert "busybox 1:1.30.1-7ubuntu3.1 from ubuntu" in caught.value.details[0]


def test_plan_honours_toolkit_version_and_docker() -> None:
    plan = _plan(BuildOptions("ubuntu22.04", toolkit_version="1.17.8-1", with_docker=True))
    assert plan.toolkit_version == "1.17.8-1"
    assert plan.requested == ("nvidia-container-toolkit", "docker.io")
    assert {p.name for p in plan.packages} >= {"nvidia-container-toolkit", "libcap2", "docker.io"}
    assert {p.version for p in plan.packages if "nvidia" in p.name} == {"1.17.8-1"}


def test_plan_refuses_packages_without_sha256() -> None:
    archive = ARCHIVE.replace(f"SHA256: {'cd' * 32}\n".encode(), b"")
    with pytest.raises(GpubundleError) as caught:
        _plan(BuildOptions("ubuntu22.04"), archive=archive)
    assert "libcap2 1:2.44-1 from ubuntu" in caught.value.details[0]


def test_plan_refuses_a_bad_image_reference() -> None:
    with pytest.raises(GpubundleError):
        _plan(BuildOptions("ubuntu22.04"), images=("Not A Ref",))


def test_pins_and_manifest_round_trip() -> None:
    plan = _plan(BuildOptions("ubuntu22.04"))
    pins = package_pins(plan)
    # Canonical names: the epoch is dropped, the upstream directory too.
    assert pins[0].filename == "repo/debs/libcap2_2.44-1_amd64.deb"
    assert pins[3].filename == "repo/debs/nvidia-container-toolkit_1.20.1-1_amd64.deb"
    files = [FileEntry(p.filename, p.size, p.sha256) for p in reversed(pins)]
    manifest = make_manifest(plan, "3.10", pins, [], "C" * 40, 1700000000, files)
    assert [f.path for f in manifest.files] == sorted(f.path for f in files)
    assert parse_manifest(manifest.to_json()) == manifest
    assert manifest.toolkit_version == "1.20.1-1" and manifest.python == "3.10"


CLEARSIGNED = b"""\
-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA512

Origin: Ubuntu
Date: Thu, 21 Apr 2022 17:16:08 UTC
SHA256:
 00 1 Packages
-----BEGIN PGP SIGNATURE-----

Date: Mon, 01 Jan 2035 00:00:00 UTC
-----END PGP SIGNATURE-----
"""


def test_release_epoch() -> None:
    assert release_epoch(CLEARSIGNED) == 1650561368  # only the signed part counts
    assert release_epoch(b"Origin: x\nDate: Fri, 27 Apr 2018 21:29:25 +0000\n") == 1524864565
    assert release_epoch(b"Origin: x\n") is None
    assert release_epoch(b"Date: not a date\n") is None


def test_source_date_epoch() -> None:
    assert source_date_epoch([None, 5, 9, 7], env={}) == 9
    assert source_date_epoch([5], env={"SOURCE_DATE_EPOCH": "123"}) == 123
    with pytest.raises(GpubundleError, match="not a Unix time"):
        source_date_epoch([5], env={"SOURCE_DATE_EPOCH": "yesterday"})
    with pytest.raises(GpubundleError) as caught:
        source_date_epoch([None], env={})
    assert "SOURCE_DATE_EPOCH" in caught.value.hint


def test_output_name_and_install_command() -> None:
    plan = _plan(BuildOptions("ubuntu22.04"))
    assert default_output(plan) == Path("gpubundle-ubuntu22.04-amd64-1.20.1-1.tar.zst")
    assert install_command("b.tar.zst", "F" * 40) == (
        f"sudo sh gpubundle-installer.pyz install b.tar.zst --trust {'F' * 40}"
    )


def test_armor_matches_gpg_and_round_trips(tmp_path: Path) -> None:
    home = make_key(tmp_path / "gnupg").gnupghome  # its gpg-agent is stopped at exit
    env = {"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin"}
    key = subprocess.run(["gpg", "--export"], env=env, check=True, capture_output=True).stdout
    by_gpg = subprocess.run(
        ["gpg", "--armor", "--export"], env=env, check=True, capture_output=True
    ).stdout
    assert armor(key) == by_gpg  # same base64 lines and CRC-24 as gpg writes
    assert dearmor(armor(key)) == key
    joined = armored_keys([key, b"  " + by_gpg + b"\n"])
    assert joined == by_gpg + by_gpg


@pytest.mark.parametrize(
    "args",
    [
        ["--image", "a/b:1", "--no-images"],
        ["--mirror", "nvidia"],
        ["--key", "=file"],
    ],
)
def test_cli_usage_errors(args: list[str]) -> None:
    result = CliRunner().invoke(main, ["build", "--distro", "ubuntu22.04", "--dry-run", *args])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "hint:" in result.output


def test_writable_output(tmp_path: Path) -> None:
    assert writable_output(tmp_path / "new" / "b.tar.zst") == tmp_path / "new" / "b.tar.zst"
    with pytest.raises(GpubundleError, match="is a directory"):
        writable_output(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(GpubundleError, match="cannot write beside") as caught:
        writable_output(tmp_path / "file" / "b.tar.zst")
    assert "--output" in caught.value.hint


def test_with_compose_adds_the_targets_compose_package() -> None:
    options = BuildOptions("ubuntu24.04", with_docker=True, with_compose=True)
    roots, _ = resolution_inputs(options, "docker-compose-v2")
    assert roots == ("nvidia-container-toolkit", "docker.io", "docker-compose-v2")
    assert resolution_inputs(BuildOptions("ubuntu24.04"), "docker-compose-v2")[0] == (
        "nvidia-container-toolkit",
    )


def test_with_compose_is_refused_where_the_release_has_no_fitting_compose() -> None:
    from bundler import build
    from bundler.targets import list_targets, load_target

    without = [n for n in list_targets() if not load_target(n).compose]
    assert without == ["debian11", "ubuntu18.04"]  # Compose 1.25 and 1.17: no GPU reservations
    for name in without:
        with pytest.raises(GpubundleError) as err:
            build.checked_compose(load_target(name), BuildOptions(name, with_compose=True))
        assert "no Docker Compose that reads GPU reservations" in err.value.message
        assert "ubuntu24.04" in (err.value.hint or "")  # the targets that have one are named
        build.checked_compose(load_target(name), BuildOptions(name))
    target = load_target("debian12")
    assert target.compose == "docker-compose"
    build.checked_compose(target, BuildOptions("debian12", with_compose=True))
