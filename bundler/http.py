"""The one HTTP session of the build: retries, backoff, timeouts, proxies, resumable downloads.

Every request the bundler makes goes through a session from ``make_session``:
connection and read errors and 429/5xx answers are retried with exponential
backoff, every request has a timeout, and proxies come from the usual
``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` variables (requests reads them;
nothing here turns that off). ``download`` writes to ``DEST.part`` and resumes
it with a Range request after an interruption; only a complete file is renamed
to ``DEST``. Progress is reported through a callback, never printed here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NameResolutionError, NewConnectionError
from urllib3.util.retry import Retry

from installer import __version__
from installer.errors import GpubundleError

USER_AGENT = f"gpubundle/{__version__} (+offline NVIDIA Container Toolkit bundler)"
# (connect, read) seconds; read is the longest silence tolerated, not the whole transfer.
DEFAULT_TIMEOUT = (15.0, 60.0)
RETRY_STATUSES = (429, 500, 502, 503, 504)
CHUNK = 64 * 1024
NETWORK_HINT = (
    "check the network, the HTTP_PROXY/HTTPS_PROXY/NO_PROXY settings, and the mirror URL "
    "(override a source with --mirror ID=URL)"
)

# urllib3 logs each retry as a WARNING ("Retrying (Retry(total=4, ...))"); with no logging
# configured Python prints those raw on stderr. The final error says what happened instead.
logging.getLogger("urllib3").addHandler(logging.NullHandler())
logging.getLogger("urllib3").propagate = False

Timeout = tuple[float, float]


class _TimeoutAdapter(HTTPAdapter):
    """An adapter that gives every request the session's default timeout unless one is passed."""

    def __init__(self, timeout: Timeout, **kwargs: Any) -> None:
        self._timeout = timeout
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, **kwargs)


def _unreachable(error: BaseException | None) -> bool:
    """A name that does not resolve, or a host that refuses the connection: final, not transient."""
    if isinstance(error, NameResolutionError):
        return True
    return isinstance(error, NewConnectionError) and isinstance(
        error.__context__, ConnectionRefusedError
    )


class _Retry(Retry):
    """urllib3's Retry, except that an unreachable host is final at once.

    "No such host" and "connection refused" do not change within the seconds of a
    backoff: retrying them only delayed the error by 15-18 s for a mistyped or
    unreachable mirror. Timeouts, resets and 429/5xx answers are still retried.
    """

    def increment(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> Retry:
        if _unreachable(kwargs.get("error")):
            return Retry.increment(self.new(total=0, connect=0), *args, **kwargs)
        return super().increment(*args, **kwargs)


def make_session(
    *, retries: int = 5, backoff: float = 0.5, timeout: Timeout = DEFAULT_TIMEOUT
) -> requests.Session:
    """A session that retries transient failures with backoff ``backoff * 2**n`` seconds."""
    retry = _Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False,  # the last answer comes back; _check turns it into an error
        respect_retry_after_header=True,
    )
    session = requests.Session()
    session.trust_env = True  # proxies and CA bundle from the environment
    session.headers["User-Agent"] = USER_AGENT
    adapter = _TimeoutAdapter(timeout, max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class NotFoundError(GpubundleError):
    """The server answered 404: callers with a fallback (InRelease -> Release) catch this."""


def _cause(exc: BaseException) -> str:
    """What went wrong, in words, instead of urllib3's nested reprs."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, NameResolutionError):
            return f"the host name {seen.conn.host} does not resolve"
        if isinstance(seen, NewConnectionError) and isinstance(
            seen.__context__, ConnectionRefusedError
        ):
            return f"{seen.conn.host}:{seen.conn.port} refused the connection"
        if isinstance(seen, requests.Timeout):
            return "no answer in time (after retries)"
        reason = getattr(seen, "reason", None)
        seen = reason if isinstance(reason, BaseException) else seen.__cause__ or seen.__context__
    return str(exc)


def _network_error(url: str, exc: Exception) -> GpubundleError:
    return GpubundleError(f"cannot download {url}: {_cause(exc)}", hint=NETWORK_HINT)


def _check(response: requests.Response, url: str) -> None:
    if response.status_code == 404:
        raise NotFoundError(
            f"{url} does not exist on the server (HTTP 404)",
            hint="check the mirror URL and the distro/suite; a mirror may lag behind its origin",
        )
    if response.status_code >= 400:
        raise GpubundleError(
            f"{url} answered HTTP {response.status_code} {response.reason} (after retries)",
            hint=NETWORK_HINT,
        )


def _get(
    session: requests.Session, url: str, headers: Mapping[str, str] | None = None
) -> requests.Response:
    try:
        return session.get(url, headers=dict(headers or {}), stream=True)
    except requests.RequestException as exc:
        raise _network_error(url, exc) from exc


def fetch_bytes(session: requests.Session, url: str) -> bytes:
    """The body of ``url``, for small files (Release, keys); raises GpubundleError on failure."""
    with _get(session, url) as response:
        _check(response, url)
        try:
            return response.content
        except requests.RequestException as exc:
            raise _network_error(url, exc) from exc


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def download(
    session: requests.Session,
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
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
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
    session: requests.Session,
    url: str,
    part: Path,
    offset: int,
    progress: Callable[[int], None] | None,
) -> None:
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with _get(session, url, headers) as response:
        if offset and response.status_code == 416:
            response.close()
            part.unlink()  # the partial file is not a prefix the server can continue
            _download_once(session, url, part, 0, progress)
            return
        _check(response, url)
        resumed = offset > 0 and response.status_code == 206
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
