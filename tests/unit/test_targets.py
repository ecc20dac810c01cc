"""bundler.targets and the shipped manifests/*.json."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from bundler.cli import main
from bundler.schemacheck import validate
from bundler.targets import apply_overrides, find_manifests_dir, list_targets, load_target
from installer.errors import GpubundleError
from tests.conftest import REPO_ROOT

MANIFESTS = REPO_ROOT / "manifests"
EXPECTED = {
    # name: (codename, stock python3, the python3.X the installer carries)
    "ubuntu18.04": ("bionic", "3.6", "3.8"),
    "ubuntu20.04": ("focal", "3.8", "3.8"),
    "ubuntu22.04": ("jammy", "3.10", "3.10"),
    "ubuntu24.04": ("noble", "3.12", "3.12"),
    "ubuntu26.04": ("resolute", "3.14", "3.14"),
    "debian11": ("bullseye", "3.9", "3.9"),
    "debian12": ("bookworm", "3.11", "3.11"),
    "debian13": ("trixie", "3.13", "3.13"),
}
NVIDIA_FPR = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"


def key_fingerprints(path: Path, tmp: Path) -> set[str]:
    home = tmp / "gnupg"
    home.mkdir(mode=0o700, exist_ok=True)
    out = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--with-colons", "--show-keys", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found, want_primary = set(), False
    for line in out.splitlines():
        if line.startswith("pub:"):
            want_primary = True
        elif line.startswith("fpr:") and want_primary:
            found.add(line.split(":")[9])
            want_primary = False
    return found


def test_all_targets_load_with_their_facts() -> None:
    assert list_targets(manifests_dir=MANIFESTS) == sorted(EXPECTED)
    for name, (codename, python, carried) in EXPECTED.items():
        target = load_target(name, manifests_dir=MANIFESTS)
        assert (target.codename, target.python) == (codename, python)
        assert target.carried_python == carried
        assert target.arches == ("amd64", "arm64")
        ids = [s.id for s in target.sources]
        assert ids[-1] == "nvidia" and ids[0] == target.distro_id
        assert target.source(f"{target.distro_id}-security").suite == f"{codename}-security"


def test_a_stock_python_older_than_38_is_replaced_by_the_carried_38() -> None:
    target = load_target("ubuntu20.04", manifests_dir=MANIFESTS)
    assert dataclasses.replace(target, python="3.6").carried_python == "3.8"
    assert dataclasses.replace(target, python="3.14").carried_python == "3.14"


def test_urls_per_arch() -> None:
    target = load_target("ubuntu22.04", manifests_dir=MANIFESTS)
    ubuntu, nvidia = target.source("ubuntu"), target.source("nvidia")
    assert ubuntu.url_for("amd64") == "http://archive.ubuntu.com/ubuntu"
    assert ubuntu.url_for("arm64") == "http://ports.ubuntu.com/ubuntu-ports"
    assert nvidia.flat and not ubuntu.flat
    assert (
        nvidia.url_for("arm64") == "https://nvidia.github.io/libnvidia-container/stable/deb/arm64"
    )
    # NVIDIA's key ships with gpubundle like the distributions' keys: a build never fetches it.
    assert nvidia.key.fingerprints == (NVIDIA_FPR,) and nvidia.key.url == ""
    assert nvidia.key.file is not None and nvidia.key.file.name == "nvidia.asc"
    with pytest.raises(GpubundleError, match="i386"):
        target.check_arch("i386")


def test_ubuntu_arm64_is_on_ports() -> None:
    """Every Ubuntu's arm64 is on ports.ubuntu.com, 26.04's too: archive.ubuntu.com lists
    arm64 in resolute's Release, but its resolute-updates/-security arm64 indices are stale
    (sizes that differ from the signed Release, no by-hash files)."""
    for name in ("ubuntu18.04", "ubuntu20.04", "ubuntu22.04", "ubuntu24.04", "ubuntu26.04"):
        for source in load_target(name, manifests_dir=MANIFESTS).sources[:3]:
            assert source.url_for("arm64") == "http://ports.ubuntu.com/ubuntu-ports", name
            assert source.url_for("amd64") != source.url_for("arm64")


def test_shipped_key_files_hold_exactly_the_pinned_keys(tmp_path: Path) -> None:
    """Every pinned fingerprint (distros and NVIDIA) is in its key file, and the files hold nothing unused."""
    pinned: dict[Path, set[str]] = {}
    for name in EXPECTED:
        for source in load_target(name, manifests_dir=MANIFESTS).sources:
            if source.key.file is not None:
                pinned.setdefault(source.key.file, set()).update(source.key.fingerprints)
    assert {p.name for p in pinned} == {"ubuntu-archive.asc", "debian-archive.asc", "nvidia.asc"}
    for path, fingerprints in pinned.items():
        assert key_fingerprints(path, tmp_path) == fingerprints
    assert sorted(p.name for p in (MANIFESTS / "keys").iterdir()) == sorted(p.name for p in pinned)


def test_manifests_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GPUBUNDLE_MANIFESTS", str(tmp_path))
    with pytest.raises(GpubundleError, match=r"no schema\.json"):
        find_manifests_dir()
    shutil.copy(MANIFESTS / "schema.json", tmp_path)
    shutil.copy(MANIFESTS / "debian12.json", tmp_path)
    assert find_manifests_dir() == tmp_path
    assert list_targets() == ["debian12"]
    monkeypatch.delenv("GPUBUNDLE_MANIFESTS")
    assert (find_manifests_dir() / "schema.json").is_file()


def test_unknown_target_lists_the_known_ones() -> None:
    with pytest.raises(GpubundleError) as err:
        load_target("ubuntu16.04", manifests_dir=MANIFESTS)
    assert "ubuntu22.04" in err.value.hint and "debian12" in err.value.hint


def broken_copy(tmp_path: Path, edit: dict[str, object]) -> Path:
    shutil.copytree(MANIFESTS, tmp_path / "m")
    path = tmp_path / "m" / "ubuntu22.04.json"
    data = json.loads(path.read_text())
    data["sources"][0]["key"].pop("file")
    data["sources"][1]["components"] = "main"
    data.update(edit)
    path.write_text(json.dumps(data))
    return tmp_path / "m"


def test_schema_errors_name_the_file_and_every_field_path(tmp_path: Path) -> None:
    directory = broken_copy(tmp_path, {"python": 3.1, "colour": "red"})
    with pytest.raises(GpubundleError) as err:
        load_target("ubuntu22.04", manifests_dir=directory)
    assert str(directory / "ubuntu22.04.json") in err.value.message
    details = "\n".join(err.value.details)
    assert "$.python: expected string, got number" in details
    assert "$.colour: unknown field" in details
    assert "$.sources[1].components: expected array, got string" in details
    assert "$.sources[0].key: must match exactly one of" in details


def test_validator_checks_what_the_schema_says() -> None:
    schema = {"type": "object", "required": ["a"], "properties": {"a": {"enum": [1]}}}
    assert validate({"a": 1}, schema) == []
    assert validate({"a": True}, schema) == ["$.a: true is not one of 1"]
    assert validate([], schema) == ["$: expected object, got array"]
    with pytest.raises(ValueError, match="maxItems"):
        validate([], {"maxItems": 1})


def test_overrides() -> None:
    target = load_target("ubuntu22.04", manifests_dir=MANIFESTS)
    key = MANIFESTS / "keys" / "ubuntu-archive.asc"
    changed = apply_overrides(target, {"ubuntu": "http://mirror.local/ubuntu/"}, {"nvidia": key})
    assert changed.source("ubuntu").url_for("arm64") == "http://mirror.local/ubuntu"
    nvidia_key = changed.source("nvidia").key
    assert nvidia_key.file == key.resolve() and not nvidia_key.url
    assert "F6ECB3762474EDA9D21B7022871920D1991BC93C" in nvidia_key.fingerprints
    assert changed.source("ubuntu-updates") == target.source("ubuntu-updates")
    with pytest.raises(GpubundleError) as err:
        apply_overrides(target, {"universe": "http://x"}, {})
    assert "ubuntu-security" in err.value.hint and "nvidia" in err.value.hint
    with pytest.raises(GpubundleError, match="no such file"):
        apply_overrides(target, {}, {"nvidia": MANIFESTS / "missing.asc"})
    with pytest.raises(GpubundleError, match="not an http"):
        apply_overrides(target, {"nvidia": "ftp://x"}, {})


def test_distros_command_json_and_table() -> None:
    result = CliRunner().invoke(main, ["distros", "--json"])
    assert result.exit_code == 0, result.output
    targets = {t["name"]: t for t in json.loads(result.stdout)["targets"]}
    assert set(targets) == set(EXPECTED)
    focal = targets["ubuntu20.04"]
    assert (focal["python"], focal["carried_python"]) == ("3.8", "3.8")
    assert all(t["carried_python"] for t in targets.values())  # every target is installable
    ubuntu = focal["sources"][0]
    assert ubuntu["urls"]["arm64"] == "http://ports.ubuntu.com/ubuntu-ports"
    table = CliRunner().invoke(main, ["distros", "--sources"])
    assert table.exit_code == 0
    assert "python3.9" in table.output and "ubuntu24.04 nvidia: amd64=" in table.output


def test_distros_command_reports_a_broken_manifests_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUBUNDLE_MANIFESTS", "/nonexistent")
    result = CliRunner().invoke(main, ["distros"])
    assert result.exit_code == 1 and "GPUBUNDLE_MANIFESTS" in result.output
