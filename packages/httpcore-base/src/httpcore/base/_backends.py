"""The network backend interfaces: what the connection classes need from a transport.

A backend opens streams (`connect_tcp`, `connect_unix_socket`) and can sleep; a stream reads,
writes, upgrades itself to TLS and answers a few introspection questions (`get_extra_info`).
Concrete backends subclass these; every method that is not implemented raises
`NotImplementedError`.
"""

from __future__ import annotations

import ssl
import time
from typing import Any, Iterable, Tuple, Union

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
        raise NotImplementedError()

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        raise NotImplementedError()

    def close(self) -> None:
        raise NotImplementedError()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> NetworkStream:
        raise NotImplementedError()

    def get_extra_info(self, info: str) -> Any:
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
        raise NotImplementedError()

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> NetworkStream:
        raise NotImplementedError()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class AsyncNetworkStream:
    """A connected byte stream, used from async code (the twin of `NetworkStream`)."""

    __slots__ = ()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        raise NotImplementedError()

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        raise NotImplementedError()

    async def aclose(self) -> None:
        raise NotImplementedError()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        raise NotImplementedError()

    def get_extra_info(self, info: str) -> Any:
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
        raise NotImplementedError()

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        raise NotImplementedError()

    async def sleep(self, seconds: float) -> None:
        raise NotImplementedError()
