"""The build's command-line conventions against the real archives.

An unreachable source fails at once (no retries against a host that refuses), names
the source id and both ways around it, and prints no library noise; with --json the
error is one JSON document on stdout.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.support.installbundles import gpubundle

pytestmark = [pytest.mark.integration, pytest.mark.archive]


def test_an_unreachable_mirror_fails_fast_naming_the_source() -> None:
    started = time.monotonic()
    proc = gpubundle(
        "build", "--distro", "debian12", "--mirror", "nvidia=http://127.0.0.1:9/nvidia",
        "--dry-run", "--json",
    )  # fmt: skip
    took = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    error = json.loads(proc.stdout)
    assert error["message"].startswith("source nvidia (http://127.0.0.1:9/nvidia): ")
    assert "127.0.0.1:9 refused the connection" in error["message"]
    assert "--mirror nvidia=URL" in error["hint"] and "--key nvidia=FILE" in error["hint"]
    assert "Retrying" not in proc.stderr and "Traceback" not in proc.stderr
    # The Debian sources before it are fetched for real; the refused one costs no backoff
    # (five retries would add >= 15 s).
    assert took < 60, took
