"""``gpubundle build --split-size 1M`` end to end, then verify from the index, from the first
part and with the installer pyz on stock python3.

Builds against the stand-in NVIDIA repository and the real Ubuntu archive (as
tests/integration/test_build.py does), without images so no Docker is needed.
The parts must each be at most 1 MiB, their index signed by the build key, and
the unsplit bundle must not be left on disk.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from installer import layout
from installer.parts import parse_index
from tests.support import testkeys
from tests.support.buildcli import build, source_args
from tests.support.standin_served import ServedStandin

pytestmark = [pytest.mark.integration, pytest.mark.archive]

MIB = 1 << 20


@dataclass(frozen=True)
class SplitBuilt:
    key: testkeys.TestKey
    result: dict[str, Any]
    out: Path  # the output directory
    index: Path


@pytest.fixture(scope="module")
def split_built(
    tmp_path_factory: pytest.TempPathFactory, standin_repo: ServedStandin
) -> SplitBuilt:
    tmp = tmp_path_factory.mktemp("split-build")
    key = testkeys.make_key(tmp / "signer", name="gpubundle split build test signer")
    out = tmp / "out"
    proc = build(
        *source_args(standin_repo, tmp / "standin-nvidia.asc"),
        "--no-images", "--split-size", "1M",
        "--sign-key", key.fingerprint, "--gnupghome", str(key.gnupghome),
        "--output", str(out / "ubuntu22.04.tar.zst"), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    return SplitBuilt(key, result, out, Path(result["bundle"]))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from bundler.cli import main; main()", *args],
        capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=600,
    )  # fmt: skip


def test_build_writes_parts_index_and_installer_only(split_built: SplitBuilt) -> None:
    index = parse_index(split_built.index.read_bytes())
    assert split_built.index.name == "ubuntu22.04.parts.json"
    assert len(index.parts) >= 2
    names = sorted(p.name for p in split_built.out.iterdir())
    assert names == sorted(
        [p.name for p in index.parts]
        + ["ubuntu22.04.parts.json", "ubuntu22.04.parts.json.asc"]
        + ["gpubundle-installer.pyz", "gpubundle-installer.pyz.asc"]
    )  # no unsplit ubuntu22.04.tar.zst, no staging left
    whole = hashlib.sha256()
    for entry in index.parts:
        data = (split_built.out / entry.name).read_bytes()
        assert len(data) == entry.size <= MIB
        assert hashlib.sha256(data).hexdigest() == entry.sha256
        whole.update(data)
    assert whole.hexdigest() == index.sha256 == split_built.result["bundle_sha256"]
    assert index.size == split_built.result["bundle_size"]
    assert split_built.result["parts"] == [str(split_built.out / p.name) for p in index.parts]
    assert split_built.result["command"].endswith(
        f"install ubuntu22.04.parts.json --trust {split_built.key.fingerprint}"
    )


def test_index_signature_verifies_with_plain_gpg(split_built: SplitBuilt, tmp_path: Path) -> None:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch"]
    key = tmp_path / "signer.asc"
    key.write_text(json.loads(split_built.index.read_bytes())["signer_key"])
    subprocess.run([*gpg, "--import", str(key)], check=True, capture_output=True)
    checked = subprocess.run(
        [*gpg, "--status-fd", "1", "--verify", f"{split_built.index}.asc", str(split_built.index)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert f"VALIDSIG {split_built.key.fingerprint}" in checked.stdout


@pytest.mark.parametrize("named", ["ubuntu22.04.parts.json", "ubuntu22.04.tar.zst.part001"])
def test_gpubundle_verify_takes_index_or_first_part(split_built: SplitBuilt, named: str) -> None:
    proc = _cli("verify", str(split_built.out / named), "--trust", split_built.key.fingerprint,
                "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["ok"] is True and info["signer"] == split_built.key.fingerprint
    assert any(p.startswith("nvidia-container-toolkit=") for p in info["packages"])


def test_installer_pyz_verifies_the_parts(split_built: SplitBuilt) -> None:
    pyz = split_built.out / "gpubundle-installer.pyz"
    for named in ("ubuntu22.04.parts.json", "ubuntu22.04.tar.zst.part001"):
        proc = subprocess.run(
            ["python3", str(pyz), "verify", named, "--trust", split_built.key.fingerprint],
            cwd=split_built.out, capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "verified" in proc.stdout  # the result, for people: stdout


def test_installer_pyz_names_the_damaged_part(split_built: SplitBuilt, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in split_built.out.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    part2 = copy / layout.part_name("ubuntu22.04.tar.zst", 2)
    data = bytearray(part2.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part2.write_bytes(bytes(data))
    proc = subprocess.run(
        ["python3", str(copy / "gpubundle-installer.pyz"), "verify", "ubuntu22.04.parts.json",
         "--trust", split_built.key.fingerprint, "--json"],
        cwd=copy, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    error = json.loads(proc.stdout)
    assert [line.split(":")[0] for line in error["details"]] == [part2.name]
