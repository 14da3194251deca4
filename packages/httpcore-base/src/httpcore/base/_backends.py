"""The network backend interfaces: what the connection classes need from a transport.

A backend opens streams (`connect_tcp`, `connect_unix_socket`) and can sleep; a stream reads,
writes, upgrades itself to TLS and answers a few introspection questions (`get_extra_info`).
Concrete backends subclass these; every method that is not implemented raises
`NotImplementedError`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Iterable, Tuple, Union

if TYPE_CHECKING:
    import ssl  # annotations only: importing ssl costs a cold start ~9 ms

__all__ = [
    "SOCKET_OPTION",
    "AsyncNetworkBackend",
    "AsyncNetworkStream",
    "NetworkBackend",
    "NetworkStream",
]

#: The argument tuple of one `socket.setsockopt(*option)` call.
SOCKET_OPTION = Union[
    Tuple[int, int, int],
    Tuple[int, int, Union[bytes, bytearray]],
    Tuple[int, int, None, int],
]


class NetworkStream:
    """A connected byte stream, used synchronously.

    `read` returns `b""` at end of stream. `start_tls` returns the stream to use from then on
    (which may be a different object). `get_extra_info` answers `"ssl_object"`,
    `"client_addr"`, `"server_addr"`, `"socket"` and `"is_readable"` in real backends, and
    `None` for anything it does not know.
    """

    __slots__ = ()

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Read up to `max_bytes` bytes; `b""` means the peer closed the stream.

        `timeout` is in seconds (`None`: wait forever); running out raises `ReadTimeout`, a
        socket error `ReadError`.
        """
        raise NotImplementedError()

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send all of `buffer` (an empty buffer is a no-op).

        Raises `WriteTimeout` after `timeout` seconds, `WriteError` on a socket error.
        """
        raise NotImplementedError()

    def close(self) -> None:
        """Close the stream; later reads raise `ReadError`."""
        raise NotImplementedError()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> NetworkStream:
        """Run a TLS handshake over this stream and return the stream to use from then on.

        `server_hostname` is sent as SNI and checked against the certificate. A handshake that
        takes longer than `timeout` raises `ConnectTimeout`; a failed one raises `ConnectError`
        (and closes the stream).
        """
        raise NotImplementedError()

    def get_extra_info(self, info: str) -> Any:
        """Answer an introspection question about the stream, or `None` for an unknown key.

        Real backends answer `"ssl_object"`, `"client_addr"`, `"server_addr"`, `"socket"` and
        `"is_readable"` (whether a read would return at once: data or EOF is pending).
        """
        return None


class NetworkBackend:
    """Opens `NetworkStream`s, synchronously."""

    __slots__ = ()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> NetworkStream:
        """Open a TCP connection to `host`:`port`.

        `local_address` picks the source IP (`"0.0.0.0"` forces IPv4, `"::"` IPv6) and each
        of `socket_options` is applied with `socket.setsockopt(*option)`. Raises
        `ConnectTimeout` after `timeout` seconds, `ConnectError` if the connection fails.
        """
        raise NotImplementedError()

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> NetworkStream:
        """Open a connection to the Unix domain socket at `path` (errors as `connect_tcp`)."""
        raise NotImplementedError()

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` (used between connection retries; the base class calls `time.sleep`)."""
        time.sleep(seconds)

    def connect_udp(
        self,
        host: str,
        port: int,
        local_address: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Open a UDP endpoint connected to `host`:`port`, for QUIC (HTTP/3).

        The returned datagram stream reads one datagram per `read(max_bytes, timeout)`
        (`ReadTimeout` when none comes in time), sends one per `write(datagram, timeout)`,
        and has `close()` and `get_extra_info()` (see `httpcore.base._udp`).
        """
        raise NotImplementedError()


class AsyncNetworkStream:
    """A connected byte stream, used from async code (the twin of `NetworkStream`)."""

    __slots__ = ()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Read up to `max_bytes` bytes; `b""` means the peer closed the stream.

        `timeout` is in seconds (`None`: wait forever); running out raises `ReadTimeout`, a
        socket error `ReadError`.
        """
        raise NotImplementedError()

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send all of `buffer` (an empty buffer is a no-op).

        Raises `WriteTimeout` after `timeout` seconds, `WriteError` on a socket error.
        """
        raise NotImplementedError()

    async def aclose(self) -> None:
        """Close the stream; later reads raise `ReadError`."""
        raise NotImplementedError()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        """Run a TLS handshake over this stream and return the stream to use from then on.

        `server_hostname` is sent as SNI and checked against the certificate. A handshake that
        takes longer than `timeout` raises `ConnectTimeout`; a failed one raises `ConnectError`
        (and closes the stream).
        """
        raise NotImplementedError()

    def get_extra_info(self, info: str) -> Any:
        """Answer an introspection question about the stream, or `None` for an unknown key.

        Real backends answer `"ssl_object"`, `"client_addr"`, `"server_addr"`, `"socket"` and
        `"is_readable"` (whether a read would return at once: data or EOF is pending).
        """
        return None


class AsyncNetworkBackend:
    """Opens `AsyncNetworkStream`s (the twin of `NetworkBackend`)."""

    __slots__ = ()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        """Open a TCP connection to `host`:`port`.

        `local_address` picks the source IP (`"0.0.0.0"` forces IPv4, `"::"` IPv6) and each
        of `socket_options` is applied with `socket.setsockopt(*option)`. Raises
        `ConnectTimeout` after `timeout` seconds, `ConnectError` if the connection fails.
        """
        raise NotImplementedError()

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        """Open a connection to the Unix domain socket at `path` (errors as `connect_tcp`)."""
        raise NotImplementedError()

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` without blocking the event loop (used between connection retries)."""
        raise NotImplementedError()

    async def connect_udp(
        self,
        host: str,
        port: int,
        local_address: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Open a UDP endpoint connected to `host`:`port`, for QUIC (HTTP/3): the async twin
        of `NetworkBackend.connect_udp` (`await read()`, `await write()`, `await aclose()`)."""
        raise NotImplementedError()
