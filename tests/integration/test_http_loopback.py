"""bundler.http against loopback servers with injected failures."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
from tests.support.connectproxy import connect_proxy
from tests.support.httpserver import serve_directory, serving
from tests.support.loopbackhttp import self_signed_cert, serve_http

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
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as port:
        yield f"http://127.0.0.1:{port}", seen


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


# --- redirects, proxies, TLS, keep-alive and threads (tests/support/loopbackhttp.py) ---

SMALL = {f"/f{i}": f"file {i}".encode() for i in range(40)}


def test_relative_and_absolute_redirects_are_followed() -> None:
    with serve_http({"/pool/c": PAYLOAD}) as served:
        redirects = {
            "/a": (301, "/dists/b"),  # relative, from the root
            "/dists/b": (302, "../pool/x"),  # relative to the redirecting path
            "/pool/x": (308, f"{served.base}/pool/c"),  # absolute
        }
        with serve_http({}, redirects) as first:
            body = fetch_bytes(make_session(retries=0), f"{first.base}/a")
    assert body == PAYLOAD
    assert [r["path"] for r in first.requests] == ["/a", "/dists/b", "/pool/x"]
    assert [r["path"] for r in served.requests] == ["/pool/c"]


def test_a_resumed_download_keeps_its_range_across_a_redirect(tmp_path: Path) -> None:
    dest = tmp_path / "file.deb"
    part_path(dest).write_bytes(PAYLOAD[:1000])
    with serve_http({"/new": PAYLOAD}, {"/old": (307, "/new")}) as served:
        download(make_session(retries=0), f"{served.base}/old", dest, expected_size=len(PAYLOAD))
    assert [(r["path"], r["Range"]) for r in served.requests] == [
        ("/old", "bytes=1000-"),
        ("/new", "bytes=1000-"),
    ]
    assert dest.read_bytes() == PAYLOAD


def test_a_redirect_loop_is_refused_with_a_clear_error() -> None:
    with (
        serve_http({}, {"/a": (302, "/b"), "/b": (302, "/a")}) as served,
        pytest.raises(GpubundleError) as err,
    ):
        fetch_bytes(make_session(), f"{served.base}/a")
    assert err.value.message == (
        f"cannot download {served.base}/a: the server redirects in a loop: "
        f"{served.base}/a -> {served.base}/b -> {served.base}/a"
    )
    assert len(served.requests) == 2


def test_endless_redirects_stop_after_ten() -> None:
    redirects = {f"/r{i}": (302, f"/r{i + 1}") for i in range(30)}
    with serve_http({}, redirects) as served, pytest.raises(GpubundleError) as err:
        fetch_bytes(make_session(), f"{served.base}/r0")
    assert "more than 10 redirects" in err.value.message
    assert len(served.requests) == 11


@pytest.mark.parametrize("trust", ["ca_file", "SSL_CERT_FILE"])
def test_https_through_a_connect_proxy_with_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trust: str
) -> None:
    cert = self_signed_cert(tmp_path)
    for name in ("NO_PROXY", "no_proxy", "https_proxy", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    if trust == "SSL_CERT_FILE":
        monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    with serve_http({"/dists/InRelease": b"signed"}, tls=cert) as served, connect_proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("://", "://us%3Aer:p%40ss@"))
        session = make_session(retries=0, ca_file=cert[0] if trust == "ca_file" else None)
        assert fetch_bytes(session, f"{served.base}/dists/InRelease") == b"signed"
        assert fetch_bytes(session, f"{served.base}/dists/InRelease") == b"signed"
    port = served.base.rsplit(":", 1)[1]
    (head,) = proxy.heads  # one tunnel for both requests
    assert head[0] == f"CONNECT 127.0.0.1:{port} HTTP/1.0"
    assert f"Proxy-Authorization: Basic {base64.b64encode(b'us:er:p@ss').decode()}" in head
    assert served.connections == 1 and len(served.requests) == 2


def test_an_untrusted_certificate_is_final_and_says_so(tmp_path: Path) -> None:
    with serve_http({"/x": b"x"}, tls=self_signed_cert(tmp_path)) as served:
        started = time.monotonic()
        with pytest.raises(GpubundleError) as err:
            fetch_bytes(make_session(retries=5), f"{served.base}/x")
    assert time.monotonic() - started < 5
    assert "the TLS certificate of 127.0.0.1 is not trusted" in err.value.message
    assert "SSL_CERT_FILE" in err.value.message


def test_proxy_credentials_are_sent_to_an_http_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with payload_server() as (proxy, seen):
        monkeypatch.setenv("http_proxy", proxy.replace("://", "://builder:s3cret@"))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        fetch_bytes(make_session(retries=0), "http://archive.example.invalid/dists/InRelease")
    assert seen[0]["path"] == "http://archive.example.invalid/dists/InRelease"
    assert seen[0]["Host"] == "archive.example.invalid"
    assert seen[0]["Proxy-Authorization"] == "Basic " + base64.b64encode(b"builder:s3cret").decode()


@pytest.mark.parametrize(
    ("name", "value"), [("NO_PROXY", "127.0.0.1"), ("no_proxy", "example.org, .0.0.1,127.0.0.1")]
)
def test_no_proxy_is_honoured(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """The proxy refuses connections: only a direct request can succeed."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv(name, value)
    with serve_http({"/f": b"direct"}) as served:
        assert fetch_bytes(make_session(retries=0), f"{served.base}/f") == b"direct"
    monkeypatch.setenv(name, "example.org")
    with serve_http({"/f": b"direct"}) as served, pytest.raises(GpubundleError) as err:
        fetch_bytes(make_session(retries=0), f"{served.base}/f")
    assert err.value.message.endswith("127.0.0.1:9 refused the connection")


def test_keep_alive_one_connection_for_many_fetches(tmp_path: Path) -> None:
    session = make_session(retries=0)
    with serve_http({**SMALL, "/big": PAYLOAD}) as served:
        for path, body in SMALL.items():
            assert fetch_bytes(session, served.base + path) == body
        with pytest.raises(NotFoundError):  # a 404's small body is read, the connection kept
            fetch_bytes(session, f"{served.base}/missing")
        download(session, f"{served.base}/big", tmp_path / "big", expected_size=len(PAYLOAD))
        assert fetch_bytes(session, f"{served.base}/f0") == b"file 0"
    assert len(served.requests) == len(SMALL) + 3
    assert served.connections == 1


def test_a_kept_alive_connection_the_server_closed_is_reopened() -> None:
    """The server closes after each answer without saying so: no retry is spent on it."""
    session = make_session(retries=0)
    with serve_http(SMALL, close_silently=True) as served:
        for path, body in list(SMALL.items())[:5]:
            assert fetch_bytes(session, served.base + path) == body
    assert served.connections == 5


def test_concurrent_fetches_from_threads_share_one_client(tmp_path: Path) -> None:
    session = make_session(retries=0)
    files = {f"/deb{i}": PAYLOAD[i:] for i in range(24)}
    with serve_http(files) as served, ThreadPoolExecutor(max_workers=4) as pool:

        def one(path: str) -> bool:
            dest = tmp_path / path.strip("/")
            download(session, served.base + path, dest, expected_size=len(files[path]))
            return dest.read_bytes() == files[path]

        assert all(pool.map(one, files))
    assert len(served.requests) == len(files)
    assert served.connections <= 4  # one per thread, kept alive


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"ok")
    hook = FailFirst(1)
    with serve_directory(tmp_path, hook, retry_after="1") as base:
        started = time.monotonic()
        assert fetch_bytes(make_session(backoff=0), f"{base}/f") == b"ok"
    assert time.monotonic() - started >= 0.9
    assert hook.calls == ["/f", "/f"]
