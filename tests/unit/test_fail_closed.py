"""Tiers fail closed in CI: a skipped test or a tier that ran nothing fails the run there.

Runs an inner pytest session (pytester) with the repository's own hooks, once as on a
developer machine and once as CI (CI=true), so the hooks themselves are what is tested.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import nvidia_fixtures as pinned_nvidia

pytest_plugins = ["pytester"]

HOOKS = """
from tests.conftest import pytest_runtest_makereport, pytest_sessionfinish  # noqa: F401
"""
TESTS = """
import pytest

def test_runs():
    pass

def test_needs_a_missing_part():
    pytest.skip("dockerd is not running")

@pytest.mark.gpu
def test_needs_a_gpu():
    pytest.skip("no NVIDIA GPU/driver on this machine")

@pytest.mark.xfail(reason="known")
def test_known_failure():
    assert False
"""


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: bool) -> pytest.RunResult:
    monkeypatch.setattr("tests.conftest.IN_CI", ci)
    pytester.makeconftest(HOOKS)
    pytester.makeini("[pytest]\nmarkers =\n    gpu: needs a GPU\n")
    pytester.makepyfile(test_tiers=TESTS)
    return pytester.runpytest_inprocess("-p", "no:cacheprovider")


def test_skips_pass_on_a_developer_machine(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(pytester, monkeypatch, ci=False)
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)


def test_in_ci_a_skip_fails_except_for_gpu_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(pytester, monkeypatch, ci=True)
    result.assert_outcomes(passed=1, failed=1, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(["*skipped in CI, where every part must be present*dockerd*"])


def test_in_ci_a_tier_that_ran_nothing_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tests.conftest.IN_CI", True)
    pytester.makeconftest(HOOKS)
    pytester.makepyfile(test_empty="")
    assert (
        pytester.runpytest_inprocess("-p", "no:cacheprovider").ret == pytest.ExitCode.TESTS_FAILED
    )


def _copy_fixtures(source: Path, dest: Path) -> Path:
    for pinned in pinned_nvidia.PINNED_FILES:
        (dest / pinned.path).parent.mkdir(parents=True, exist_ok=True)
        (dest / pinned.path).write_bytes((source / pinned.path).read_bytes())
    return dest


def test_nvidia_fixtures_are_found_only_when_every_pinned_file_matches(
    nvidia_fixtures: Path, tmp_path: Path
) -> None:
    copy = _copy_fixtures(nvidia_fixtures, tmp_path / "copy")
    assert pinned_nvidia.locate((copy,)) == (copy, [])
    packages = copy / "stable/deb/amd64/Packages"
    packages.write_bytes(packages.read_bytes().replace(b"1.20.1-1", b"1.20.9-1", 1))
    found, why = pinned_nvidia.locate((tmp_path / "absent", copy))
    assert found is None
    assert "absent/stable/deb/amd64/Packages: missing" in why[0]
    assert "Packages: not the pinned file" in why[1]


def test_fetch_takes_each_file_by_its_pinned_hash(nvidia_fixtures: Path, tmp_path: Path) -> None:
    """From a mirror of NVIDIA's published tree (file:// here: the unit tier opens no sockets)."""
    mirror = _copy_fixtures(nvidia_fixtures, tmp_path / "mirror")
    pinned_nvidia.fetch(tmp_path / "cache", mirror.as_uri())
    assert pinned_nvidia.problems(tmp_path / "cache") == []

    inrelease = mirror / "stable/deb/arm64/InRelease"
    inrelease.write_bytes(inrelease.read_bytes().replace(b"Codename", b"Codenane"))
    with pytest.raises(ValueError, match="arm64/InRelease: got 1477 bytes, sha256"):
        pinned_nvidia.fetch(tmp_path / "other", mirror.as_uri())
    assert not (tmp_path / "other/stable/deb/arm64/InRelease").exists()
