"""Debian version comparison, exactly as dpkg's ``verrevcmp`` orders versions.

A version ``[epoch:]upstream[-revision]`` is turned once (and cached) into a
sort key that Python compares natively, so resolution can compare thousands of
versions cheaply:

- the epoch is an integer (absent = 0);
- upstream and revision alternate non-digit runs and digit runs; a non-digit
  run compares character by character with ``~`` before the end of the run,
  the end before letters, letters before everything else; a digit run
  compares numerically (absent = 0).
"""

from __future__ import annotations

import functools
import re
from typing import Tuple

_RUNS = re.compile(r"(\D*)(\d*)")
# End of a non-digit run sorts after "~" (-1) and before any letter or symbol.
_END = 0
# An absent (non-digit, digit) pair: what a shorter string "has" past its end.
_EMPTY_PAIR: tuple[tuple[int, ...], int] = ((_END,), 0)

PartKey = Tuple[Tuple[Tuple[int, ...], int], ...]  # typing.Tuple: an alias runs on 3.8
VersionKey = Tuple[int, PartKey, PartKey]


def _char_order(char: str) -> int:
    if char == "~":
        return -1
    if char.isalpha() and char.isascii():
        return ord(char)
    return ord(char) + 256


def _part_key(part: str) -> PartKey:
    pairs = [
        ((*(_char_order(c) for c in text), _END), int(digits) if digits else 0)
        for text, digits in _RUNS.findall(part)
        if text or digits
    ]
    # "1.0" and "1.0-0" are equal: drop pairs that equal "nothing" before the sentinel.
    while pairs and pairs[-1] == _EMPTY_PAIR:
        pairs.pop()
    # The sentinel makes a string that ended compare as dpkg's end-of-string does.
    pairs.append(_EMPTY_PAIR)
    return tuple(pairs)


@functools.lru_cache(maxsize=None)
def version_key(version: str) -> VersionKey:
    """A key whose natural order is dpkg's version order. Raises ValueError if malformed."""
    epoch = 0
    rest = version.strip()
    if ":" in rest:
        head, rest = rest.split(":", 1)
        if not head.isdigit():
            raise ValueError(f"invalid epoch in version {version!r}")
        epoch = int(head)
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, ""
    if not upstream:
        raise ValueError(f"empty upstream version in {version!r}")
    return epoch, _part_key(upstream), _part_key(revision)


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` sorts before, equal to, or after ``b`` (dpkg --compare-versions)."""
    if a == b:
        return 0
    ka, kb = version_key(a), version_key(b)
    return (ka > kb) - (ka < kb)


_OPS: dict[str, tuple[int, ...]] = {  # the compare() results each relation accepts
    "<<": (-1,),
    "<=": (-1, 0),
    "<": (-1, 0),  # obsolete spelling of <=
    "=": (0,),
    ">=": (0, 1),
    ">": (0, 1),  # obsolete spelling of >=
    ">>": (1,),
}


def satisfies(version: str, op: str, target: str) -> bool:
    """Whether ``version op target`` holds, e.g. ``satisfies("1.2-1", ">=", "1.2")``."""
    try:
        accepted = _OPS[op]
    except KeyError:
        raise ValueError(f"unknown version relation {op!r}") from None
    return compare(version, target) in accepted
