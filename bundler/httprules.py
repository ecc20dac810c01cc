"""The HTTP client's decisions as pure functions: proxy choice, backoff, Retry-After, redirects.

Nothing here opens a socket or reads the process environment: the environment is
passed in as a mapping, the clock as a number, so tests feed them.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import unquote, urljoin, urlsplit

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
MAX_BACKOFF = 60.0  # seconds: neither a backoff step nor a server's Retry-After waits longer
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy: ``host:port``, and the Proxy-Authorization value if the URL had credentials."""

    url: str
    host: str
    port: int
    authorization: str | None


def _proxy_variable(scheme: str, environ: Mapping[str, str]) -> str | None:
    """``scheme_proxy`` as urllib reads it: lower case first; ``HTTP_PROXY`` ignored under CGI."""
    for name in (f"{scheme}_proxy", "all_proxy"):
        value = environ.get(name)
        if value is None and not (name == "http_proxy" and "REQUEST_METHOD" in environ):
            value = environ.get(name.upper())
        if value:
            return value
    return None


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` exempts ``host``: ``*``, a host or domain suffix (a leading dot
    optional), ``host:port``, or for an IP address a network in CIDR notation."""
    host = host.lower().strip("[]")
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if _has_port(entry) else (entry, "", "")
        if entry_port and entry_port != str(port):
            continue
        name = name.strip("[]").lstrip(".")
        if host == name or host.endswith("." + name) or _in_network(host, name):
            return True
    return False


def _has_port(entry: str) -> bool:
    head, sep, tail = entry.rpartition(":")
    return bool(sep) and tail.isdigit() and (head.count(":") == 0 or head.endswith("]"))


def _in_network(host: str, entry: str) -> bool:
    if "/" not in entry:
        return False
    import ipaddress  # only for a CIDR entry: most builds never pay for it

    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False


def choose_proxy(scheme: str, host: str, port: int, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy for a request to ``scheme://host:port``, from ``*_PROXY``/``NO_PROXY``.

    Raises ValueError for a proxy URL that cannot be used (another scheme than http, no host).
    """
    value = _proxy_variable(scheme, environ)
    if value is None:
        return None
    no_proxy = environ.get("no_proxy", environ.get("NO_PROXY", ""))
    if bypassed(host, port, no_proxy):
        return None
    return parse_proxy(value)


def parse_proxy(value: str) -> Proxy:
    """A proxy URL (``http://user:pass@host:port``; no scheme means http)."""
    url = value if "://" in value else f"http://{value}"
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(
            f"proxy {value!r}: only http:// proxies are supported (https is tunnelled through them)"
        )
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return Proxy(url, parts.hostname, parts.port or 80, authorization)


def backoff_delays(backoff: float, retries: int) -> Iterator[float]:
    """The waits before retry 1..``retries``: ``backoff * 2**n``, each at most MAX_BACKOFF."""
    for n in range(retries):
        yield min(backoff * 2**n, MAX_BACKOFF)


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), capped at
    MAX_BACKOFF; None when absent or unreadable. ``now`` is a Unix time."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return min(max(seconds, 0.0), MAX_BACKOFF)


def redirect_target(url: str, location: str) -> str:
    """Where a redirect from ``url`` goes: ``Location`` absolute or relative, fragment dropped."""
    target = urljoin(url, location.strip())
    return target.split("#", 1)[0]


def redirect_problem(chain: list[str]) -> str | None:
    """Why following ``chain`` (the URLs so far, the newest last) must stop, else None."""
    if chain[-1] in chain[:-1]:
        return "the server redirects in a loop: " + " -> ".join(chain)
    if len(chain) > MAX_REDIRECTS + 1:
        return f"more than {MAX_REDIRECTS} redirects: {chain[0]} -> ... -> {chain[-1]}"
    if urlsplit(chain[-1]).scheme not in DEFAULT_PORTS:
        if len(chain) == 1:
            return f"{chain[0]} is not an http(s) URL"
        return f"redirected to {chain[-1]}, which is not an http(s) URL"
    return None
