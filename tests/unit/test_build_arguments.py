"""``gpubundle build``: every bad argument exits 2 before any work (no network, no gpg run).

The unit tier opens no sockets, so a check that ran after the first download would fail
here differently (with exit 1 and a network error), not pass by accident.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bundler.cmd_build import build

BAD = [
    (["--distro", "nosuch", "--dry-run"], "unknown target 'nosuch'"),
    # --distro is checked before --sign-key: the first thing wrong on the line is named.
    (["--distro", "nosuch", "--sign-key", "XYZ"], "unknown target 'nosuch'"),
    (["--distro", "debian12", "--sign-key", "XYZ"], "--sign-key: not a full 40-hex-digit"),
    (["--distro", "debian12"], "no signing key given"),
    (["--distro", "debian12", "--arch", "s390x", "--dry-run"], "does not support architecture"),
    (["--distro", "debian12", "--mirror", "foo=http://x", "--dry-run"], "has no source 'foo'"),
    (["--distro", "debian12", "--mirror", "nvidia=ftp://x", "--dry-run"], "not an http://"),
    (["--distro", "debian12", "--mirror", "nvidia", "--dry-run"], "expected ID=URL"),
    (["--distro", "debian12", "--key", "nvidia=/nonexistent", "--dry-run"], "no such file"),
    (["--distro", "debian12", "--split-size", "abc", "--dry-run"], "is not a size"),
    (["--distro", "debian12", "--image", "x", "--no-images", "--dry-run"], "exclude each other"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_argument_exits_2_before_any_work(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GNUPGHOME", str(tmp_path / "no-gnupg"))
    cache = tmp_path / "cache"
    result = CliRunner().invoke(build, [*argv, "--json", "--cache-dir", str(cache)])
    assert result.exit_code == 2, result.output
    document = json.loads(result.stdout)  # --json: one document on stdout, even for errors
    assert message in document["message"]
    assert document["exit_code"] == 2
    assert not cache.exists()  # nothing fetched, nothing cached


def test_a_cache_dir_under_a_file_exits_2_before_any_work(tmp_path: Path) -> None:
    """``--cache-dir /tmp/prof/cache`` where /tmp/prof is a file: named, exit 2, no traceback
    (it was a NotADirectoryError after the network work)."""
    (tmp_path / "prof").write_text("not a directory")
    argv = ["--distro", "debian12", "--dry-run", "--json"]
    result = CliRunner().invoke(build, [*argv, "--cache-dir", str(tmp_path / "prof/cache")])
    assert result.exit_code == 2, result.output
    document = json.loads(result.stdout)
    assert f"{tmp_path / 'prof'} is a file, not a directory" in document["message"]
