"""dpkg's version order: fixed expectations from dpkg's own test suite, and dpkg itself."""

from __future__ import annotations

import itertools
import shutil
import subprocess

import pytest

from installer.debversion import compare, satisfies, version_key

# (a, b, expected sign of compare(a, b)), many from dpkg's t-version.c
CASES = [
    ("1.0", "1.0", 0),
    ("1.0", "1.0-0", 0),
    ("0:1.0", "1.0", 0),
    ("1.0", "1.00", 0),
    ("1:0.9", "2.0", 1),
    ("1.0~rc1", "1.0", -1),
    ("1.0~~", "1.0~", -1),
    ("1.0~", "1.0", -1),
    ("1.0", "1.0a", -1),
    ("1.0a", "1.0+", -1),
    ("1.0", "1.0.0", -1),
    ("9", "10", -1),
    ("1.2.3-4", "1.2.3a-4", -1),
    ("2.27-3ubuntu1", "2.27-3ubuntu1.6", -1),
    ("1.0-1~bpo1", "1.0-1", -1),
    ("0.0.0~20120605", "0.0.0", -1),
    ("1:2.10", "2.44", 1),
    ("12.3.0-1ubuntu1~22.04.3", "12.3.0-1ubuntu1~22.04", 1),
    ("1.17.8-1", "1.17.10-1", -1),
    ("2:1.0", "1:9.9", 1),
]


@pytest.mark.parametrize(("a", "b", "expected"), CASES)
def test_compare_fixed(a: str, b: str, expected: int) -> None:
    assert compare(a, b) == expected
    assert compare(b, a) == -expected


@pytest.mark.parametrize(
    ("version", "op", "target", "expected"),
    [
        ("1.0", "<<", "1.1", True),
        ("1.1", "<<", "1.1", False),
        ("1.1", "<=", "1.1", True),
        ("1.1", "=", "1.1-0", True),
        ("1.2", ">=", "1.1", True),
        ("1.1", ">>", "1.1", False),
        ("1.0", "<", "1.0", True),  # obsolete spelling of <=
        ("1.0", ">", "1.0", True),  # obsolete spelling of >=
        ("1.0", ">", "1.1", False),
    ],
)
def test_satisfies(version: str, op: str, target: str, expected: bool) -> None:
    assert satisfies(version, op, target) is expected


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        satisfies("1.0", "!=", "1.0")
    with pytest.raises(ValueError):
        version_key("x:1.0")
    with pytest.raises(ValueError):
        version_key("1:-1")


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg not installed")
def test_agrees_with_dpkg() -> None:
    sample = sorted({v for a, b, _ in CASES for v in (a, b)})
    for a, b in itertools.combinations(sample, 2):
        word = {-1: "lt", 0: "eq", 1: "gt"}[compare(a, b)]
        result = subprocess.run(["dpkg", "--compare-versions", a, word, b], check=False)
        assert result.returncode == 0, f"dpkg disagrees: {a} {word} {b}"
