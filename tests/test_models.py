"""Tests for the models and coercion helpers of `httpcore.base._models`, and `_ssl`."""

from __future__ import annotations

import re
import ssl
from typing import Any, AsyncIterator, Iterator, List

import certifi
import pytest

from httpcore.base._exceptions import UnsupportedProtocol
from httpcore.base._models import (
    URL,
    ByteStream,
    Origin,
    Proxy,
    Request,
    Response,
    enforce_bytes,
    enforce_headers,
    enforce_url,
    include_request_headers,
)
from httpcore.base._ssl import default_ssl_context


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ---------------------------------------------------------------------------------------------
# Test streams
# ---------------------------------------------------------------------------------------------


class SyncChunks:
    """A sync-only body that records whether it was closed."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks

    def close(self) -> None:
        self.closed = True


class AsyncChunks:
    """An async-only body that records whether it was closed."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


class SyncNoClose:
    def __iter__(self) -> Iterator[bytes]:
        yield b"x"


class AsyncNoClose:
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"x"


CONTENT_SYNC = (
    "Attempted to access 'response.content' on a streaming response. Call 'response.read()' first."
)
CONTENT_ASYNC = (
    "Attempted to access 'response.content' on a streaming response. "
    "Call 'await response.aread()' first."
)
READ_ASYNC = (
    "Attempted to read an asynchronous response using 'response.read()'. "
    "You should use 'await response.aread()' instead."
)
ITER_TWICE = "Attempted to call 'for ... in response.iter_stream()' more than once."
ITER_ASYNC = (
    "Attempted to stream an asynchronous response using 'for ... in response.iter_stream()'. "
    "You should use 'async for ... in response.aiter_stream()' instead."
)
CLOSE_ASYNC = (
    "Attempted to close an asynchronous response using 'response.close()'. "
    "You should use 'await response.aclose()' instead."
)
AREAD_SYNC = (
    "Attempted to read an synchronous response using 'await response.aread()'. "
    "You should use 'response.read()' instead."
)
AITER_TWICE = "Attempted to call 'async for ... in response.aiter_stream()' more than once."
AITER_SYNC = (
    "Attempted to stream an synchronous response using "
    "'async for ... in response.aiter_stream()'. "
    "You should use 'for ... in response.iter_stream()' instead."
)
ACLOSE_SYNC = (
    "Attempted to close a synchronous response using 'await response.aclose()'. "
    "You should use 'response.close()' instead."
)


def raises_exact(exc: type[BaseException], message: str) -> Any:
    """`pytest.raises` that requires the whole message to match exactly."""
    return pytest.raises(exc, match="^" + re.escape(message) + "$")


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
# ByteStream
# ---------------------------------------------------------------------------------------------


def test_bytestream_sync() -> None:
    stream = ByteStream(b"hello")
    assert list(stream) == [b"hello"]
    assert list(stream) == [b"hello"]
    assert list(ByteStream(b"")) == [b""]


@pytest.mark.anyio
async def test_bytestream_async() -> None:
    stream = ByteStream(b"hello")
    assert [chunk async for chunk in stream] == [b"hello"]
    assert [chunk async for chunk in ByteStream(b"")] == [b""]


def test_bytestream_repr() -> None:
    assert repr(ByteStream(b"")) == "<ByteStream [0 bytes]>"
    assert repr(ByteStream(b"abc")) == "<ByteStream [3 bytes]>"


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
# Response (sync)
# ---------------------------------------------------------------------------------------------


def test_response_basics() -> None:
    response = Response(200)
    assert response.status == 200
    assert response.headers == []
    assert response.extensions == {}
    assert isinstance(response.stream, ByteStream)
    assert repr(response) == "<Response [200]>"
    assert repr(Response(404)) == "<Response [404]>"


def test_response_headers_and_extensions() -> None:
    extensions = {"http_version": b"HTTP/1.1"}
    response = Response(200, headers=[("Content-Type", "text/plain")], extensions=extensions)
    assert response.headers == [(b"Content-Type", b"text/plain")]
    assert response.extensions is extensions
    with raises_exact(TypeError, "header name must be bytes or str, but got int."):
        Response(200, headers=[(1, b"a")])  # type: ignore[list-item]


def test_response_status_not_validated() -> None:
    assert Response("abc").status == "abc"  # type: ignore[arg-type, comparison-overlap]


def test_response_content_raises_until_read_even_for_bytes() -> None:
    response = Response(200, content=b"Hello, world!")
    with raises_exact(RuntimeError, CONTENT_SYNC):
        response.content  # noqa: B018
    assert response.read() == b"Hello, world!"
    assert response.content == b"Hello, world!"
    assert response.read() == b"Hello, world!"


def test_response_read_joins_chunks_and_caches() -> None:
    stream = SyncChunks(b"a", b"b", b"c")
    response = Response(200, content=stream)
    assert response.stream is stream
    assert response.read() == b"abc"
    assert response.read() == b"abc"
    assert response.content == b"abc"


def test_response_iter_stream() -> None:
    response = Response(200, content=SyncChunks(b"a", b"b"))
    assert list(response.iter_stream()) == [b"a", b"b"]
    with raises_exact(RuntimeError, ITER_TWICE):
        list(response.iter_stream())
    with raises_exact(RuntimeError, CONTENT_SYNC):
        response.content  # noqa: B018
    with raises_exact(RuntimeError, ITER_TWICE):
        response.read()


def test_response_iter_stream_after_read() -> None:
    response = Response(200, content=b"abc")
    response.read()
    with raises_exact(RuntimeError, ITER_TWICE):
        list(response.iter_stream())


def test_response_iter_stream_errors_are_lazy() -> None:
    response = Response(200, content=AsyncChunks(b"a"))
    iterator = response.iter_stream()  # no error yet
    with raises_exact(RuntimeError, ITER_ASYNC):
        next(iterator)


def test_response_sync_methods_on_async_stream() -> None:
    stream = AsyncChunks(b"a")
    response = Response(200, content=stream)
    with raises_exact(RuntimeError, CONTENT_ASYNC):
        response.content  # noqa: B018
    with raises_exact(RuntimeError, READ_ASYNC):
        response.read()
    with raises_exact(RuntimeError, ITER_ASYNC):
        list(response.iter_stream())
    with raises_exact(RuntimeError, CLOSE_ASYNC):
        response.close()
    assert not stream.closed


def test_response_close() -> None:
    stream = SyncChunks(b"a")
    response = Response(200, content=stream)
    response.close()
    assert stream.closed


def test_response_close_without_stream_close() -> None:
    Response(200, content=SyncNoClose()).close()
    Response(200, content=b"abc").close()
    Response(200).close()


def test_response_stream_attribute_is_plain_and_replaceable() -> None:
    response = Response(200)
    stream = SyncChunks(b"replaced")
    response.stream = stream
    assert response.read() == b"replaced"
    response.close()
    assert stream.closed


def test_response_read_error_leaves_content_unset() -> None:
    def broken() -> Iterator[bytes]:
        yield b"a"
        raise OSError("boom")

    response = Response(200, content=broken())
    with pytest.raises(OSError, match="boom"):
        response.read()
    with raises_exact(RuntimeError, CONTENT_SYNC):
        response.content  # noqa: B018


# ---------------------------------------------------------------------------------------------
# Response (async)
# ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_response_aread_bytes() -> None:
    response = Response(200, content=b"Hello, world!")
    with raises_exact(RuntimeError, CONTENT_SYNC):
        response.content  # noqa: B018
    assert await response.aread() == b"Hello, world!"
    assert response.content == b"Hello, world!"
    assert await response.aread() == b"Hello, world!"


@pytest.mark.anyio
async def test_response_aread_async_chunks() -> None:
    response = Response(200, content=AsyncChunks(b"a", b"b", b"c"))
    with raises_exact(RuntimeError, CONTENT_ASYNC):
        response.content  # noqa: B018
    assert await response.aread() == b"abc"
    assert await response.aread() == b"abc"
    assert response.content == b"abc"


@pytest.mark.anyio
async def test_response_aiter_stream() -> None:
    response = Response(200, content=AsyncChunks(b"a", b"b"))
    assert [chunk async for chunk in response.aiter_stream()] == [b"a", b"b"]
    with raises_exact(RuntimeError, AITER_TWICE):
        [chunk async for chunk in response.aiter_stream()]
    with raises_exact(RuntimeError, CONTENT_ASYNC):
        response.content  # noqa: B018
    with raises_exact(RuntimeError, AITER_TWICE):
        await response.aread()


@pytest.mark.anyio
async def test_response_aiter_stream_after_aread() -> None:
    response = Response(200, content=b"abc")
    await response.aread()
    with raises_exact(RuntimeError, AITER_TWICE):
        [chunk async for chunk in response.aiter_stream()]


@pytest.mark.anyio
async def test_response_async_methods_on_sync_stream() -> None:
    stream = SyncChunks(b"a")
    response = Response(200, content=stream)
    with raises_exact(RuntimeError, AREAD_SYNC):
        await response.aread()
    with raises_exact(RuntimeError, AITER_SYNC):
        [chunk async for chunk in response.aiter_stream()]
    with raises_exact(RuntimeError, ACLOSE_SYNC):
        await response.aclose()
    assert not stream.closed


@pytest.mark.anyio
async def test_response_aclose() -> None:
    stream = AsyncChunks(b"a")
    response = Response(200, content=stream)
    await response.aclose()
    assert stream.closed
    await Response(200, content=AsyncNoClose()).aclose()
    await Response(200, content=b"x").aclose()


@pytest.mark.anyio
async def test_response_bytestream_sync_then_async_mix() -> None:
    response = Response(200, content=b"abc")
    assert response.read() == b"abc"
    # The cached content is returned by aread() too.
    assert await response.aread() == b"abc"


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
