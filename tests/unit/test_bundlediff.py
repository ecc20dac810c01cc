"""``gpubundle diff OLD NEW``: packages added, removed, upgraded and downgraded by dpkg's
order, images changed by digest; both bundles verified first, a table or ``--json``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from installer.bundlediff import Change, diff
from installer.cmd_diff import diff_command
from installer.manifest import ImagePin
from tests.support import testkeys
from tests.support.bundles import DebSpec, flip_byte, make_test_bundle
from tests.support.manifests import VERIFY, make_manifest

FAMILY = ("nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container1")


def family(version: str, **more: str) -> dict[str, str]:
    return {**dict.fromkeys(FAMILY, version), **more}


def test_packages_added_removed_upgraded_downgraded() -> None:
    old = make_manifest(family("1.17.8-1", libfoo="1.0-1", libgone="2.0-1"))
    new = make_manifest(family("1.20.1-1", libfoo="1.0-1~rebuild1", libnew="0.1-1"))
    changes = diff(old, new)
    assert (changes.old_toolkit, changes.new_toolkit) == ("1.17.8-1", "1.20.1-1")
    assert changes.packages == (
        Change("downgraded", "libfoo", "1.0-1", "1.0-1~rebuild1"),  # ~ sorts before
        Change("removed", "libgone", "2.0-1", ""),
        Change("added", "libnew", "", "0.1-1"),
        Change("upgraded", "libnvidia-container1", "1.17.8-1", "1.20.1-1"),
        Change("upgraded", "nvidia-container-toolkit", "1.17.8-1", "1.20.1-1"),
        Change("upgraded", "nvidia-container-toolkit-base", "1.17.8-1", "1.20.1-1"),
    )
    assert changes.counts() == {"downgraded": 1, "removed": 1, "upgraded": 3, "added": 1}
    assert changes.unchanged_packages == 0 and changes.images == ()


def test_same_bundle_contents_is_an_empty_diff() -> None:
    changes = diff(make_manifest(), make_manifest())
    assert changes.empty and changes.unchanged_packages == 4 and changes.rows() == []


def test_images_added_removed_and_changed_by_digest() -> None:
    cuda = ImagePin("nvcr.io/nvidia/cuda:12.4.1", "sha256:" + "a" * 64, "sha256:" + "b" * 64)
    rebuilt = dataclasses.replace(VERIFY, digest="sha256:" + "9" * 64)
    old = make_manifest(images=(VERIFY, cuda))
    new = make_manifest(images=(rebuilt,))
    assert diff(old, new).images == (
        Change("changed", VERIFY.ref, VERIFY.digest, rebuilt.digest),
        Change("removed", cuda.ref, cuda.digest, ""),
    )
    assert diff(new, old).images[1] == Change("added", cuda.ref, "", cuda.digest)


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> testkeys.TestKey:
    return testkeys.make_key(tmp_path_factory.mktemp("gnupg"))


def bundles(tmp: Path, key: testkeys.TestKey, mutate_new: bool = False) -> tuple[Path, Path]:
    old = make_test_bundle(tmp / "old", key, debs=(DebSpec("gpubundle-test-tool", "1.0-1"),
                                                   DebSpec("gpubundle-test-lib", "1.0-1")))  # fmt: skip
    new = make_test_bundle(
        tmp / "new",
        key,
        debs=(DebSpec("gpubundle-test-tool", "1.1-1"), DebSpec("gpubundle-test-extra", "0.1-1")),
        mutate=flip_byte("repo/Packages") if mutate_new else None,
    )
    return old.path, new.path


def test_diff_of_two_verified_bundles_as_json_and_table(
    tmp_path: Path, key: testkeys.TestKey
) -> None:
    old, new = bundles(tmp_path, key)
    result = CliRunner().invoke(
        diff_command, [str(old), str(new), "--trust", key.fingerprint, "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True
    assert [(c["kind"], c["name"], c["old"], c["new"]) for c in doc["packages"]] == [
        ("added", "gpubundle-test-extra", "", "0.1-1"),
        ("removed", "gpubundle-test-lib", "1.0-1", ""),
        ("upgraded", "gpubundle-test-tool", "1.0-1", "1.1-1"),
    ]
    table = CliRunner().invoke(diff_command, [str(old), str(new), "--trust", key.fingerprint])
    assert table.exit_code == 0, table.output
    assert "upgraded" in table.stdout and "gpubundle-test-tool" in table.stdout
    assert "packages: 1 added, 1 removed, 1 upgraded; 0 unchanged" in table.stdout


def test_a_bundle_that_fails_verification_gives_no_diff(
    tmp_path: Path, key: testkeys.TestKey
) -> None:
    old, new = bundles(tmp_path, key, mutate_new=True)
    result = CliRunner().invoke(
        diff_command, [str(old), str(new), "--trust", key.fingerprint, "--json"]
    )
    assert result.exit_code == 3
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and "packages" not in doc
