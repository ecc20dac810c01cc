"""A static file server on 127.0.0.1 for tests, with optional injected failures."""

from __future__ import annotations

import functools
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# A hook sees the request path and may return an HTTP status to answer with instead.
FailureHook = Callable[[str], int | None]


class _Handler(SimpleHTTPRequestHandler):
    failure_hook: FailureHook | None = None
    retry_after: str | None = None  # sent with an injected failure, if set
    request_log: list[str]

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        self.request_log.append(self.path)
        if self.failure_hook is not None:
            status = self.failure_hook(self.path)
            if status is not None and self.retry_after is not None:
                self.send_response(status)
                self.send_header("Retry-After", self.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if status is not None:
                self.send_error(status)
                return
        super().do_GET()


@contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[int]:
    """``server`` (bound to a loopback port) answering from a thread; yields its port, then
    shuts it down and closes its socket."""
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield server.server_address[1]  # type: ignore[index]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve_directory(
    root: Path, failure_hook: FailureHook | None = None, *, retry_after: str | None = None
) -> Iterator[str]:
    """Serve ``root`` over HTTP on a free loopback port; yields the base URL (no trailing /).

    ``retry_after`` is sent as a Retry-After header with every failure the hook injects.
    """
    # A subclass per server, so one test's hook and log never leak into another's.
    handler_class = type(
        "_BoundHandler",
        (_Handler,),
        {
            "failure_hook": staticmethod(failure_hook) if failure_hook else None,
            "retry_after": retry_after,
            "request_log": [],
        },
    )
    handler = functools.partial(handler_class, directory=str(root))
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as port:
        yield f"http://127.0.0.1:{port}"
