"""A tiny HTTP CONNECT proxy on 127.0.0.1: records each request head, then relays bytes."""

from __future__ import annotations

import selectors
import socket
import socketserver
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.support.httpserver import serving


@dataclass
class ProxySeen:
    """The proxy's URL and the request heads it got: first line, then headers."""

    url: str
    heads: list[list[str]] = field(default_factory=list)


class _Handler(socketserver.StreamRequestHandler):
    seen: ProxySeen

    def handle(self) -> None:
        lines = []
        while (line := self.rfile.readline(65536).decode("latin-1").rstrip("\r\n")) != "":
            lines.append(line)
        self.seen.heads.append(lines)
        method, target, _ = (lines or ["- - -"])[0].split(" ", 2)
        if method != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        host, _, port = target.rpartition(":")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=10)
        except OSError:
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        with upstream:
            _relay(self.connection, upstream)


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        while True:
            for key, _ in selector.select(timeout=10):
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                data = source.recv(65536)
                if not data:
                    return
                key.data.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def connect_proxy() -> Iterator[ProxySeen]:
    """Run the proxy; yields its URL (``http://127.0.0.1:PORT``) and what it saw."""
    seen = ProxySeen("")
    server = _Server(("127.0.0.1", 0), type("_Bound", (_Handler,), {"seen": seen}))
    with serving(server) as port:
        seen.url = f"http://127.0.0.1:{port}"
        yield seen
