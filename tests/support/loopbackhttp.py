"""An HTTP/1.1 keep-alive server on 127.0.0.1 for client tests: bodies with Range, redirects,
connections counted, optionally over TLS with a self-signed certificate made by openssl."""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.httpserver import serving


@dataclass
class Served:
    """What the server saw: its base URL, one entry per request, and connections accepted."""

    base: str
    requests: list[dict[str, str]] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost and its key, made by ``openssl req``."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless a test asks to close
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms ACK wait
    bodies: Mapping[str, bytes]
    redirects: Mapping[str, tuple[int, str]]
    served: Served
    close_silently = False  # close after each answer without saying so (a stale keep-alive)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.served.lock:
            self.served.connections += 1

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        with self.served.lock:
            self.served.requests.append({"path": self.path, **dict(self.headers.items())})
        if self.path in self.redirects:
            status, location = self.redirects[self.path]
            self._answer(status, b"moved", {"Location": location})
        elif self.path in self.bodies:
            body = self.bodies[self.path]
            start = int(self.headers.get("Range", "bytes=0-").removeprefix("bytes=").split("-")[0])
            if self.headers.get("Range"):
                headers = {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
                self._answer(206, body[start:], headers, head)
            else:
                self._answer(200, body, {}, head)
        else:
            self._answer(404, b"no such file", {})
        if self.close_silently:
            self.close_connection = True

    def _answer(
        self, status: int, body: bytes, headers: Mapping[str, str], head: bool = False
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


@contextmanager
def serve_http(
    bodies: Mapping[str, bytes],
    redirects: Mapping[str, tuple[int, str]] | None = None,
    *,
    tls: tuple[Path, Path] | None = None,
    close_silently: bool = False,
) -> Iterator[Served]:
    """Serve ``bodies`` by path, ``redirects`` as path -> (status, Location); ``tls`` is
    (cert, key). Yields what the server sees, its base URL first."""
    served = Served("")
    handler = type(
        "_Bound",
        (_Handler,),
        {
            "bodies": bodies,
            "redirects": redirects or {},
            "served": served,
            "close_silently": close_silently,
        },
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    with serving(server) as port:
        served.base = f"{scheme}://127.0.0.1:{port}"
        yield served
