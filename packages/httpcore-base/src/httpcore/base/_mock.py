"""In-memory backends that replay canned bytes, for testing protocol code without a network."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Generic, Iterable, TypeVar

from ._backends import (
    SOCKET_OPTION,
    AsyncNetworkBackend,
    AsyncNetworkStream,
    NetworkBackend,
    NetworkStream,
)
from ._exceptions import ReadError

if TYPE_CHECKING:
    import ssl  # annotations only: importing ssl costs a cold start ~9 ms

__all__ = ["AsyncMockBackend", "AsyncMockStream", "MockBackend", "MockStream"]


class MockSSLObject:
    """Stands in for `ssl.SSLObject`: only reports the negotiated ALPN protocol."""

    def __init__(self, http2: bool) -> None:
        self._http2 = http2

    def selected_alpn_protocol(self) -> str:
        return "h2" if self._http2 else "http/1.1"


class _MockStreamState:
    """The replay state and the non-I/O methods shared by both mock streams."""

    def __init__(self, buffer: list[bytes], http2: bool = False) -> None:
        self._buffer = buffer
        self._http2 = http2
        self._closed = False

    def _next_chunk(self) -> bytes:
        if self._closed:
            raise ReadError("Connection closed")
        if not self._buffer:
            return b""
        return self._buffer.pop(0)

    def get_extra_info(self, info: str) -> Any:
        """`"ssl_object"`: an object whose `selected_alpn_protocol()` is `"h2"` or `"http/1.1"`.

        Every other key gives `None`.
        """
        return MockSSLObject(http2=self._http2) if info == "ssl_object" else None


class MockStream(_MockStreamState, NetworkStream):
    """A stream whose reads return the chunks of `buffer`, one whole chunk per read.

    Writes are discarded, `start_tls` returns the stream itself, and the `"ssl_object"`
    reports ALPN `"h2"` when `http2` is set (checked at call time), else `"http/1.1"`.
    """

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Return the next whole chunk of the buffer (any size), or `b""` when none is left.

        After `close` it raises `ReadError("Connection closed")`.
        """
        return self._next_chunk()

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Discard `buffer`."""
        pass

    def close(self) -> None:
        """Mark the stream closed: later reads raise `ReadError`."""
        self._closed = True

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> NetworkStream:
        """Return the stream itself (no handshake happens)."""
        return self

    def __repr__(self) -> str:
        return "<httpcore.MockStream>"


class AsyncMockStream(_MockStreamState, AsyncNetworkStream):
    """The async twin of `MockStream`."""

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Return the next whole chunk of the buffer (any size), or `b""` when none is left.

        After `close` it raises `ReadError("Connection closed")`.
        """
        return self._next_chunk()

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Discard `buffer`."""
        pass

    async def aclose(self) -> None:
        """Mark the stream closed: later reads raise `ReadError`."""
        self._closed = True

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        """Return the stream itself (no handshake happens)."""
        return self

    def __repr__(self) -> str:
        return "<httpcore.AsyncMockStream>"


S = TypeVar("S", "MockStream", "AsyncMockStream")


class _MockBackendState(Generic[S]):
    _stream_class: Callable[..., S]

    def __init__(self, buffer: list[bytes], http2: bool = False) -> None:
        self._buffer = buffer
        self._http2 = http2

    def _new_stream(self) -> S:
        # Each connection replays the whole buffer from the start.
        return self._stream_class(list(self._buffer), http2=self._http2)


class MockBackend(_MockBackendState[MockStream], NetworkBackend):
    """A backend whose every connection is a fresh `MockStream` replaying all of `buffer`."""

    _stream_class = MockStream

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> NetworkStream:
        """Return a new mock stream that replays the whole buffer from its first chunk."""
        return self._new_stream()

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> NetworkStream:
        """Return a new mock stream that replays the whole buffer from its first chunk."""
        return self._new_stream()

    def sleep(self, seconds: float) -> None:
        """Return at once (retries do not wait under a mock backend)."""
        pass

    def connect_udp(
        self,
        host: str,
        port: int,
        local_address: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """A mock datagram stream reading the buffer's chunks as datagrams, then timing out."""
        from ._udp import MockDatagramStream

        return MockDatagramStream(self._buffer)


class AsyncMockBackend(_MockBackendState[AsyncMockStream], AsyncNetworkBackend):
    """The async twin of `MockBackend`: each connection is a fresh `AsyncMockStream`."""

    _stream_class = AsyncMockStream

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        """Return a new mock stream that replays the whole buffer from its first chunk."""
        return self._new_stream()

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        """Return a new mock stream that replays the whole buffer from its first chunk."""
        return self._new_stream()

    async def sleep(self, seconds: float) -> None:
        """Return at once (retries do not wait under a mock backend)."""
        pass

    async def connect_udp(
        self,
        host: str,
        port: int,
        local_address: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """A mock datagram stream reading the buffer's chunks as datagrams, then timing out."""
        from ._udp import AsyncMockDatagramStream

        return AsyncMockDatagramStream(self._buffer)
