"""The request side of `httpcore.base._models`: the coercion helpers (`enforce_bytes`,
`enforce_url`, `enforce_headers`), the automatic headers of `include_request_headers`, `Request`
and `Proxy`; and `default_ssl_context` of `_ssl`."""

from __future__ import annotations

import ssl
from typing import Any, List

import certifi
import pytest
from models_helpers import AsyncChunks, raises_exact

from httpcore.base._models import (
    URL,
    ByteStream,
    Origin,
    Proxy,
    Request,
    enforce_bytes,
    enforce_headers,
    enforce_url,
    include_request_headers,
)
from httpcore.base._ssl import default_ssl_context

# ---------------------------------------------------------------------------------------------
# enforce_bytes / enforce_url / enforce_headers
# ---------------------------------------------------------------------------------------------


def test_enforce_bytes_passes_bytes_through() -> None:
    value = b"abc"
    assert enforce_bytes(value, name="x") is value


def test_enforce_bytes_accepts_bytes_subclass() -> None:
    class B(bytes):
        pass

    value = B(b"abc")
    assert enforce_bytes(value, name="x") == b"abc"


def test_enforce_bytes_encodes_ascii_str() -> None:
    result = enforce_bytes("abc", name="x")
    assert result == b"abc"
    assert type(result) is bytes


def test_enforce_bytes_rejects_unicode_str() -> None:
    with raises_exact(TypeError, "method strings may not include unicode characters."):
        enforce_bytes("GÉT", name="method")


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(123, "int"), (bytearray(b"a"), "bytearray"), (None, "NoneType"), (1.5, "float")],
)
def test_enforce_bytes_rejects_other_types(value: Any, type_name: str) -> None:
    with raises_exact(TypeError, f"thing must be bytes or str, but got {type_name}."):
        enforce_bytes(value, name="thing")


def test_enforce_url_returns_same_url_object() -> None:
    url = URL("https://example.com/")
    assert enforce_url(url, name="url") is url


@pytest.mark.parametrize("value", ["https://example.com/a", b"https://example.com/a"])
def test_enforce_url_parses_bytes_and_str(value: Any) -> None:
    url = enforce_url(value, name="url")
    assert url == URL(scheme=b"https", host=b"example.com", port=None, target=b"/a")


def test_enforce_url_rejects_other_types() -> None:
    with raises_exact(TypeError, "url must be a URL, bytes, or str, but got int."):
        enforce_url(123, name="url")  # type: ignore[arg-type]
    with raises_exact(TypeError, "proxy_url must be a URL, bytes, or str, but got list."):
        enforce_url([], name="proxy_url")  # type: ignore[arg-type]


def test_enforce_headers_none() -> None:
    assert enforce_headers(None, name="headers") == []


def test_enforce_headers_mapping() -> None:
    assert enforce_headers({"a": "1", b"B": b"2"}, name="headers") == [(b"a", b"1"), (b"B", b"2")]


def test_enforce_headers_sequence_preserves_case_order_and_duplicates() -> None:
    headers = [("X-A", "1"), (b"x-a", b"2"), ("Host", b"h")]
    result = enforce_headers(headers, name="headers")  # type: ignore[arg-type]
    assert result == [(b"X-A", b"1"), (b"x-a", b"2"), (b"Host", b"h")]
    assert all(type(k) is bytes and type(v) is bytes for k, v in result)


def test_enforce_headers_tuple_of_tuples_and_list_of_lists() -> None:
    assert enforce_headers(((b"a", b"1"),), name="headers") == [(b"a", b"1")]
    result = enforce_headers([[b"a", b"1"]], name="headers")  # type: ignore[list-item]
    assert result == [(b"a", b"1")]
    assert isinstance(result[0], tuple)


def test_enforce_headers_returns_new_list() -> None:
    headers = [(b"a", b"1")]
    result = enforce_headers(headers, name="headers")
    assert result == headers
    assert result is not headers


def test_enforce_headers_rejects_other_types() -> None:
    with raises_exact(
        TypeError, "headers must be a mapping or sequence of two-tuples, but got int."
    ):
        enforce_headers(123, name="headers")  # type: ignore[arg-type]
    with raises_exact(
        TypeError, "proxy_headers must be a mapping or sequence of two-tuples, but got set."
    ):
        enforce_headers({(b"a", b"b")}, name="proxy_headers")  # type: ignore[arg-type]


def test_enforce_headers_wrong_arity_is_value_error() -> None:
    with pytest.raises(ValueError):
        enforce_headers([(b"a", b"b", b"c")], name="headers")  # type: ignore[list-item]
    with pytest.raises(ValueError):
        enforce_headers([(b"a",)], name="headers")  # type: ignore[list-item]


def test_enforce_headers_bad_names_and_values() -> None:
    with raises_exact(TypeError, "header value must be bytes or str, but got int."):
        enforce_headers([(b"a", 1)], name="headers")  # type: ignore[list-item]
    with raises_exact(TypeError, "header name must be bytes or str, but got int."):
        enforce_headers([(1, b"a")], name="headers")  # type: ignore[list-item]
    with raises_exact(TypeError, "header value strings may not include unicode characters."):
        enforce_headers([("a", "☺")], name="headers")
    with raises_exact(TypeError, "header name strings may not include unicode characters."):
        enforce_headers({"☺": "a"}, name="headers")


# ---------------------------------------------------------------------------------------------
# include_request_headers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("http://example.com/", b"example.com"),
        ("http://example.com:80/", b"example.com"),
        ("https://example.com:443/", b"example.com"),
        ("ws://example.com:80/", b"example.com"),
        ("wss://example.com:443/", b"example.com"),
        ("ftp://example.com:21/", b"example.com"),
        ("http://example.com:8080/", b"example.com:8080"),
        ("https://example.com:80/", b"example.com:80"),
        ("http://[::1]/", b"[::1]"),
        ("http://[::1]:8080/", b"[::1]:8080"),
        ("http://[::1]:80/", b"[::1]"),
    ],
)
def test_include_host_header(text: str, host: bytes) -> None:
    headers = include_request_headers([], url=URL(text), content=None)
    assert headers == [(b"Host", host)]


def test_include_host_header_is_prepended() -> None:
    headers = include_request_headers([(b"Accept", b"*/*")], url=URL("http://a/"), content=None)
    assert headers == [(b"Host", b"a"), (b"Accept", b"*/*")]


def test_include_host_header_not_added_when_present() -> None:
    given = [(b"HOST", b"other")]
    headers = include_request_headers(given, url=URL("http://a/"), content=None)
    assert headers == [(b"HOST", b"other")]
    assert headers is not given


def test_include_headers_returns_new_list() -> None:
    given = [(b"Accept", b"*/*")]
    headers = include_request_headers(given, url=URL("http://a/"), content=b"x")
    assert given == [(b"Accept", b"*/*")]
    assert headers == [(b"Host", b"a"), (b"Accept", b"*/*"), (b"Content-Length", b"1")]


def test_include_content_length_for_bytes() -> None:
    url = URL("http://example.com:8080/p?q")
    assert include_request_headers([], url=url, content=b"abc") == [
        (b"Host", b"example.com:8080"),
        (b"Content-Length", b"3"),
    ]
    assert include_request_headers([], url=url, content=b"") == [
        (b"Host", b"example.com:8080"),
        (b"Content-Length", b"0"),
    ]


def test_include_transfer_encoding_for_iterables() -> None:
    url = URL("http://a/")
    for content in (iter([b"a"]), [b"a"], AsyncChunks(b"a")):
        assert include_request_headers([], url=url, content=content) == [
            (b"Host", b"a"),
            (b"Transfer-Encoding", b"chunked"),
        ]


def test_include_no_body_headers_without_content() -> None:
    assert include_request_headers([], url=URL("http://a/"), content=None) == [(b"Host", b"a")]


@pytest.mark.parametrize(
    "existing", [(b"content-length", b"5"), (b"Transfer-Encoding", b"gzip, chunked")]
)
def test_include_body_headers_not_added_when_present(existing: Any) -> None:
    for content in (b"abc", iter([b"abc"])):
        headers = include_request_headers([existing], url=URL("http://a/"), content=content)
        assert headers == [(b"Host", b"a"), existing]


# ---------------------------------------------------------------------------------------------
# Request
# ---------------------------------------------------------------------------------------------


def test_request_basics() -> None:
    request = Request("GET", "https://www.example.com/")
    assert request.method == b"GET"
    assert request.url == URL("https://www.example.com/")
    assert request.headers == []
    assert request.extensions == {}
    assert isinstance(request.stream, ByteStream)
    assert list(request.stream) == [b""]
    assert repr(request) == "<Request [b'GET']>"


def test_request_url_object_is_kept() -> None:
    url = URL("https://example.com/")
    assert Request(b"GET", url).url is url


def test_request_bytes_url() -> None:
    assert Request(b"GET", b"https://example.com/x").url.target == b"/x"


def test_request_bad_method() -> None:
    with raises_exact(TypeError, "method must be bytes or str, but got int."):
        Request(123, "https://example.com/")  # type: ignore[arg-type]
    with raises_exact(TypeError, "method strings may not include unicode characters."):
        Request("GÉT", "https://example.com/")


def test_request_bad_url() -> None:
    with raises_exact(TypeError, "url must be a URL, bytes, or str, but got int."):
        Request("GET", 123)  # type: ignore[arg-type]


def test_request_bad_headers() -> None:
    with raises_exact(
        TypeError, "headers must be a mapping or sequence of two-tuples, but got int."
    ):
        Request("GET", "https://example.com/", headers=123)  # type: ignore[arg-type]
    with raises_exact(TypeError, "header value must be bytes or str, but got int."):
        Request("GET", "https://example.com/", headers={"a": 1})  # type: ignore[dict-item]


def test_request_headers_normalised_without_automatic_headers() -> None:
    request = Request("POST", "https://example.com/", headers={"X-Y": "z"}, content=b"abc")
    assert request.headers == [(b"X-Y", b"z")]


def test_request_content() -> None:
    request = Request("POST", "https://example.com/", content=b"abc")
    assert isinstance(request.stream, ByteStream)
    assert list(request.stream) == [b"abc"]
    body = iter([b"a", b"b"])
    assert Request("POST", "https://example.com/", content=body).stream is body
    async_body = AsyncChunks(b"a")
    assert Request("POST", "https://example.com/", content=async_body).stream is async_body


def test_request_extensions_object_kept() -> None:
    extensions = {"timeout": {"connect": 1.0}}
    request = Request("GET", "https://example.com/", extensions=extensions)
    assert request.extensions is extensions


def test_request_target_extension() -> None:
    url = URL("https://example.com:8443/path?q")
    request = Request("GET", url, extensions={"target": b"/unescaped|path"})
    assert request.url.target == b"/unescaped|path"
    assert request.url == URL(
        scheme=b"https", host=b"example.com", port=8443, target=b"/unescaped|path"
    )
    assert url.target == b"/path?q"  # the given URL object is not mutated
    assert request.url is not url


def test_request_target_extension_str_and_bad_type() -> None:
    request = Request("GET", "http://a/", extensions={"target": "/x"})
    assert request.url.target == b"/x"
    with raises_exact(TypeError, "target must be bytes or str, but got int."):
        Request("GET", "http://a/", extensions={"target": 1})


# ---------------------------------------------------------------------------------------------
# Proxy
# ---------------------------------------------------------------------------------------------


def test_proxy_basics() -> None:
    proxy = Proxy("http://localhost:8080/")
    assert proxy.url == URL("http://localhost:8080/")
    assert proxy.headers == []
    assert proxy.auth is None
    assert proxy.ssl_context is None


def test_proxy_url_object_kept_and_bad_url() -> None:
    url = URL("http://localhost:8080/")
    assert Proxy(url).url is url
    with raises_exact(TypeError, "url must be a URL, bytes, or str, but got int."):
        Proxy(123)  # type: ignore[arg-type]


def test_proxy_auth() -> None:
    proxy = Proxy(url="http://localhost:8080/", auth=("username", "password"))
    assert proxy.auth == (b"username", b"password")
    assert proxy.headers == [(b"Proxy-Authorization", b"Basic dXNlcm5hbWU6cGFzc3dvcmQ=")]


def test_proxy_auth_header_prepended() -> None:
    proxy = Proxy("http://localhost:8080/", auth=(b"u", b"p"), headers={"X-Proxy": "1"})
    assert proxy.headers == [(b"Proxy-Authorization", b"Basic dTpw"), (b"X-Proxy", b"1")]


def test_proxy_auth_errors() -> None:
    with raises_exact(TypeError, "auth strings may not include unicode characters."):
        Proxy("http://localhost:8080/", auth=("usér", "password"))
    with raises_exact(TypeError, "auth must be bytes or str, but got int."):
        Proxy("http://localhost:8080/", auth=("user", 1))  # type: ignore[arg-type]


def test_proxy_headers() -> None:
    given: List[Any] = [("X-A", "b")]
    proxy = Proxy("http://localhost:8080/", headers=given)
    assert proxy.headers == [(b"X-A", b"b")]
    with raises_exact(
        TypeError, "headers must be a mapping or sequence of two-tuples, but got int."
    ):
        Proxy("http://localhost:8080/", headers=1)  # type: ignore[arg-type]


def test_proxy_ssl_context() -> None:
    context = ssl.create_default_context()
    assert Proxy("https://localhost:8443/", ssl_context=context).ssl_context is context


def test_proxy_socks_origin() -> None:
    assert Proxy("socks5://localhost").url.origin == Origin(b"socks5", b"localhost", 1080)


# ---------------------------------------------------------------------------------------------
# default_ssl_context
# ---------------------------------------------------------------------------------------------


def test_default_ssl_context() -> None:
    first = default_ssl_context()
    second = default_ssl_context()
    assert isinstance(first, ssl.SSLContext)
    assert first is not second
    assert first.verify_mode == ssl.CERT_REQUIRED
    assert first.check_hostname
    assert first.cert_store_stats()["x509_ca"] > 0
    assert certifi.where()
