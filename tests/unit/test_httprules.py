"""The HTTP client's pure decisions: proxy choice, backoff, Retry-After, redirects."""

from __future__ import annotations

import base64
import urllib.request

import pytest

from bundler.httprules import (
    MAX_BACKOFF,
    backoff_delays,
    bypassed,
    choose_proxy,
    parse_proxy,
    redirect_problem,
    redirect_target,
    retry_after,
)


def test_no_proxy_variables_means_direct() -> None:
    assert choose_proxy("http", "deb.debian.org", 80, {}) is None


def test_the_scheme_picks_the_variable() -> None:
    env = {"HTTP_PROXY": "http://plain:3128", "HTTPS_PROXY": "http://tls:3129"}
    plain = choose_proxy("http", "deb.debian.org", 80, env)
    tls = choose_proxy("https", "nvidia.github.io", 443, env)
    assert plain is not None and (plain.host, plain.port) == ("plain", 3128)
    assert tls is not None and (tls.host, tls.port) == ("tls", 3129)


def test_lower_case_wins_and_all_proxy_is_the_fallback() -> None:
    env = {"http_proxy": "lower:1", "HTTP_PROXY": "upper:2", "ALL_PROXY": "all:3"}
    chosen = choose_proxy("http", "h", 80, env)
    assert chosen is not None and chosen.host == "lower"
    fallback = choose_proxy("https", "h", 443, env)
    assert fallback is not None and (fallback.host, fallback.port) == ("all", 3)


def test_upper_case_http_proxy_is_ignored_under_cgi() -> None:
    """httpoxy: a CGI request's Proxy: header arrives as HTTP_PROXY; urllib ignores it too."""
    assert choose_proxy("http", "h", 80, {"HTTP_PROXY": "evil:1", "REQUEST_METHOD": "GET"}) is None
    assert choose_proxy("http", "h", 80, {"http_proxy": "ok:1", "REQUEST_METHOD": "GET"})


def test_a_proxy_url_without_scheme_or_port_is_http_on_80() -> None:
    proxy = parse_proxy("squid.corp")
    assert (proxy.url, proxy.host, proxy.port, proxy.authorization) == (
        "http://squid.corp",
        "squid.corp",
        80,
        None,
    )


def test_proxy_credentials_become_basic_authorization_unquoted() -> None:
    proxy = parse_proxy("http://dom%5Cuser:p%40ss%3Aword@proxy:8080")
    assert proxy.authorization == "Basic " + base64.b64encode(b"dom\\user:p@ss:word").decode()


def test_a_tls_proxy_is_refused() -> None:
    with pytest.raises(ValueError, match="only http:// proxies"):
        choose_proxy("https", "h", 443, {"HTTPS_PROXY": "https://proxy:443"})


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "expected"),
    [
        ("deb.debian.org", 80, "*", True),
        ("deb.debian.org", 80, "deb.debian.org", True),
        ("deb.debian.org", 80, "debian.org", True),
        ("deb.debian.org", 80, ".debian.org", True),
        ("deb.debian.org", 80, "DEBIAN.ORG", True),
        ("deb.debian.org", 80, "bian.org", False),
        ("deb.debian.org", 80, "example.org, debian.org", True),
        ("deb.debian.org", 80, " , ", False),
        ("deb.debian.org", 80, "deb.debian.org:80", True),
        ("deb.debian.org", 443, "deb.debian.org:80", False),
        ("127.0.0.1", 8080, "127.0.0.1", True),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("archive.ubuntu.com", 80, "10.0.0.0/8", False),
        ("::1", 80, "::1", True),
        ("fd00::5", 80, "fd00::/8", True),
        ("::1", 8080, "[::1]:8080", True),
    ],
)
def test_no_proxy_entries(host: str, port: int, no_proxy: str, expected: bool) -> None:
    assert bypassed(host, port, no_proxy) is expected


@pytest.mark.parametrize(
    ("host", "no_proxy"),
    [
        ("deb.debian.org", "debian.org"),
        ("deb.debian.org", ".debian.org"),
        ("deb.debian.org", "bian.org"),
        ("deb.debian.org", "example.org,deb.debian.org"),
        ("localhost", "localhost,127.0.0.1"),
        ("deb.debian.org", "*"),
    ],
)
def test_no_proxy_agrees_with_urllib_on_names(host: str, no_proxy: str) -> None:
    ours = bypassed(host, 80, no_proxy)
    assert ours == bool(urllib.request.proxy_bypass_environment(host, {"no": no_proxy}))


def test_no_proxy_exempts_before_the_proxy_is_parsed() -> None:
    env = {"https_proxy": "https://unusable:1", "no_proxy": "nvidia.github.io"}
    assert choose_proxy("https", "nvidia.github.io", 443, env) is None


def test_backoff_doubles_and_is_capped() -> None:
    assert list(backoff_delays(0.5, 5)) == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert list(backoff_delays(0, 3)) == [0, 0, 0]
    assert list(backoff_delays(10, 4))[-1] == MAX_BACKOFF
    assert list(backoff_delays(0.5, 0)) == []


NOW = 1_780_000_000.0  # 2026-05-28T20:26:40Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        (" 0 ", 0.0),
        ("86400", MAX_BACKOFF),
        ("Thu, 28 May 2026 20:26:50 GMT", 10.0),
        ("Thu, 28 May 2026 20:00:00 GMT", 0.0),  # a date already past: no wait
        ("soon", None),
        ("-5", None),
    ],
)
def test_retry_after(value: str | None, expected: float | None) -> None:
    assert retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/pool/main/a.deb", "http://m.example/pool/main/a.deb"),
        ("../b/c", "http://m.example/ubuntu/b/c"),
        ("c2", "http://m.example/ubuntu/dists/c2"),
        ("https://other.example/x#frag", "https://other.example/x"),
        ("//cdn.example/y", "http://cdn.example/y"),
    ],
)
def test_redirect_target(location: str, expected: str) -> None:
    assert redirect_target("http://m.example/ubuntu/dists/c", location) == expected


def test_redirect_problems() -> None:
    assert redirect_problem(["http://a/1", "http://a/2"]) is None
    loop = redirect_problem(["http://a/1", "http://a/2", "http://a/1"])
    assert loop == "the server redirects in a loop: http://a/1 -> http://a/2 -> http://a/1"
    many = [f"http://a/{i}" for i in range(12)]
    assert redirect_problem(many[:11]) is None
    assert redirect_problem(many) == "more than 10 redirects: http://a/0 -> ... -> http://a/11"
    assert redirect_problem(["ftp://a/1"]) == "ftp://a/1 is not an http(s) URL"
    assert redirect_problem(["http://a/1", "ftp://a/2"]) == (
        "redirected to ftp://a/2, which is not an http(s) URL"
    )
