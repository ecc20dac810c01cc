"""A small HTTP/1.1 client on the standard library: keep-alive, retries, redirects, proxies, TLS.

``HttpClient.get`` answers a streaming ``Response`` once the status line and headers
are in, after retrying connection errors, timeouts, resets and 429/5xx answers with
backoff (only GET and HEAD are sent, both safe to repeat) and following redirects.
Connections are kept alive per thread and per (scheme, host, port, proxy), so the
fetcher's thread pool can share one client. Every failure on the network is a
``TransportError`` whose text says what happened in words.
"""

from __future__ import annotations

import functools
import http.client
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bundler.httprules import (
    DEFAULT_PORTS,
    REDIRECT_STATUSES,
    RETRY_STATUSES,
    Proxy,
    backoff_delays,
    choose_proxy,
    redirect_problem,
    redirect_target,
    retry_after,
)

if TYPE_CHECKING:
    import ssl

Timeout = tuple[float, float]  # (connect, read) seconds
_DRAIN_LIMIT = 64 * 1024  # a body this small is read to the end to keep its connection
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


class TransportError(Exception):
    """A request or a body read failed on the network; ``str()`` says what, in words.

    ``final`` marks what a retry cannot fix (a name that does not resolve, a refused
    connection, an untrusted certificate, a refused proxy tunnel).
    """

    def __init__(self, words: str, *, final: bool = False) -> None:
        super().__init__(words)
        self.final = final


def describe(exc: BaseException) -> str:
    """What a network exception means, in words."""
    if isinstance(exc, TransportError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "no answer in time (after retries)"
    if isinstance(exc, http.client.IncompleteRead):
        return f"the connection closed {exc.expected} bytes before the end of the body"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without an answer"
    if isinstance(exc, ConnectionResetError):
        return "the connection was reset"
    return f"{type(exc).__name__}: {exc}"


class _Connect:
    """connect() with the connect timeout, then the read timeout; unreachable hosts are final."""

    host: str
    port: int
    sock: socket.socket | None
    read_timeout: float

    def connect(self) -> None:
        try:
            super().connect()  # type: ignore[misc]
        except socket.gaierror as exc:
            raise TransportError(f"the host name {self.host} does not resolve", final=True) from exc
        except ConnectionRefusedError as exc:
            raise TransportError(
                f"{self.host}:{self.port} refused the connection", final=True
            ) from exc
        except OSError as exc:
            if str(exc).startswith("Tunnel connection failed"):
                raise TransportError(
                    f"the proxy {self.host}:{self.port} refused the tunnel ({exc})", final=True
                ) from exc
            if type(exc).__name__ == "SSLCertVerificationError":
                raise TransportError(
                    f"the TLS certificate of {self._server_name()} is not trusted "
                    f"({getattr(exc, 'verify_message', exc)}); a private CA can be named in "
                    "SSL_CERT_FILE or REQUESTS_CA_BUNDLE",
                    final=True,
                ) from exc
            raise
        assert self.sock is not None
        self.sock.settimeout(self.read_timeout)

    def _server_name(self) -> str:
        return getattr(self, "_tunnel_host", None) or self.host


class _HTTPConnection(_Connect, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_Connect, http.client.HTTPSConnection):
    pass


_Key = tuple[str, str, int, str | None]


class Response:
    """An answer whose body is read as it arrives; a context manager that releases it."""

    def __init__(
        self,
        raw: http.client.HTTPResponse,
        url: str,
        release: Callable[[bool], None],
    ) -> None:
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers
        self.url = url
        self._raw = raw
        self._release: Callable[[bool], None] | None = release

    def iter_content(self, size: int) -> Iterator[bytes]:
        """The body in pieces of at most ``size`` bytes; a short body raises TransportError."""
        while True:
            try:
                chunk = self._raw.read(size)
            except _NETWORK_ERRORS as exc:
                self._finish(reusable=False)
                raise TransportError(describe(exc)) from exc
            if not chunk:
                missing = self._raw.length  # http.client counts down what Content-Length promised
                if missing:
                    self._finish(reusable=False)
                    raise TransportError(
                        f"the connection closed {missing} bytes before the end of the body"
                    )
                self._finish(reusable=True)
                return
            yield chunk

    def read(self) -> bytes:
        return b"".join(self.iter_content(_DRAIN_LIMIT))

    def close(self) -> None:
        """Release the connection: kept alive if the rest of the body is small, else closed."""
        if self._release is None:
            return
        remaining = self._raw.length
        if remaining is not None and remaining <= _DRAIN_LIMIT:
            try:
                self.read()
                return
            except TransportError:
                return
        self._finish(reusable=False)

    def _finish(self, *, reusable: bool) -> None:
        release, self._release = self._release, None
        if release is not None:
            if not reusable:
                self._raw.close()
            release(reusable)

    def __enter__(self) -> Response:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class HttpClient:
    """GET and HEAD with retries, redirects, proxies and keep-alive connections per thread."""

    def __init__(
        self,
        *,
        user_agent: str,
        retries: int,
        backoff: float,
        timeout: Timeout,
        ca_file: Path | None = None,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.user_agent = user_agent
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.ca_file = ca_file
        self.environ = os.environ if environ is None else environ
        # Called with every response, redirects included (tests record what was fetched).
        self.response_hooks: list[Callable[[Response], None]] = []
        self._sleep = sleep
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[http.client.HTTPConnection] = []
        self._tls: ssl.SSLContext | None = None

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Response:
        return self.request("GET", url, headers)

    def request(self, method: str, url: str, headers: Mapping[str, str] | None = None) -> Response:
        """The answer to ``method url`` after retries and redirects (its body not yet read)."""
        if method not in ("GET", "HEAD"):
            raise ValueError(f"only GET and HEAD are retried safely, not {method}")
        chain = [url]
        while True:
            problem = redirect_problem(chain)
            if problem:
                raise TransportError(problem, final=True)
            response = self._with_retries(method, chain[-1], headers or {})
            location = response.headers.get("Location")
            if response.status not in REDIRECT_STATUSES or not location:
                return response
            response.close()
            chain.append(redirect_target(chain[-1], location))

    def close(self) -> None:
        with self._lock:
            connections, self._open = self._open, []
        for connection in connections:
            connection.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _with_retries(self, method: str, url: str, headers: Mapping[str, str]) -> Response:
        delays = backoff_delays(self.backoff, self.retries)
        while True:
            try:
                response = self._send(method, url, headers)
            except http.client.InvalidURL as exc:
                raise TransportError(str(exc), final=True) from exc
            except (*_NETWORK_ERRORS, TransportError) as exc:
                if isinstance(exc, TransportError) and exc.final:
                    raise
                delay = next(delays, None)
                if delay is None:
                    raise TransportError(describe(exc)) from exc
                self._sleep(delay)
                continue
            for hook in self.response_hooks:
                hook(response)
            if response.status not in RETRY_STATUSES:
                return response
            delay = next(delays, None)
            if delay is None:
                return response  # the caller turns the last answer into an error
            wait = retry_after(response.headers.get("Retry-After"), time.time())
            response.close()
            self._sleep(delay if wait is None else wait)

    def _send(self, method: str, url: str, headers: Mapping[str, str]) -> Response:
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
        try:
            if scheme not in DEFAULT_PORTS or not host:
                raise ValueError(f"{url} is not an http(s) URL")
            port = parts.port or DEFAULT_PORTS[scheme]
            proxy = choose_proxy(scheme, host, port, self.environ)
        except ValueError as exc:  # a bad port, a proxy URL that cannot be used
            raise TransportError(str(exc), final=True) from exc
        key: _Key = (scheme, host, port, proxy.url if proxy else None)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        sent = {"User-Agent": self.user_agent, **headers}
        if proxy is not None and scheme == "http":
            target = url.split("#", 1)[0]  # absolute form: the proxy makes the request
            if proxy.authorization:
                sent["Proxy-Authorization"] = proxy.authorization
        for fresh in (False, True):
            connection, reused = self._checkout(key, proxy, fresh)
            try:
                connection.request(method, target, headers=sent)
                raw = connection.getresponse()
            except (*_NETWORK_ERRORS, TransportError) as exc:
                self._discard(connection)
                # A kept-alive connection the server closed meanwhile: one more try, not a retry.
                if reused and not isinstance(exc, TimeoutError | TransportError):
                    continue
                raise
            return Response(raw, url, functools.partial(self._done, key, connection))
        raise AssertionError("unreachable")

    def _done(self, key: _Key, connection: http.client.HTTPConnection, reusable: bool) -> None:
        """A response is finished with: its connection goes back idle, or is closed."""
        idle = self._idle()
        if reusable and key not in idle:
            idle[key] = connection
        else:
            self._discard(connection)

    def _discard(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        with self._lock:
            if connection in self._open:
                self._open.remove(connection)

    def _idle(self) -> dict[_Key, http.client.HTTPConnection]:
        idle: dict[_Key, http.client.HTTPConnection] | None = getattr(self._local, "idle", None)
        if idle is None:
            idle = self._local.idle = {}
        return idle

    def _checkout(
        self, key: _Key, proxy: Proxy | None, fresh: bool
    ) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's idle connection for ``key`` (and whether it is open), or a new one."""
        connection = None if fresh else self._idle().pop(key, None)
        if connection is not None:
            return connection, connection.sock is not None
        connection = self._connection(key, proxy)
        with self._lock:
            self._open.append(connection)
        return connection, False

    def _connection(self, key: _Key, proxy: Proxy | None) -> http.client.HTTPConnection:
        scheme, host, port, _ = key
        connect_timeout, read_timeout = self.timeout
        address = (proxy.host, proxy.port) if proxy else (host, port)
        connection: _HTTPConnection | _HTTPSConnection
        if scheme == "https":
            connection = _HTTPSConnection(
                *address, timeout=connect_timeout, context=self._context()
            )
            if proxy is not None:
                tunnel_headers: dict[str, Any] = {}
                if proxy.authorization:
                    tunnel_headers["Proxy-Authorization"] = proxy.authorization
                connection.set_tunnel(host, port, headers=tunnel_headers)
        else:
            connection = _HTTPConnection(*address, timeout=connect_timeout)
        connection.read_timeout = read_timeout
        return connection

    def _context(self) -> ssl.SSLContext:
        """The TLS settings, made once: the system's CA store, or the one CA file named."""
        with self._lock:
            if self._tls is None:
                import ssl  # only https pays for it

                ca_file = self.ca_file or self.environ.get("REQUESTS_CA_BUNDLE") or None
                self._tls = ssl.create_default_context(cafile=ca_file)
            return self._tls
