"""apt itself reads the bundle's local repository, signed-by the bundle key, in a private apt root."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from installer.openpgp import dearmor
from tests.support.bundles import DebSpec, write_repo
from tests.support.testkeys import make_key

pytestmark = [pytest.mark.integration, pytest.mark.root]


def _apt(root: Path, repo: Path, keyring: Path, *args: str) -> subprocess.CompletedProcess[str]:
    root.mkdir(exist_ok=True)
    sources = root / "sources.list"
    sources.write_text(f"deb [signed-by={keyring}] file:{repo}/ /\n")
    for sub in ("lists/partial", "cache/archives/partial"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    options = [
        f"Dir::Etc::sourcelist={sources}",
        "Dir::Etc::sourceparts=-",
        f"Dir::State::Lists={root / 'lists'}",
        f"Dir::Cache={root / 'cache'}",
        "APT::Sandbox::User=root",  # _apt cannot enter pytest's private tmp dirs
        "Debug::NoLocking=1",
    ]
    argv = ["apt-get", *args]
    for option in options:
        argv += ["-o", option]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


@pytest.fixture
def repo_setup(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not installed")
    key = make_key(tmp_path / "gnupg")
    repo = tmp_path / "repo"
    write_repo(
        repo,
        key,
        [DebSpec("gpubundle-apt-tool", depends="gpubundle-apt-lib"), DebSpec("gpubundle-apt-lib")],
    )
    keyring = tmp_path / "signer.gpg"
    keyring.write_bytes(dearmor(key.public_armored))
    return repo, keyring


def test_apt_installs_from_the_signed_local_repo(
    tmp_path: Path, repo_setup: tuple[Path, Path]
) -> None:
    repo, keyring = repo_setup
    update = _apt(tmp_path / "apt", repo, keyring, "update")
    assert update.returncode == 0, update.stderr
    assert "W:" not in update.stderr and "E:" not in update.stderr, update.stderr
    install = _apt(tmp_path / "apt", repo, keyring, "install", "-s", "gpubundle-apt-tool")
    assert install.returncode == 0, install.stdout + install.stderr
    assert "Inst gpubundle-apt-lib (1.0-1" in install.stdout
    assert "Inst gpubundle-apt-tool (1.0-1" in install.stdout


def test_apt_refuses_a_tampered_inrelease(tmp_path: Path, repo_setup: tuple[Path, Path]) -> None:
    repo, keyring = repo_setup
    inrelease = repo / "InRelease"
    inrelease.write_bytes(inrelease.read_bytes().replace(b"Label: gpubundle", b"Label: gpubundlf"))
    update = _apt(tmp_path / "apt", repo, keyring, "update")
    assert update.returncode != 0
    assert "BADSIG" in update.stdout + update.stderr
    install = _apt(tmp_path / "apt", repo, keyring, "install", "-s", "gpubundle-apt-tool")
    assert install.returncode != 0


def test_apt_refuses_a_repo_signed_by_another_key(
    tmp_path: Path, repo_setup: tuple[Path, Path]
) -> None:
    repo, _ = repo_setup
    other = tmp_path / "other.gpg"
    other.write_bytes(dearmor(make_key(tmp_path / "other").public_armored))
    update = _apt(tmp_path / "apt", repo, other, "update")
    assert update.returncode != 0
    assert "NO_PUBKEY" in update.stdout + update.stderr
