"""``make test`` runs two pytest-xdist workers: every ``docker`` test on one of them (they
share one dockerd, and restart it), each other module whole on one.

An inner pytest session with two real workers and the repository's own hook
(tests/conftest.py ``pytest_collection_modifyitems``): each test writes which worker ran
it. Without ``tryfirst`` on that hook, xdist read the markers before the hook set them and
spread the docker tests over both workers (seen in a CI run: two dockerd users at once).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytest_plugins = ["pytester"]
pytest.importorskip("xdist", reason="pytest-xdist is a dev dependency (pip install -e .[dev])")

HOOKS = """
from tests.conftest import pytest_collection_modifyitems  # noqa: F401
"""
MODULE = """
import os
import pytest
pytestmark = [{marks}]

@pytest.mark.parametrize("n", range(3))
def test_where(n):
    with open({log!r}, "a") as f:
        f.write(f"{{__name__}} {{os.environ['PYTEST_XDIST_WORKER']}}\\n")
"""


def test_docker_tests_share_one_worker_and_modules_stay_whole(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "where.log"
    pytester.makeconftest(HOOKS)
    pytester.makeini("[pytest]\nmarkers =\n    docker: d\n    gpu: g\n    root: r\n")
    for name, marks in {
        "test_a_docker": "pytest.mark.docker", "test_b_docker": "pytest.mark.docker",
        "test_c_docker": "pytest.mark.docker", "test_d": "", "test_e": "", "test_f": "",
    }.items():  # fmt: skip
        pytester.makepyfile(**{name: MODULE.format(marks=marks, log=str(log))})
    monkeypatch.setenv("PYTHONPATH", f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    result = pytester.runpytest_subprocess(
        "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=18)
    workers: dict[str, set[str]] = {}
    for line in log.read_text().splitlines():
        module, worker = line.split()
        workers.setdefault(module, set()).add(worker)
    assert all(len(w) == 1 for w in workers.values()), workers  # each module whole
    docker = set().union(*(w for m, w in workers.items() if m.endswith("_docker")))
    assert len(docker) == 1, f"docker tests ran on {sorted(docker)}"
