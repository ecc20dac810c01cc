"""The bundle's SBOM: CycloneDX 1.6 JSON valid against the CycloneDX schema, every .deb
with its purl, sha256 and source repository, every image with its digest, the toolkit's
known vulnerabilities as VEX entries, the same bytes for the same inputs; and
``gpubundle sbom`` prints it only from a bundle that verifies completely."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from bundler.plan import BUILTIN, REGISTRY, BuildPlan, PlannedImage, PlannedPackage
from bundler.sbom import make_sbom, purl
from installer import advisories, layout
from installer.cmd_sbom import sbom
from installer.manifest import ImagePin, SourceRecord
from tests.support import testkeys
from tests.support.bundles import flip_byte, make_test_bundle

EPOCH = 1_700_000_000
NVIDIA = SourceRecord(
    "nvidia", "https://nvidia.github.io/libnvidia-container/stable/deb/amd64", "/", (), ()
)
UBUNTU = SourceRecord("ubuntu-main", "http://archive.ubuntu.com/ubuntu", "jammy", ("main",), ())


def package(name: str, version: str, source: str, n: int) -> PlannedPackage:
    base = NVIDIA.url if source == "nvidia" else UBUNTU.url
    filename = f"{name}_{version.split(':')[-1]}_amd64.deb"
    return PlannedPackage(name, version, "amd64", 1000 + n, f"{n:064x}", filename, source,
                          f"{base}/{filename}")  # fmt: skip


PACKAGES = (
    package("libc6", "2.35-0ubuntu3.8", "ubuntu-main", 1),
    package("libnvidia-container1", "1.16.1-1", "nvidia", 2),
    package("nvidia-container-toolkit", "1.16.1-1", "nvidia", 3),
)
# libc6 is in the bundle and in the image, as in every full-closure build.
IMAGE_DEBS = (package("busybox-static", "1:1.36.1-6ubuntu3.1", "ubuntu-main", 4), PACKAGES[0])
VERIFY = ImagePin("gpubundle/verify:ubuntu22.04-amd64", "sha256:" + "b" * 64, "sha256:" + "c" * 64,
                  "", layout.VERIFY_IMAGE_ARCHIVE)  # fmt: skip
CUDA = ImagePin("nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04", "sha256:" + "d" * 64,
                "sha256:" + "e" * 64, "cuda>=12.4", layout.IMAGES_ARCHIVE)  # fmt: skip
PLAN = BuildPlan(
    distro="ubuntu22.04",
    arch="amd64",
    toolkit_version="1.16.1-1",
    requested=("nvidia-container-toolkit",),
    with_docker=False,
    sources=(NVIDIA, UBUNTU),
    packages=PACKAGES,
    images=(
        PlannedImage(VERIFY.ref, BUILTIN, VERIFY.archive, IMAGE_DEBS),
        PlannedImage(CUDA.ref, REGISTRY, CUDA.archive),
    ),
)


def build_sbom(plan: BuildPlan = PLAN, images: tuple[ImagePin, ...] = (VERIFY, CUDA)) -> bytes:
    found = advisories.load_table().affecting(plan.toolkit_version)
    return make_sbom(plan, "ubuntu", "22.04", images, found, EPOCH)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(build_sbom())
    return data


def test_the_sbom_is_valid_cyclonedx_1_6() -> None:
    raw = build_sbom().decode()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(raw) is None
    # The validator is real: a broken document fails it.
    broken = json.loads(raw)
    broken["components"][0]["hashes"][0]["alg"] = "SHA-257"
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(broken)) is not None


def test_every_deb_has_its_purl_hash_and_repository(document: dict[str, Any]) -> None:
    by_name = {c["name"]: c for c in document["components"] if c["type"] != "container"}
    assert set(by_name) == {p.name for p in PLAN.packages}
    for p in PLAN.packages:
        component = by_name[p.name]
        expected = f"pkg:deb/ubuntu/{p.name}@{p.version}?arch=amd64&distro=ubuntu-22.04"
        assert component["purl"] == expected == purl(p, "ubuntu", "22.04")
        assert component["version"] == p.version
        assert component["hashes"] == [{"alg": "SHA-256", "content": p.sha256}]
        assert component["externalReferences"] == [{"type": "distribution", "url": p.url}]
        props = {x["name"]: x["value"] for x in component["properties"]}
        repo = NVIDIA.url if p.source == "nvidia" else UBUNTU.url
        assert props == {"gpubundle:source": p.source, "gpubundle:repository": repo}


def test_debian_purls_name_debian() -> None:
    p = PACKAGES[0]
    assert (
        purl(p, "debian", "12") == f"pkg:deb/debian/libc6@{p.version}?arch=amd64&distro=debian-12"
    )
    epoch = IMAGE_DEBS[0]  # an epoch stays part of the version, and reads back whole
    written = purl(epoch, "ubuntu", "22.04")
    assert written.startswith("pkg:deb/ubuntu/busybox-static@1:1.36.1-6ubuntu3.1?")
    assert PackageURL.from_string(written).version == epoch.version


def test_every_image_has_its_digest_and_the_builtin_one_its_debs(document: dict[str, Any]) -> None:
    images = {c["name"]: c for c in document["components"] if c["type"] == "container"}
    assert set(images) == {VERIFY.ref, CUDA.ref}
    for pin in (VERIFY, CUDA):
        assert images[pin.ref]["version"] == pin.digest
        assert images[pin.ref]["hashes"] == [{"alg": "SHA-256", "content": pin.digest[7:]}]
    inside = images[VERIFY.ref]["components"]
    assert [c["purl"] for c in inside] == [purl(d, "ubuntu", "22.04") for d in IMAGE_DEBS]
    assert inside[1]["bom-ref"] == f"image:{VERIFY.ref}/" + purl(PACKAGES[0], "ubuntu", "22.04")
    assert "components" not in images[CUDA.ref]


def test_the_toolkit_s_known_vulnerabilities_are_vex_entries(document: dict[str, Any]) -> None:
    table = advisories.load_table()
    expected = table.affecting("1.16.1-1")
    vex = document["vulnerabilities"]
    assert {v["id"] for v in vex} == {a.id for a in expected} and len(vex) == len(expected)
    toolkit = purl(PACKAGES[2], "ubuntu", "22.04")
    by_id = {v["id"]: v for v in vex}
    for a in expected:
        v = by_id[a.id]
        assert v["affects"] == [{"ref": toolkit}]
        assert v["source"] == {"name": "NVIDIA", "url": a.bulletin}
        assert v["ratings"] == [{"method": "CVSSv31", "score": a.cvss, "severity": a.severity}]
        assert v["analysis"]["state"] == "in_triage"
        assert a.fixed in v["recommendation"]


def test_same_inputs_same_bytes_other_inputs_another_serial() -> None:
    first, again = build_sbom(), build_sbom()
    assert first == again
    refs = [c["bom-ref"] for c in json.loads(first)["components"]]
    refs += [p["bom-ref"] for c in json.loads(first)["components"] for p in c.get("components", [])]
    assert not [r for r in refs if r.startswith("BomRef.")]  # none invented: all ours, unique
    assert len(refs) == len(set(refs))
    other = json.loads(build_sbom(images=(VERIFY,)))
    assert other["serialNumber"] != json.loads(first)["serialNumber"]
    assert json.loads(first)["metadata"]["timestamp"] == "2023-11-14T22:13:20+00:00"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("gnupg"))


def run_sbom(bundle: Path, key: testkeys.TestKey) -> Any:
    return CliRunner().invoke(sbom, [str(bundle), "--trust", key.fingerprint])


def test_sbom_prints_the_member_of_a_verified_bundle(tmp_path: Path, key: testkeys.TestKey) -> None:
    raw = build_sbom()
    bundle = make_test_bundle(tmp_path, key, files={layout.SBOM: raw})
    assert layout.SBOM in bundle.manifest.file_map()  # so the signature covers it
    result = run_sbom(bundle.path, key)
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == raw


@pytest.mark.parametrize("member", [layout.SBOM, "repo/Packages"])
def test_a_tampered_bundle_prints_no_sbom(
    member: str, tmp_path: Path, key: testkeys.TestKey
) -> None:
    bundle = make_test_bundle(
        tmp_path, key, files={layout.SBOM: build_sbom()}, mutate=flip_byte(member)
    )
    result = run_sbom(bundle.path, key)
    assert result.exit_code == 3, result.output
    assert result.stdout_bytes == b""
    assert f"{member}: sha256" in result.stderr


def test_a_bundle_without_an_sbom_says_so(tmp_path: Path, key: testkeys.TestKey) -> None:
    bundle = make_test_bundle(tmp_path, key)
    result = run_sbom(bundle.path, key)
    assert result.exit_code == 1
    assert "holds no SBOM" in result.stderr and result.stdout_bytes == b""
