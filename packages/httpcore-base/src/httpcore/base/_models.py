"""Request/response models and the argument coercion helpers shared by the whole library.

Everything here sits on the hot path of every request, so the classes use ``__slots__`` and
the helpers take a fast path for the types callers pass in practice (``bytes``, ``list``).
"""

from __future__ import annotations

import base64
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterable,
    AsyncIterator,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    MutableMapping,
    Optional,
    Sequence,
    Tuple,
    Union,
    cast,
)
from urllib.parse import urlsplit

from ._exceptions import UnsupportedProtocol

if TYPE_CHECKING:
    import ssl  # annotations only: importing ssl costs a cold start ~9 ms

__all__ = [
    "URL",
    "ByteStream",
    "Content",
    "Extensions",
    "HeaderTypes",
    "Headers",
    "HeadersAsMapping",
    "HeadersAsSequence",
    "Origin",
    "Proxy",
    "Request",
    "Response",
    "Stream",
    "enforce_bytes",
    "enforce_headers",
    "enforce_url",
    "include_request_headers",
]

# --------------------------------------------------------------------------------------------
# Type aliases
# --------------------------------------------------------------------------------------------

HeadersAsSequence = Sequence[Tuple[Union[bytes, str], Union[bytes, str]]]
HeadersAsMapping = Mapping[Union[bytes, str], Union[bytes, str]]
HeaderTypes = Union[HeadersAsSequence, HeadersAsMapping, None]
Headers = List[Tuple[bytes, bytes]]
Stream = Union[Iterable[bytes], AsyncIterable[bytes]]
Content = Union[bytes, Iterable[bytes], AsyncIterable[bytes], None]
Extensions = MutableMapping[str, Any]

# Default ports used to fill in `URL.origin` when the URL carries no port.
_ORIGIN_DEFAULT_PORTS: Dict[bytes, int] = {
    b"http": 80,
    b"https": 443,
    b"ws": 80,
    b"wss": 443,
    b"socks5": 1080,
    b"socks5h": 1080,
    b"socks4": 1080,
    b"socks4a": 1080,
}

# Ports that are left out of the automatic `Host` header.
_HOST_HEADER_DEFAULT_PORTS: Dict[bytes, int] = {
    b"ftp": 21,
    b"http": 80,
    b"https": 443,
    b"ws": 80,
    b"wss": 443,
}

# --------------------------------------------------------------------------------------------
# Coercion helpers
# --------------------------------------------------------------------------------------------


def enforce_bytes(value: Union[bytes, str], *, name: str) -> bytes:
    """Return `value` as bytes: bytes unchanged, str ASCII-encoded, anything else a TypeError."""
    if type(value) is bytes:
        return value
    if isinstance(value, str):
        try:
            return value.encode("ascii")
        except UnicodeEncodeError:
            raise TypeError(f"{name} strings may not include unicode characters.") from None
    if isinstance(value, bytes):
        return value
    raise TypeError(f"{name} must be bytes or str, but got {type(value).__name__}.")


def enforce_url(value: Union[URL, bytes, str], *, name: str) -> URL:
    """Return `value` as a `URL`: a `URL` itself is returned as-is, bytes or str are parsed."""
    if isinstance(value, URL):
        return value
    if isinstance(value, (bytes, str)):
        return URL(value)
    raise TypeError(f"{name} must be a URL, bytes, or str, but got {type(value).__name__}.")


def _header_pair(key: Union[bytes, str], value: Union[bytes, str]) -> Tuple[bytes, bytes]:
    if type(key) is not bytes:
        key = enforce_bytes(key, name="header name")
    if type(value) is not bytes:
        value = enforce_bytes(value, name="header value")
    return (key, value)


def enforce_headers(value: HeaderTypes = None, *, name: str) -> Headers:
    """Normalise headers to a new ``list[tuple[bytes, bytes]]``.

    Accepts ``None`` (no headers), a mapping, or a sequence of two-tuples; names and values may
    be bytes or ASCII str. Order, case and duplicates are preserved.
    """
    if value is None:
        return []
    if type(value) is list or type(value) is tuple:
        pairs: Iterable[Tuple[Union[bytes, str], Union[bytes, str]]] = value
    elif isinstance(value, Mapping):
        pairs = value.items()
    elif isinstance(value, Sequence):
        pairs = value
    else:
        raise TypeError(
            f"{name} must be a mapping or sequence of two-tuples, but got {type(value).__name__}."
        )
    return [_header_pair(k, v) for k, v in pairs]


def _bracketed(host: bytes) -> bytes:
    """Wrap an IPv6 literal in square brackets, for use in a URL or a Host header."""
    if b":" in host and not host.startswith(b"["):
        return b"[" + host + b"]"
    return host


def include_request_headers(headers: Headers, *, url: URL, content: object) -> Headers:
    """Return a new header list with the automatic ``Host`` and body-framing headers added.

    * ``Host`` is prepended unless present (the port is included unless it is the scheme's
      default; IPv6 literals are bracketed).
    * When `content` is not None and neither ``Content-Length`` nor ``Transfer-Encoding`` is
      present, ``Content-Length`` (for bytes) or ``Transfer-Encoding: chunked`` is appended.
    """
    has_host = has_framing = False
    for key, _ in headers:
        lowered = key.lower()
        if lowered == b"host":
            has_host = True
        elif lowered == b"content-length" or lowered == b"transfer-encoding":
            has_framing = True

    result: Headers
    if has_host:
        result = list(headers)
    else:
        host = _bracketed(url.host)
        port = url.port
        if port is not None and port != _HOST_HEADER_DEFAULT_PORTS.get(url.scheme):
            host = b"%s:%d" % (host, port)
        result = [(b"Host", host), *headers]

    if content is not None and not has_framing:
        if isinstance(content, bytes):
            result.append((b"Content-Length", b"%d" % len(content)))
        else:
            result.append((b"Transfer-Encoding", b"chunked"))
    return result


# --------------------------------------------------------------------------------------------
# URL and Origin
# --------------------------------------------------------------------------------------------

_ParsedURL = Tuple[bytes, bytes, Optional[int], bytes]
_PARSE_CACHE: Dict[bytes, _ParsedURL] = {}
_PARSE_CACHE_SIZE = 256


def _parse_url(raw: bytes) -> _ParsedURL:
    parsed = _PARSE_CACHE.get(raw)
    if parsed is not None:
        return parsed
    parts = urlsplit(raw)
    host = parts.hostname or b""
    port = parts.port  # raises ValueError for a malformed or out-of-range port
    target = parts.path or b"/"
    if parts.query:
        target = target + b"?" + parts.query
    parsed = (parts.scheme, host, port, target)
    if len(_PARSE_CACHE) >= _PARSE_CACHE_SIZE:
        _PARSE_CACHE.clear()
    _PARSE_CACHE[raw] = parsed
    return parsed


class Origin:
    """The (scheme, host, port) triple that identifies the server a connection talks to."""

    __slots__ = ("host", "port", "scheme")

    def __init__(self, scheme: bytes, host: bytes, port: int) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Origin):
            return False
        return self.port == other.port and self.host == other.host and self.scheme == other.scheme

    def __hash__(self) -> int:
        return hash((self.scheme, self.host, self.port))

    def __str__(self) -> str:
        scheme = self.scheme.decode("ascii", "backslashreplace")
        host = _bracketed(self.host).decode("ascii", "backslashreplace")
        return f"{scheme}://{host}:{self.port}"

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(scheme={self.scheme!r}, host={self.host!r}, "
            f"port={self.port!r})"
        )


class URL:
    """A request URL, held as its scheme, host, optional port and request target.

    Either parse a full URL (``URL("https://example.com/path?q")``) or give the parts as
    keywords (``URL(scheme=b"https", host=b"example.com", target=b"*")``); the keyword form
    allows any target, such as ``*`` or an absolute URL for forward proxies.
    """

    __slots__ = ("host", "port", "scheme", "target")

    def __init__(
        self,
        url: Union[bytes, str] = "",
        *,
        scheme: Union[bytes, str] = b"",
        host: Union[bytes, str] = b"",
        port: Optional[int] = None,
        target: Union[bytes, str] = b"",
    ) -> None:
        if url:
            raw = url if type(url) is bytes else enforce_bytes(url, name="url")
            self.scheme, self.host, self.port, self.target = _parse_url(raw)
        else:
            self.scheme = scheme if type(scheme) is bytes else enforce_bytes(scheme, name="scheme")
            self.host = host if type(host) is bytes else enforce_bytes(host, name="host")
            self.port = port
            self.target = target if type(target) is bytes else enforce_bytes(target, name="target")

    @property
    def origin(self) -> Origin:
        """The `Origin` of this URL, with the scheme's default port filled in when absent."""
        scheme = self.scheme
        default_port = _ORIGIN_DEFAULT_PORTS.get(scheme)
        if default_port is None:
            if not scheme:
                raise UnsupportedProtocol(
                    "Request URL is missing an 'http://' or 'https://' protocol."
                )
            text = scheme.decode("ascii", "backslashreplace")
            raise UnsupportedProtocol(f"Request URL has an unsupported protocol '{text}://'.")
        return Origin(scheme, self.host, self.port or default_port)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, URL):
            return False
        return (
            self.target == other.target
            and self.host == other.host
            and self.port == other.port
            and self.scheme == other.scheme
        )

    def __hash__(self) -> int:
        return hash((self.scheme, self.host, self.port, self.target))

    def __bytes__(self) -> bytes:
        host = _bracketed(self.host)
        if self.port is None:
            return b"%s://%s%s" % (self.scheme, host, self.target)
        return b"%s://%s:%d%s" % (self.scheme, host, self.port, self.target)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(scheme={self.scheme!r}, host={self.host!r}, "
            f"port={self.port!r}, target={self.target!r})"
        )


# --------------------------------------------------------------------------------------------
# Streams, requests and responses
# --------------------------------------------------------------------------------------------


class ByteStream:
    """A body held in memory: iterable both synchronously and asynchronously."""

    __slots__ = ("_content",)

    def __init__(self, content: bytes) -> None:
        self._content = content

    def __iter__(self) -> Iterator[bytes]:
        return iter((self._content,))

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._content

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} [{len(self._content)} bytes]>"


def _as_stream(content: Content) -> Stream:
    if content is None:
        return ByteStream(b"")
    if type(content) is bytes or isinstance(content, bytes):
        return ByteStream(content)
    return content


class Request:
    """An HTTP request: method, URL, headers, a body stream and extensions."""

    __slots__ = ("extensions", "headers", "method", "stream", "url")

    def __init__(
        self,
        method: Union[bytes, str],
        url: Union[URL, bytes, str],
        *,
        headers: HeaderTypes = None,
        content: Content = None,
        extensions: Optional[Extensions] = None,
    ) -> None:
        self.method: bytes = (
            method if type(method) is bytes else enforce_bytes(method, name="method")
        )
        self.url: URL = url if type(url) is URL else enforce_url(url, name="url")
        self.headers: Headers = enforce_headers(headers, name="headers")
        self.stream: Stream = _as_stream(content)
        self.extensions: Extensions = {} if extensions is None else extensions
        if extensions and "target" in extensions:
            base = self.url
            self.url = URL(
                scheme=base.scheme,
                host=base.host,
                port=base.port,
                target=enforce_bytes(extensions["target"], name="target"),
            )

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} [{self.method!r}]>"


_CONTENT_SYNC = (
    "Attempted to access 'response.content' on a streaming response. Call 'response.read()' first."
)
_CONTENT_ASYNC = (
    "Attempted to access 'response.content' on a streaming response. "
    "Call 'await response.aread()' first."
)
_READ_ASYNC = (
    "Attempted to read an asynchronous response using 'response.read()'. "
    "You should use 'await response.aread()' instead."
)
_ITER_TWICE = "Attempted to call 'for ... in response.iter_stream()' more than once."
_ITER_ASYNC = (
    "Attempted to stream an asynchronous response using 'for ... in response.iter_stream()'. "
    "You should use 'async for ... in response.aiter_stream()' instead."
)
_CLOSE_ASYNC = (
    "Attempted to close an asynchronous response using 'response.close()'. "
    "You should use 'await response.aclose()' instead."
)
_AREAD_SYNC = (
    "Attempted to read an synchronous response using 'await response.aread()'. "
    "You should use 'response.read()' instead."
)
_AITER_TWICE = "Attempted to call 'async for ... in response.aiter_stream()' more than once."
_AITER_SYNC = (
    "Attempted to stream an synchronous response using "
    "'async for ... in response.aiter_stream()'. "
    "You should use 'for ... in response.iter_stream()' instead."
)
_ACLOSE_SYNC = (
    "Attempted to close a synchronous response using 'await response.aclose()'. "
    "You should use 'response.close()' instead."
)


class Response:
    """An HTTP response: status, headers, a body stream and extensions.

    The body is not read by the constructor: call `read()` / `aread()` (after which `content`
    holds the body), or iterate `iter_stream()` / `aiter_stream()` once.
    """

    __slots__ = ("_content", "_stream_consumed", "extensions", "headers", "status", "stream")

    def __init__(
        self,
        status: int,
        *,
        headers: HeaderTypes = None,
        content: Content = None,
        extensions: Optional[Extensions] = None,
    ) -> None:
        self.status: int = status
        self.headers: Headers = enforce_headers(headers, name="headers")
        self.stream: Stream = _as_stream(content)
        self.extensions: Extensions = {} if extensions is None else extensions
        self._content: Optional[bytes] = None
        self._stream_consumed = False

    @classmethod
    def _wrap(
        cls, status: int, headers: Headers, stream: Stream, extensions: Extensions
    ) -> Response:
        """A response from parts this library already validated (no coercion)."""
        response = cls.__new__(cls)
        response.status = status
        response.headers = headers
        response.stream = stream
        response.extensions = extensions
        response._content = None
        response._stream_consumed = False
        return response

    @property
    def content(self) -> bytes:
        """The body, available once `read()` or `aread()` has been called."""
        content = self._content
        if content is None:
            if hasattr(self.stream, "__iter__"):
                raise RuntimeError(_CONTENT_SYNC)
            raise RuntimeError(_CONTENT_ASYNC)
        return content

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} [{self.status}]>"

    # Sync interface.

    def read(self) -> bytes:
        """Read the whole body (once), cache it in `content` and return it."""
        stream = self.stream
        if not hasattr(stream, "__iter__"):
            raise RuntimeError(_READ_ASYNC)
        content = self._content
        if content is None:
            if self._stream_consumed:
                raise RuntimeError(_ITER_TWICE)
            self._stream_consumed = True
            content = self._content = b"".join(cast(Iterable[bytes], stream))
        return content

    def iter_stream(self) -> Iterator[bytes]:
        """Iterate over the body chunks; allowed only once per response."""
        stream = self.stream
        if not hasattr(stream, "__iter__"):
            raise RuntimeError(_ITER_ASYNC)
        if self._stream_consumed:
            raise RuntimeError(_ITER_TWICE)
        self._stream_consumed = True
        yield from cast(Iterable[bytes], stream)

    def close(self) -> None:
        """Close the body stream, releasing the underlying connection."""
        stream = self.stream
        if not hasattr(stream, "__iter__"):
            raise RuntimeError(_CLOSE_ASYNC)
        close = getattr(stream, "close", None)
        if close is not None:
            close()

    # Async interface.

    async def aread(self) -> bytes:
        """Read the whole body (once), cache it in `content` and return it."""
        stream = self.stream
        if not hasattr(stream, "__aiter__"):
            raise RuntimeError(_AREAD_SYNC)
        content = self._content
        if content is None:
            if self._stream_consumed:
                raise RuntimeError(_AITER_TWICE)
            self._stream_consumed = True
            content = self._content = b"".join(
                [chunk async for chunk in cast(AsyncIterable[bytes], stream)]
            )
        return content

    async def aiter_stream(self) -> AsyncIterator[bytes]:
        """Iterate asynchronously over the body chunks; allowed only once per response."""
        stream = self.stream
        if not hasattr(stream, "__aiter__"):
            raise RuntimeError(_AITER_SYNC)
        if self._stream_consumed:
            raise RuntimeError(_AITER_TWICE)
        self._stream_consumed = True
        async for chunk in cast(AsyncIterable[bytes], stream):
            yield chunk

    async def aclose(self) -> None:
        """Close the body stream, releasing the underlying connection."""
        stream = self.stream
        if not hasattr(stream, "__aiter__"):
            raise RuntimeError(_ACLOSE_SYNC)
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


# --------------------------------------------------------------------------------------------
# Proxy
# --------------------------------------------------------------------------------------------


class Proxy:
    """Configuration of a proxy for `ConnectionPool(proxy=...)`.

    `url`'s scheme picks the mechanism (``socks5``/``socks5h`` or an HTTP proxy); `auth`
    adds a ``Proxy-Authorization: Basic ...`` header; `ssl_context` is used for the TLS
    connection to an ``https://`` proxy.
    """

    __slots__ = ("auth", "headers", "ssl_context", "url")

    def __init__(
        self,
        url: Union[URL, bytes, str],
        auth: Optional[Tuple[Union[bytes, str], Union[bytes, str]]] = None,
        headers: HeaderTypes = None,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.url: URL = enforce_url(url, name="url")
        self.headers: Headers = enforce_headers(headers, name="headers")
        self.ssl_context: Optional[ssl.SSLContext] = ssl_context
        self.auth: Optional[Tuple[bytes, bytes]] = None
        if auth is not None:
            username = enforce_bytes(auth[0], name="auth")
            password = enforce_bytes(auth[1], name="auth")
            credentials = base64.b64encode(username + b":" + password)
            self.auth = (username, password)
            self.headers.insert(0, (b"Proxy-Authorization", b"Basic " + credentials))
