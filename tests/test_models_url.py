"""`URL` and `Origin` of `httpcore.base._models`: the string, bytes and keyword forms, targets,
ports, equality, hashing and repr, and the origin of a URL."""

from __future__ import annotations

import pytest
from models_helpers import raises_exact

from httpcore.base._exceptions import UnsupportedProtocol
from httpcore.base._models import URL, Origin

# ---------------------------------------------------------------------------------------------
# URL
# ---------------------------------------------------------------------------------------------


def test_url_string_form() -> None:
    url = URL("https://www.example.com/path?query=1#frag")
    assert url.scheme == b"https"
    assert url.host == b"www.example.com"
    assert url.port is None
    assert url.target == b"/path?query=1"


def test_url_bytes_form() -> None:
    url = URL(b"http://example.com:8080/a/b")
    assert (url.scheme, url.host, url.port, url.target) == (b"http", b"example.com", 8080, b"/a/b")


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("https://www.example.com", b"/"),
        ("https://www.example.com/", b"/"),
        ("http://example.com?x=1", b"/?x=1"),
        ("http://example.com/?", b"/"),
        ("http://example.com/a#frag", b"/a"),
        ("http://a/b;c?d", b"/b;c?d"),
        ("http://a/b;c/d;e", b"/b;c/d;e"),
        ("http://a/%20x", b"/%20x"),
    ],
)
def test_url_targets(text: str, target: bytes) -> None:
    assert URL(text).target == target


def test_url_explicit_default_port_is_kept() -> None:
    assert URL("https://www.example.com:443/").port == 443


def test_url_lowercases_scheme_and_host_and_drops_userinfo() -> None:
    url = URL("HTTPS://user:pass@WWW.Example.COM:8443/Path")
    assert url.scheme == b"https"
    assert url.host == b"www.example.com"
    assert url.port == 8443
    assert url.target == b"/Path"


def test_url_ipv6() -> None:
    url = URL("http://[::1]:8080/x")
    assert url.host == b"::1"
    assert url.port == 8080
    assert bytes(url) == b"http://[::1]:8080/x"
    assert bytes(URL("http://[::1]/")) == b"http://[::1]/"


def test_url_missing_scheme() -> None:
    url = URL("www.example.com")
    assert url.scheme == b""
    assert url.host == b""


def test_url_invalid_port() -> None:
    with raises_exact(ValueError, "Port could not be cast to integer value as b'abc'"):
        URL("http://example.com:abc/")
    with raises_exact(ValueError, "Port out of range 0-65535"):
        URL("http://example.com:70000/")


def test_url_bad_types() -> None:
    with raises_exact(TypeError, "url must be bytes or str, but got int."):
        URL(123)  # type: ignore[arg-type]
    with raises_exact(TypeError, "url strings may not include unicode characters."):
        URL("https://www.example.com/☺")


def test_url_empty() -> None:
    for url in (URL(), URL(b""), URL("")):
        assert url.scheme == b""
        assert url.host == b""
        assert url.port is None
        assert url.target == b""


def test_url_keyword_form() -> None:
    url = URL(scheme="https", host="example.com", port=1234, target="*")
    assert (url.scheme, url.host, url.port, url.target) == (b"https", b"example.com", 1234, b"*")
    proxy_style = URL(scheme=b"http", host=b"proxy", port=8080, target=b"http://example.com/")
    assert proxy_style.target == b"http://example.com/"


def test_url_keyword_form_allows_non_ascii_bytes_and_unvalidated_port() -> None:
    url = URL(scheme=b"http", host=b"h", port=99999, target=b"/\xff")
    assert url.target == b"/\xff"
    assert url.port == 99999


def test_url_keyword_form_bad_types() -> None:
    with raises_exact(TypeError, "scheme must be bytes or str, but got int."):
        URL(scheme=1)  # type: ignore[arg-type]
    with raises_exact(TypeError, "host must be bytes or str, but got int."):
        URL(host=1)  # type: ignore[arg-type]
    with raises_exact(TypeError, "target must be bytes or str, but got int."):
        URL(target=1)  # type: ignore[arg-type]
    with raises_exact(TypeError, "target strings may not include unicode characters."):
        URL(target="/☺")


def test_url_keyword_args_ignored_when_url_given() -> None:
    url = URL("http://a/b", scheme="https", host="c", port=1, target="/d")
    assert url == URL("http://a/b")


def test_url_attributes_are_mutable() -> None:
    url = URL("http://a/b")
    url.target = b"/c"
    url.port = 81
    assert bytes(url) == b"http://a:81/c"


def test_url_repeated_parse_gives_independent_objects() -> None:
    first = URL("http://example.com/cached")
    second = URL("http://example.com/cached")
    first.target = b"/changed"
    assert second.target == b"/cached"
    assert URL("http://example.com/cached").target == b"/cached"


def test_url_equality() -> None:
    assert URL("https://example.com/") == URL(b"https://example.com/")
    assert URL("https://example.com/") != URL("https://example.com:443/")
    assert URL("https://example.com/") != URL("https://example.com/x")
    assert URL("https://example.com/") != URL("http://example.com/")
    assert URL("https://example.com/") != URL("https://example.org/")
    assert URL("https://example.com/") != "https://example.com/"
    assert URL("https://example.com/") != b"https://example.com/"


def test_url_hash() -> None:
    a = URL("https://example.com/")
    b = URL(scheme=b"https", host=b"example.com", target=b"/")
    assert hash(a) == hash(b)
    assert len({a, b, URL("https://example.com:443/")}) == 2


def test_url_bytes() -> None:
    assert bytes(URL("https://example.com/a?b")) == b"https://example.com/a?b"
    assert bytes(URL("https://example.com:8443/")) == b"https://example.com:8443/"
    assert bytes(URL(scheme=b"http", host=b"::1", port=80, target=b"/")) == b"http://[::1]:80/"
    assert bytes(URL(scheme=b"http", host=b"[::1]", target=b"/")) == b"http://[::1]/"


def test_url_repr() -> None:
    assert repr(URL("https://www.example.com/")) == (
        "URL(scheme=b'https', host=b'www.example.com', port=None, target=b'/')"
    )
    assert repr(URL("http://a:1/")) == "URL(scheme=b'http', host=b'a', port=1, target=b'/')"


def test_url_has_no_custom_str() -> None:
    url = URL("https://example.com/")
    assert str(url) == repr(url)


@pytest.mark.parametrize(
    ("text", "scheme", "port"),
    [
        ("http://h/", b"http", 80),
        ("https://h/", b"https", 443),
        ("ws://h/", b"ws", 80),
        ("wss://h/", b"wss", 443),
        ("socks5://h", b"socks5", 1080),
        ("socks5h://h", b"socks5h", 1080),
        ("socks4://h", b"socks4", 1080),
        ("socks4a://h", b"socks4a", 1080),
        ("http://h:8080/", b"http", 8080),
        ("https://h:80/", b"https", 80),
    ],
)
def test_url_origin(text: str, scheme: bytes, port: int) -> None:
    assert URL(text).origin == Origin(scheme, b"h", port)


def test_url_origin_ipv6() -> None:
    origin = URL("https://[::1]/").origin
    assert origin == Origin(b"https", b"::1", 443)
    assert str(origin) == "https://[::1]:443"


def test_url_origin_unsupported_scheme() -> None:
    with raises_exact(UnsupportedProtocol, "Request URL has an unsupported protocol 'ftp://'."):
        URL("ftp://example.com/").origin  # noqa: B018
    with raises_exact(UnsupportedProtocol, "Request URL has an unsupported protocol 'ftp://'."):
        URL("ftp://example.com:21/").origin  # noqa: B018


def test_url_origin_missing_scheme() -> None:
    message = "Request URL is missing an 'http://' or 'https://' protocol."
    with raises_exact(UnsupportedProtocol, message):
        URL("www.example.com").origin  # noqa: B018
    with raises_exact(UnsupportedProtocol, message):
        URL().origin  # noqa: B018


# ---------------------------------------------------------------------------------------------
# Origin
# ---------------------------------------------------------------------------------------------


def test_origin_attributes_and_keywords() -> None:
    origin = Origin(scheme=b"https", host=b"example.com", port=443)
    assert (origin.scheme, origin.host, origin.port) == (b"https", b"example.com", 443)
    assert Origin(b"https", b"example.com", 443) == origin


def test_origin_no_coercion() -> None:
    origin = Origin("https", "example.com", 443)  # type: ignore[arg-type]
    assert origin.scheme == "https"  # type: ignore[comparison-overlap]


def test_origin_equality() -> None:
    origin = Origin(b"https", b"example.com", 443)
    assert origin != Origin(b"http", b"example.com", 443)
    assert origin != Origin(b"https", b"example.org", 443)
    assert origin != Origin(b"https", b"example.com", 444)
    assert origin != "https://example.com:443"


def test_origin_hash() -> None:
    a = Origin(b"https", b"example.com", 443)
    b = Origin(b"https", b"example.com", 443)
    assert hash(a) == hash(b)
    assert {a: 1}[b] == 1
    assert len({a, b, Origin(b"http", b"example.com", 80)}) == 2


def test_origin_str() -> None:
    assert str(Origin(b"https", b"example.com", 443)) == "https://example.com:443"
    assert str(Origin(b"socks5", b"127.0.0.1", 1080)) == "socks5://127.0.0.1:1080"


def test_origin_repr() -> None:
    assert repr(Origin(b"https", b"example.com", 443)) == (
        "Origin(scheme=b'https', host=b'example.com', port=443)"
    )
