"""The public connection interfaces and the `request()`/`stream()` helpers."""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator, Dict, Iterator, Optional, Protocol, TypeVar, Union

from ._drive import AsyncIO, Flavour, Gen, OpStream, SyncIO, adrive, drive
from ._models import (
    URL,
    Content,
    HeaderTypes,
    Origin,
    Request,
    Response,
    enforce_bytes,
    enforce_headers,
    enforce_url,
    include_request_headers,
)
from ._ops import AsyncClosable, SyncClosable, call, handle

Extensions = Optional[dict]  # type: ignore[type-arg]

S = TypeVar("S")


class ProtocolCore(Protocol):
    """What `SyncShell`/`AsyncShell` drive: a core's request and close generators."""

    def _handle(self, request: Request) -> Gen[Response]: ...

    def _close(self) -> Gen[None]: ...


def build_request(
    method: Union[bytes, str],
    url: Union[URL, bytes, str],
    headers: HeaderTypes,
    content: Content,
    extensions: Extensions,
) -> Request:
    """Coerce the helper arguments and add Host / Content-Length as `request()` does."""
    method = enforce_bytes(method, name="method")
    url = enforce_url(url, name="url")
    header_list = enforce_headers(headers, name="headers")
    header_list = include_request_headers(header_list, url=url, content=content)
    return Request(
        method=method, url=url, headers=header_list, content=content, extensions=extensions
    )


def _request_and_read(
    owner: Union[RequestInterface, AsyncRequestInterface], request: Request
) -> Gen[Response]:
    response: Response = yield from delegate(owner, request)
    stream = response.stream
    if isinstance(stream, OpStream):
        # A body of this library: read and closed right here, under the same driver.
        try:
            response._stream_consumed = True
            response._content = yield from stream.collect()
        finally:
            yield from stream.closing()
        return response
    try:
        yield from call(Response.read, Response.aread, (response,))
    finally:
        yield from call(Response.close, Response.aclose, (response,))
    return response


class ConnectionState:
    """The state queries a pool makes of a connection (shared by the sync and async interfaces)."""

    def info(self) -> str:
        """A short description of the connection's state."""
        raise NotImplementedError()  # pragma: no cover

    def can_handle_request(self, origin: Origin) -> bool:
        """True if this connection serves `origin`."""
        raise NotImplementedError()  # pragma: no cover

    def is_available(self) -> bool:
        """True if the connection can take another request now."""
        raise NotImplementedError()  # pragma: no cover

    def has_expired(self) -> bool:
        """True if the pool should close this connection."""
        raise NotImplementedError()  # pragma: no cover

    def is_idle(self) -> bool:
        """True if no request is in flight on this connection."""
        raise NotImplementedError()  # pragma: no cover

    def is_closed(self) -> bool:
        """True once the connection is closed."""
        raise NotImplementedError()  # pragma: no cover


class RequestInterface:
    """`request()` and `stream()` on top of `handle_request()` (pools and connections)."""

    def request(
        self,
        method: Union[bytes, str],
        url: Union[URL, bytes, str],
        *,
        headers: HeaderTypes = None,
        content: Content = None,
        extensions: Extensions = None,
    ) -> Response:
        """Send a request and read the whole response body (available as `.content`)."""
        request = build_request(method, url, headers, content, extensions)
        return drive(_request_and_read(self, request))

    @contextlib.contextmanager
    def stream(
        self,
        method: Union[bytes, str],
        url: Union[URL, bytes, str],
        *,
        headers: HeaderTypes = None,
        content: Content = None,
        extensions: Extensions = None,
    ) -> Iterator[Response]:
        """Send a request and yield the response unread; it is closed on exit."""
        request = build_request(method, url, headers, content, extensions)
        response = self.handle_request(request)
        try:
            yield response
        finally:
            response.close()

    def handle_request(self, request: Request) -> Response:
        """Send `request` and return the response with its body unread."""
        raise NotImplementedError()  # pragma: no cover

    def close(self) -> None:
        """Close the connection."""
        raise NotImplementedError()  # pragma: no cover


class AsyncRequestInterface:
    """`request()` and `stream()` on top of `handle_async_request()`."""

    async def request(
        self,
        method: Union[bytes, str],
        url: Union[URL, bytes, str],
        *,
        headers: HeaderTypes = None,
        content: Content = None,
        extensions: Extensions = None,
    ) -> Response:
        """Send a request and read the whole response body (available as `.content`)."""
        request = build_request(method, url, headers, content, extensions)
        return await adrive(_request_and_read(self, request))

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: Union[bytes, str],
        url: Union[URL, bytes, str],
        *,
        headers: HeaderTypes = None,
        content: Content = None,
        extensions: Extensions = None,
    ) -> AsyncIterator[Response]:
        """Send a request and yield the response unread; it is closed on exit."""
        request = build_request(method, url, headers, content, extensions)
        response = await self.handle_async_request(request)
        try:
            yield response
        finally:
            await response.aclose()

    async def handle_async_request(self, request: Request) -> Response:
        """Send `request` and return the response with its body unread."""
        raise NotImplementedError()  # pragma: no cover

    async def aclose(self) -> None:
        """Close the connection."""
        raise NotImplementedError()  # pragma: no cover


class ConnectionInterface(RequestInterface, ConnectionState):
    """What a pool needs of a connection."""


class AsyncConnectionInterface(AsyncRequestInterface, ConnectionState):
    """The async twin of `ConnectionInterface`."""


#: A connection of either flavour.
AnyConnection = Union[ConnectionInterface, AsyncConnectionInterface]


class SyncShell:
    """Sync methods of a class whose core provides `_handle(request)` and `_close()`."""

    _io: Flavour = SyncIO

    def handle_request(self: ProtocolCore, request: Request) -> Response:
        """Send `request` and return the response with its body unread."""
        return drive(self._handle(request))

    def close(self: ProtocolCore) -> None:
        """Close, releasing the network resources."""
        drive(self._close())

    def __enter__(self: S) -> S:
        return self

    def __exit__(self: SyncClosable, *args: object) -> None:
        self.close()


class AsyncShell:
    """Async methods of a class whose core provides `_handle(request)` and `_close()`."""

    _io: Flavour = AsyncIO

    async def handle_async_request(self: ProtocolCore, request: Request) -> Response:
        """Send `request` and return the response with its body unread."""
        return await adrive(self._handle(request))

    async def aclose(self: ProtocolCore) -> None:
        """Close, releasing the network resources."""
        await adrive(self._close())

    async def __aenter__(self: S) -> S:
        return self

    async def __aexit__(self: AsyncClosable, *args: object) -> None:
        await self.aclose()


_INLINE: Dict[type, bool] = {}


def _inlinable(cls: type) -> bool:
    if issubclass(cls, SyncShell):
        return cls.handle_request is SyncShell.handle_request
    if issubclass(cls, AsyncShell):
        return cls.handle_async_request is AsyncShell.handle_async_request
    return False


def delegate(connection: Any, request: Request) -> Gen[Response]:
    """Hand `request` to `connection`, as the HANDLE operation would.

    A connection of this library (whose `handle_request` is not overridden) runs inline, in
    the caller's generator, instead of through a nested driver. (`connection` is typed `Any`:
    which of its methods is called is decided from its class, at run time.)
    """
    cls = type(connection)
    inline = _INLINE.get(cls)
    if inline is None:
        inline = _INLINE[cls] = _inlinable(cls)
    if inline:
        response: Response = yield from connection._handle(request)
    else:
        response = yield from handle(connection, request)
    return response


def lost_unanswered(connection: object) -> bool:
    """Whether `connection` lost its last request unanswered on reuse (API.md §3.7).

    Wrapping connections (direct, proxied, SOCKS) ask the connection they wrap; a connection
    of another library never qualifies.
    """
    check = getattr(connection, "_lost_unanswered", None)
    return check is not None and bool(check())


def multiplexes(connection: object) -> bool:
    """Whether `connection` carries several requests at once (HTTP/2, HTTP/3): an idle one
    promised to a request can still be handed to others.

    Wrapping connections (direct, proxied, SOCKS) are looked through to the connection they
    wrap, once it exists; a connection of another library never qualifies.
    """
    for _ in range(4):  # direct < tunnel < HTTPConnection < protocol at most
        if getattr(connection, "MULTIPLEXED", False) is True:
            return True
        connection = getattr(connection, "_connection", None)
        if connection is None:
            return False
    return False
