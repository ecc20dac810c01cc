"""``gpubundle diff`` of two real bundles: the real ``gpubundle build`` of toolkit 1.17.8-1
and of 1.20.1-1 for Debian 12 (its minbase root's dpkg status), from the stand-in NVIDIA
repository and the Debian archive; both verified, the toolkit family upgraded, every
other package accounted for, and each bundle's SBOM naming its own versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import testkeys
from tests.support.installbundles import HostBundle, build_target_bundle, gpubundle, ok_document
from tests.support.rootfiles import FAMILY, INCLUDE
from tests.support.roots import minbase_status
from tests.support.standin_served import ServedStandin

pytestmark = [pytest.mark.integration, pytest.mark.archive]

DISTRO = "debian12"


def build(tmp: Path, key: testkeys.TestKey, standin: ServedStandin, version: str) -> HostBundle:
    return build_target_bundle(
        tmp / version, key, standin.url, standin.armored_key, distro=DISTRO,
        target_status=minbase_status(DISTRO, INCLUDE), toolkit_version=version,
    )  # fmt: skip


def test_diff_of_two_real_bundles(tmp_path: Path, standin_repo: ServedStandin) -> None:
    key = testkeys.make_key(tmp_path / "gnupg", name="gpubundle diff")
    old, new = (
        build(tmp_path, key, standin_repo, "1.17.8-1"),
        build(tmp_path, key, standin_repo, "1.20.1-1"),
    )

    doc = ok_document(
        gpubundle("diff", str(old.path), str(new.path), "--trust", key.fingerprint, "--json")
    )
    assert (doc["old_toolkit"], doc["new_toolkit"]) == ("1.17.8-1", "1.20.1-1")
    changes = {c["name"]: c for c in doc["packages"]}
    for name in FAMILY:
        assert changes[name] == {
            "kind": "upgraded",
            "name": name,
            "old": "1.17.8-1",
            "new": "1.20.1-1",
        }
    # Every package of either bundle is a change or counted unchanged, none twice.
    names = set(old.packages) | set(new.packages)
    assert len(changes) + doc["unchanged_packages"] == len(names)
    for name, change in changes.items():
        assert change["old"] == old.packages.get(name, "") and change["new"] == new.packages.get(
            name, ""
        )
    assert doc["images"] == []  # --no-images for both

    table = gpubundle("diff", str(old.path), str(new.path), "--trust", key.fingerprint)
    assert table.returncode == 0, table.stderr
    assert "nvidia-container-toolkit" in table.stdout and "upgraded" in table.stdout

    # Reversed, the family goes down.
    back = ok_document(
        gpubundle("diff", str(new.path), str(old.path), "--trust", key.fingerprint, "--json")
    )
    assert {c["name"]: c["kind"] for c in back["packages"]}[
        "nvidia-container-toolkit"
    ] == "downgraded"

    # Each bundle's SBOM names its own toolkit version, and neither has a known vulnerability.
    for bundle in (old, new):
        printed = gpubundle("sbom", str(bundle.path), "--trust", key.fingerprint)
        assert printed.returncode == 0, printed.stderr
        sbom = json.loads(printed.stdout)
        [toolkit] = [c for c in sbom["components"] if c["name"] == "nvidia-container-toolkit"]
        assert toolkit["version"] == bundle.manifest.toolkit_version
        assert sbom.get("vulnerabilities", []) == []
