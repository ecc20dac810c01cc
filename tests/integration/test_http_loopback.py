"""bundler.http against loopback servers with injected failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bundler.http import (
    USER_AGENT,
    NotFoundError,
    download,
    fetch_bytes,
    make_session,
    part_path,
)
from installer.errors import GpubundleError
from tests.support.httpserver import serve_directory

# Loopback HTTP servers: real sockets, so not the unit tier.
pytestmark = pytest.mark.integration

PAYLOAD = bytes(range(256)) * 1600  # 400 KiB: several download chunks


class _PayloadHandler(BaseHTTPRequestHandler):
    """Serves PAYLOAD at any path with Range support; can cut the first body short or stall."""

    cut_first_body = False
    stall_seconds = 0.0
    seen: list[dict[str, str]]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, **{k: v for k, v in self.headers.items()}})
        if self.stall_seconds:
            time.sleep(self.stall_seconds)
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD) - start))
        self.end_headers()
        body = PAYLOAD[start:]
        if type(self).cut_first_body and len(self.seen) == 1:
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@contextmanager
def payload_server(
    cut_first_body: bool = False, stall: float = 0.0
) -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    handler = type(
        "H",
        (_PayloadHandler,),
        {"cut_first_body": cut_first_body, "stall_seconds": stall, "seen": seen},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


class FailFirst:
    """A failure hook answering ``status`` to the first ``count`` requests.

    A callable object rather than a function: serve_directory stores the hook as a
    class attribute, where a plain function would be bound as a method.
    """

    def __init__(self, count: int, status: int = 503) -> None:
        self.count = count
        self.status = status
        self.calls: list[str] = []

    def __call__(self, path: str) -> int | None:
        self.calls.append(path)
        return self.status if len(self.calls) <= self.count else None


def test_retries_a_503_then_succeeds(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"hello")
    hook = FailFirst(1)
    with serve_directory(tmp_path, hook) as base:
        assert fetch_bytes(make_session(backoff=0), f"{base}/file") == b"hello"
    assert hook.calls == ["/file", "/file"]


def test_gives_up_after_retries_naming_the_url(tmp_path: Path) -> None:
    hook = FailFirst(100)
    with serve_directory(tmp_path, hook) as base, pytest.raises(GpubundleError) as err:
        fetch_bytes(make_session(retries=2, backoff=0), f"{base}/file")
    assert len(hook.calls) == 3
    assert f"{base}/file" in err.value.message
    assert "503" in err.value.message
    assert "PROXY" in err.value.hint


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with serve_directory(tmp_path) as base, pytest.raises(NotFoundError) as err:
        fetch_bytes(make_session(), f"{base}/nope")
    assert "404" in err.value.message and "mirror" in err.value.hint


def test_unreachable_host_is_a_clear_error() -> None:
    with pytest.raises(GpubundleError) as err:
        fetch_bytes(make_session(retries=0), "http://127.0.0.1:9/x")
    assert "http://127.0.0.1:9/x" in err.value.message


def test_a_refused_connection_is_final_at_once_and_quiet(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """No backoff for a host that refuses (5 retries would take >= 15 s), no urllib3 noise."""
    started = time.monotonic()
    with pytest.raises(GpubundleError) as err:
        fetch_bytes(make_session(retries=5), "http://127.0.0.1:9/x")
    assert time.monotonic() - started < 5
    assert (
        err.value.message
        == "cannot download http://127.0.0.1:9/x: 127.0.0.1:9 refused the connection"
    )
    assert "--mirror ID=URL" in err.value.hint
    out, errors = capfd.readouterr()
    assert "Retrying" not in out + errors and "urllib3" not in out + errors


def test_default_timeout_applies(tmp_path: Path) -> None:
    with payload_server(stall=2.0) as (base, _), pytest.raises(GpubundleError):
        fetch_bytes(make_session(retries=0, timeout=(2.0, 0.3)), f"{base}/slow")


def test_user_agent_is_sent() -> None:
    with payload_server() as (base, seen):
        fetch_bytes(make_session(), f"{base}/x")
    assert seen[0]["User-Agent"] == USER_AGENT


def test_proxy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with payload_server() as (proxy, seen):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        body = fetch_bytes(make_session(retries=0), "http://archive.example.invalid/file")
    assert body == PAYLOAD
    assert seen[0]["path"] == "http://archive.example.invalid/file"


def test_download_is_atomic_and_reports_progress(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "file.deb"
    got: list[int] = []
    with payload_server() as (base, _):
        download(make_session(), f"{base}/f", dest, expected_size=len(PAYLOAD), progress=got.append)
    assert dest.read_bytes() == PAYLOAD
    assert not part_path(dest).exists()
    assert sum(got) == len(PAYLOAD)


def test_download_resumes_a_partial_file(tmp_path: Path) -> None:
    dest = tmp_path / "file.deb"
    part_path(dest).write_bytes(PAYLOAD[:1000])
    got: list[int] = []
    with payload_server() as (base, seen):
        download(make_session(), f"{base}/f", dest, expected_size=len(PAYLOAD), progress=got.append)
    assert seen[0]["Range"] == "bytes=1000-"
    assert dest.read_bytes() == PAYLOAD
    assert sum(got) == len(PAYLOAD)


def test_download_resumes_after_a_broken_body(tmp_path: Path) -> None:
    dest = tmp_path / "file.deb"
    with payload_server(cut_first_body=True) as (base, seen):
        download(make_session(backoff=0), f"{base}/f", dest, expected_size=len(PAYLOAD))
    assert len(seen) == 2 and seen[1]["Range"].startswith("bytes=")
    assert seen[1]["Range"] != "bytes=0-"
    assert dest.read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_from_zero(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "f").write_bytes(PAYLOAD)
    dest = tmp_path / "file.deb"
    part_path(dest).write_bytes(b"garbage")
    with serve_directory(tmp_path / "srv") as base:  # SimpleHTTPRequestHandler has no Range
        download(make_session(), f"{base}/f", dest, expected_size=len(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD


def test_wrong_size_is_refused_and_not_kept(tmp_path: Path) -> None:
    dest = tmp_path / "file.deb"
    with payload_server() as (base, _), pytest.raises(GpubundleError) as err:
        download(make_session(), f"{base}/f", dest, expected_size=5)
    assert "expected 5" in err.value.message
    assert not dest.exists() and not part_path(dest).exists()
