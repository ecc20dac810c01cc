"""The one HTTP client of the build: retries, backoff, timeouts, proxies, resumable downloads.

Every request the bundler makes goes through a client from ``make_session`` (an
``HttpClient``, standard library only: bundler/httpclient.py): connection errors,
timeouts, resets and 429/5xx answers are retried with exponential backoff
``backoff * 2**n`` (a Retry-After answer is honoured, up to 60 s); a host whose name
does not resolve or that refuses the connection is final at once. Every request has a
connect and a read timeout, redirects are followed (at most 10, a loop refused), and
connections are kept alive per thread.

Honoured from the environment (read on each request, as urllib reads them, lower case
first): ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` (http:// proxies; https goes
through them in a CONNECT tunnel; ``user:password@`` in the proxy URL is sent as
Proxy-Authorization Basic) and ``NO_PROXY`` (``*``, hosts, domain suffixes,
``host:port``, CIDR networks). TLS is verified against the system's CA store
(``ssl.create_default_context()``), which OpenSSL lets ``SSL_CERT_FILE`` and
``SSL_CERT_DIR`` replace; ``REQUESTS_CA_BUNDLE``, if set, is the only CA file used.
Bodies are asked for as identity (no compression).

``download`` writes to ``DEST.part`` and resumes it with a Range request after an
interruption; only a complete file is renamed to ``DEST``. Progress is reported
through a callback, never printed here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from bundler.httpclient import HttpClient, Response, Timeout, TransportError
from installer import __version__
from installer.errors import GpubundleError

USER_AGENT = f"gpubundle/{__version__} (+offline NVIDIA Container Toolkit bundler)"
# (connect, read) seconds; read is the longest silence tolerated, not the whole transfer.
DEFAULT_TIMEOUT = (15.0, 60.0)
CHUNK = 64 * 1024
NETWORK_HINT = (
    "check the network, the HTTP_PROXY/HTTPS_PROXY/NO_PROXY settings, and the mirror URL "
    "(override a source with --mirror ID=URL)"
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "NETWORK_HINT",
    "USER_AGENT",
    "HttpClient",
    "NotFoundError",
    "download",
    "fetch_bytes",
    "make_session",
    "part_path",
]


def make_session(
    *,
    retries: int = 5,
    backoff: float = 0.5,
    timeout: Timeout = DEFAULT_TIMEOUT,
    ca_file: Path | None = None,
) -> HttpClient:
    """A client that retries transient failures with backoff ``backoff * 2**n`` seconds.

    ``ca_file`` trusts that CA file instead of the system's store (tests use it).
    """
    return HttpClient(
        user_agent=USER_AGENT, retries=retries, backoff=backoff, timeout=timeout, ca_file=ca_file
    )


class NotFoundError(GpubundleError):
    """The server answered 404: callers with a fallback (InRelease -> Release) catch this."""


def _network_error(url: str, exc: TransportError) -> GpubundleError:
    return GpubundleError(f"cannot download {url}: {exc}", hint=NETWORK_HINT)


def _check(response: Response, url: str) -> None:
    if response.status == 404:
        raise NotFoundError(
            f"{url} does not exist on the server (HTTP 404)",
            hint="check the mirror URL and the distro/suite; a mirror may lag behind its origin",
        )
    if response.status >= 400:
        raise GpubundleError(
            f"{url} answered HTTP {response.status} {response.reason} (after retries)",
            hint=NETWORK_HINT,
        )


def _get(session: HttpClient, url: str, headers: Mapping[str, str] | None = None) -> Response:
    try:
        return session.get(url, headers)
    except TransportError as exc:
        raise _network_error(url, exc) from exc


def fetch_bytes(session: HttpClient, url: str) -> bytes:
    """The body of ``url``, for small files (Release, keys); raises GpubundleError on failure."""
    with _get(session, url) as response:
        _check(response, url)
        try:
            return response.read()
        except TransportError as exc:
            raise _network_error(url, exc) from exc


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def download(
    session: HttpClient,
    url: str,
    dest: Path,
    *,
    expected_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    attempts: int = 5,
) -> None:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming a partial file.

    An interrupted body is resumed with a Range request up to ``attempts``
    times; a server that ignores Range restarts from zero. The size is checked
    against ``expected_size``; hashes are the caller's job.
    """
    part = part_path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        offset = part.stat().st_size if part.exists() else 0
        if expected_size is not None and offset > expected_size:
            part.unlink()
            offset = 0
        if expected_size is not None and offset == expected_size and offset > 0:
            break
        try:
            _download_once(session, url, part, offset, progress)
            break
        except TransportError as exc:
            if attempt == attempts:
                raise _network_error(url, exc) from exc
    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        part.unlink()
        raise GpubundleError(
            f"{url}: got {size} bytes, expected {expected_size}",
            hint="the mirror serves a different file than its index promises; retry later or "
            "use another mirror with --mirror ID=URL",
        )
    os.replace(part, dest)


def _download_once(
    session: HttpClient,
    url: str,
    part: Path,
    offset: int,
    progress: Callable[[int], None] | None,
) -> None:
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with _get(session, url, headers) as response:
        if offset and response.status == 416:
            response.close()
            part.unlink()  # the partial file is not a prefix the server can continue
            _download_once(session, url, part, 0, progress)
            return
        _check(response, url)
        resumed = offset > 0 and response.status == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            raise GpubundleError(
                f"{url}: the server answered a resume request with another range",
                hint="delete the partial file " + str(part) + " and retry",
            )
        mode = "ab" if resumed else "wb"
        if resumed and progress:
            progress(offset)
        with part.open(mode) as out:
            for chunk in response.iter_content(CHUNK):
                out.write(chunk)
                if progress:
                    progress(len(chunk))
