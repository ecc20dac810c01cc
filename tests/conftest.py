"""Shared fixtures: repo paths, the shared NVIDIA fixtures, and tier skips."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import nvidia_fixtures as pinned_nvidia
from tests.support.mounts import detach_all, mounts_under

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache"


IN_CI = bool(os.environ.get("CI"))


def missing_part(reason: str) -> None:
    """Skip for a missing part here; in CI (CI=true) the same is a failure: tiers fail closed."""
    if IN_CI:
        pytest.fail(f"{reason} (CI must have every part)", pytrace=False)
    pytest.skip(reason)


def nvidia_fixtures_dir() -> Path:
    """NVIDIA's real published metadata (tests/support/nvidia_fixtures.py says from where)."""
    found, why = pinned_nvidia.locate()
    if found is None:
        missing_part(
            "NVIDIA's published metadata is not here: " + "; ".join(why) + ". Run `make "
            "fixtures` (it fetches them by pinned hash), or put ../shared/fixtures/nvidia "
            "beside the checkout"
        )
        raise AssertionError("unreachable")  # missing_part raises
    return found


@pytest.fixture(scope="session")
def nvidia_fixtures() -> Path:
    return nvidia_fixtures_dir()


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    CACHE_DIR.mkdir(exist_ok=True)
    return CACHE_DIR


@pytest.fixture
def tmp_path(tmp_path: Path) -> Iterator[Path]:
    """pytest's ``tmp_path``, checked to hold no mount when the test ends.

    pyproject.toml has pytest delete a passing test's directory (roots and bundles of a
    few hundred MB each would otherwise pile up to tens of GB in one run); a delete that
    walks into a bind mount left behind would delete the host's files. Anything left is
    detached first, and the test fails for leaving it.
    """
    yield tmp_path
    left = mounts_under(tmp_path)
    if left:
        detach_all(left)
        raise AssertionError(f"the test left mounted under {tmp_path}: {left} (now detached)")


# Below this much free space an integration test is not started: it would fail for want
# of space in a way that names something else (and a full disk also swallows pytest's
# own report). A root copy, a bundle and an image each take a few hundred MB.
LEAST_FREE_BYTES = 3 * 1024**3


def pytest_runtest_setup(item: pytest.Item) -> None:
    if "integration" not in item.keywords:
        return
    for where in (Path(tempfile.gettempdir()), REPO_ROOT):
        free = shutil.disk_usage(where).free
        if free < LEAST_FREE_BYTES:
            pytest.fail(
                f"only {free / 1024**3:.1f} GiB free where {where} is; integration tests need "
                f"{LEAST_FREE_BYTES // 1024**3} GiB at least: free space there (`du -sh "
                f"/tmp/pytest-of-*` shows earlier runs' leftovers) and run again",
                pytrace=False,
            )


SHARED_DOCKERD_GROUP = "shared-dockerd"


def xdist_group_of(item: pytest.Item) -> str:
    """The unit of work a pytest-xdist worker takes whole (``make test`` runs two workers,
    ``--dist loadgroup``): every test marked ``docker`` in one group, since they share the
    one dockerd and registry (and restart or reconfigure it); every other module in its
    own, so its module-scoped fixtures (built bundles, roots) are made once."""
    if "docker" in item.keywords:
        return SHARED_DOCKERD_GROUP
    return item.nodeid.split("::", 1)[0]


# tryfirst: pytest-xdist's worker reads the xdist_group markers in its own
# collection_modifyitems, which pluggy would otherwise call before this conftest's.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    is_root = os.geteuid() == 0
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group_of(item)))
        if "root" in item.keywords and not is_root:
            item.add_marker(pytest.mark.skip(reason="needs root"))
        if (
            "gpu" in item.keywords
            and shutil.which("nvidia-smi") is None
            and not Path("/usr/local/nvidia/bin/nvidia-smi").exists()
        ):
            item.add_marker(pytest.mark.skip(reason="no NVIDIA GPU/driver on this machine"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI a skipped test fails: a missing part must not make a tier vanish silently.

    Only tests marked ``gpu`` may skip there (CI machines have no GPU; the GPU host
    runs them), and expected failures (xfail) keep their meaning.
    """
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if IN_CI and report.skipped and not hasattr(report, "wasxfail") and "gpu" not in item.keywords:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every part must be present: {reason}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a selected tier that ran nothing fails (pytest's own code 5 would pass .ci/run)."""
    if IN_CI and session.testscollected == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
