"""Path options that can never be written are usage errors (exit 2) naming the blocker."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundler.pathargs import blocking_file, check_dir_option, check_file_option
from installer.errors import ExitCode, GpubundleError


def test_a_file_on_the_way_blocks(tmp_path: Path) -> None:
    (tmp_path / "prof").write_text("a profile, not a directory")
    assert blocking_file(tmp_path / "prof/cache/x") == tmp_path / "prof"
    assert blocking_file(tmp_path / "new/cache") is None
    assert blocking_file(tmp_path / "prof") is None  # the path itself is not "on the way"


def test_cache_dir_under_a_file_is_exit_2_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "prof").write_text("")
    with pytest.raises(GpubundleError) as err:
        check_dir_option(tmp_path / "prof/cache", "--cache-dir")
    assert err.value.code == ExitCode.USAGE
    assert f"{tmp_path / 'prof'} is a file, not a directory" in err.value.message
    with pytest.raises(GpubundleError) as err:
        check_dir_option(tmp_path / "prof", "--cache-dir")
    assert err.value.code == ExitCode.USAGE and "is not a directory" in err.value.message
    check_dir_option(tmp_path / "new/deeper", "--cache-dir")  # to be created: fine
    assert not (tmp_path / "new").exists(), "checking creates nothing"


def test_output_must_name_a_file_in_a_possible_directory(tmp_path: Path) -> None:
    with pytest.raises(GpubundleError) as err:
        check_file_option(tmp_path, "--output")
    assert err.value.code == ExitCode.USAGE and "is a directory" in err.value.message
    (tmp_path / "f").write_text("")
    with pytest.raises(GpubundleError) as err:
        check_file_option(tmp_path / "f/bundle.tar.zst", "--output")
    assert err.value.code == ExitCode.USAGE
    check_file_option(tmp_path / "out/bundle.tar.zst", "--output")
