"""The local apt source the installer writes, read by each release's own apt.

In the minbase root of every release (apt 1.6 on Ubuntu 18.04 … apt 3.0 with sqv and no
gpgv on Debian 13, apt 3.2 with gpgv on Ubuntu 26.04), the installer's own source line
(``installer.aptlocal.sources_line``: one line, ``signed-by=`` a binary keyring) and
apt options (``apt_options``: that list only, no sources.list.d): ``apt-get update``
takes the signed flat repository without a warning and plans from it; a tampered
InRelease and a repository signed by another key are refused, and the installer's
error for that failure tells the user it was the signature, whatever words this apt
and its verifier use.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer.aptlocal import apt_failure, apt_options, sources_line
from installer.openpgp import dearmor
from tests.support.bundles import DebSpec, write_repo
from tests.support.roots import DISTROS, debootstrap_root
from tests.support.testkeys import make_key

pytestmark = [pytest.mark.integration, pytest.mark.root, pytest.mark.archive]

DROP = Path("/opt/gpubundle-test")  # inside the root
SIGNATURE_HINT = "apt rejected the local repository's signature"


@pytest.fixture(scope="module", params=sorted(DISTROS))
def release(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The release's minbase root with a signed flat repository and the keys under DROP."""
    distro: str = request.param
    root = debootstrap_root(distro, dest=tmp_path_factory.mktemp(distro) / "root")
    drop = root / DROP.relative_to("/")
    key = make_key(tmp_path_factory.mktemp("signer"))
    write_repo(drop / "repo", key, [DebSpec("gpubundle-apt-tool", depends="gpubundle-apt-lib"),
                                    DebSpec("gpubundle-apt-lib")])  # fmt: skip
    (drop / "signer.gpg").write_bytes(dearmor(key.public_armored))
    other = make_key(tmp_path_factory.mktemp("other"))
    (drop / "other.gpg").write_bytes(dearmor(other.public_armored))
    yield root


def _apt(root: Path, keyring: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The root's own apt-get with the installer's source line and options."""
    sources = root / DROP.relative_to("/") / "gpubundle.list"
    sources.write_text(sources_line(DROP / "repo", DROP / keyring))
    argv = ["chroot", str(root), "apt-get", *args, *apt_options(DROP / "gpubundle.list")]
    return subprocess.run(
        argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
    )  # fmt: skip


def _clear_lists(root: Path) -> None:
    for path in (root / "var/lib/apt/lists").glob("*gpubundle-test*"):
        path.unlink()


def test_the_installers_source_is_read(release: Path) -> None:
    _clear_lists(release)
    update = _apt(release, "signer.gpg", "update")
    assert update.returncode == 0, update.stdout + update.stderr
    assert "W:" not in update.stderr and "E:" not in update.stderr, update.stderr
    plan = _apt(release, "signer.gpg", "install", "-s", "gpubundle-apt-tool")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "Inst gpubundle-apt-lib (1.0-1" in plan.stdout
    assert "Inst gpubundle-apt-tool (1.0-1" in plan.stdout


def test_another_key_is_refused_as_a_signature_failure(release: Path) -> None:
    _clear_lists(release)
    update = _apt(release, "other.gpg", "update")
    output = update.stdout + update.stderr
    assert update.returncode != 0, output
    error = apt_failure("apt-get update", "apt-get", update.returncode, output, None)
    assert error.hint.startswith(SIGNATURE_HINT), output


def test_a_tampered_inrelease_is_refused_as_a_signature_failure(release: Path) -> None:
    _clear_lists(release)
    inrelease = release / DROP.relative_to("/") / "repo" / "InRelease"
    good = inrelease.read_bytes()
    inrelease.write_bytes(good.replace(b"Label: gpubundle", b"Label: gpubundlf"))
    try:
        update = _apt(release, "signer.gpg", "update")
    finally:
        inrelease.write_bytes(good)
    output = update.stdout + update.stderr
    assert update.returncode != 0, output
    error = apt_failure("apt-get update", "apt-get", update.returncode, output, None)
    assert error.hint.startswith(SIGNATURE_HINT), output
