"""fetch_packages against a loopback server: verify, pool, reuse, report every mismatch."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bundler.fetch import fetch_packages, partial_path, pool_path
from bundler.http import make_session
from bundler.plan import PlannedPackage
from installer.console import Console
from installer.errors import GpubundleError
from tests.support.httpserver import serve_directory

# Loopback HTTP servers: real sockets, so not the unit tier.
pytestmark = pytest.mark.integration


def _publish(root: Path, name: str, body: bytes) -> tuple[str, int, str]:
    (root / "pool").mkdir(parents=True, exist_ok=True)
    filename = f"pool/{name}_1.0_amd64.deb"
    (root / filename).write_bytes(body)
    return filename, len(body), hashlib.sha256(body).hexdigest()


def _planned(base: str, name: str, filename: str, size: int, sha256: str) -> PlannedPackage:
    return PlannedPackage(
        name=name,
        version="1.0",
        architecture="amd64",
        size=size,
        sha256=sha256,
        filename=filename,
        source="test",
        url=f"{base}/{filename}",
    )


@pytest.fixture()
def served(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    return root


def test_fetches_verifies_and_pools_by_hash(served: Path, tmp_path: Path) -> None:
    files = [_publish(served, f"pkg{i}", bytes([i]) * (1000 + i)) for i in range(6)]
    cache = tmp_path / "cache"
    with serve_directory(served) as base:
        plan = [_planned(base, f"pkg{i}", *f) for i, f in enumerate(files)]
        fetched = fetch_packages(make_session(retries=0), plan, cache, Console(quiet=True))
    assert [f.package for f in fetched] == plan
    for item in fetched:
        assert item.path == pool_path(cache, item.package.sha256)
        assert hashlib.sha256(item.path.read_bytes()).hexdigest() == item.package.sha256
    assert list((cache / "partial").iterdir()) == []


def test_rerun_reuses_pool_without_network(served: Path, tmp_path: Path) -> None:
    filename, size, sha = _publish(served, "pkg", b"payload" * 100)
    cache = tmp_path / "cache"
    with serve_directory(served) as base:
        plan = [_planned(base, "pkg", filename, size, sha)]
        fetch_packages(make_session(retries=0), plan, cache, Console(quiet=True))
    # The server is gone: a second run must not need it.
    again = fetch_packages(make_session(retries=0), plan, cache, Console(quiet=True))
    assert again[0].path.read_bytes() == b"payload" * 100


def test_damaged_pool_file_is_fetched_again(served: Path, tmp_path: Path) -> None:
    filename, size, sha = _publish(served, "pkg", b"x" * 500)
    cache = tmp_path / "cache"
    pooled = pool_path(cache, sha)
    pooled.parent.mkdir(parents=True)
    pooled.write_bytes(b"y" * 500)
    with serve_directory(served) as base:
        fetch_packages(
            make_session(retries=0),
            [_planned(base, "pkg", filename, size, sha)],
            cache,
            Console(quiet=True),
        )
    assert pooled.read_bytes() == b"x" * 500


def test_all_mismatches_reported_together(served: Path, tmp_path: Path) -> None:
    good = _publish(served, "good", b"good" * 10)
    bad_hash = _publish(served, "badhash", b"evil" * 10)
    bad_size = _publish(served, "badsize", b"short")
    cache = tmp_path / "cache"
    with serve_directory(served) as base:
        plan = [
            _planned(base, "good", *good),
            _planned(base, "badhash", bad_hash[0], bad_hash[1], "0" * 64),
            _planned(base, "badsize", bad_size[0], 999, bad_size[2]),
            _planned(base, "gone", "pool/gone_1.0_amd64.deb", 10, "1" * 64),
        ]
        with pytest.raises(GpubundleError) as caught:
            fetch_packages(make_session(retries=0), plan, cache, Console(quiet=True))
    err = caught.value
    assert "3 of 4 packages" in err.message
    text = "\n".join(err.details)
    assert f"sha256 expected {'0' * 64}, got {bad_hash[2]}" in text
    assert "badsize 1.0" in text and "expected 999" in text
    assert "gone 1.0" in text and "404" in text
    assert err.hint
    # The good file was pooled; nothing unverified was kept under the pool.
    assert pool_path(cache, good[2]).exists()
    assert not pool_path(cache, "0" * 64).exists()
    assert not partial_path(cache, plan[1]).exists()
