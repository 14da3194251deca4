"""The exception hierarchy of httpcore, and the mapping of library errors onto it."""

from __future__ import annotations

from types import TracebackType
from typing import Mapping, Optional, Type

ExceptionMapping = Mapping[Type[BaseException], Type[Exception]]


class map_exceptions:
    """A context manager re-raising any exception that is an instance of a key of `mapping` as
    the mapped class. The new exception wraps the original (`str(new) == str(original)`) and
    chains it.

    It holds no state beyond the mapping, so one instance can be built once and entered
    anywhere, from any thread (a class, not `contextlib`, to stay cheap on hot paths).
    """

    __slots__ = ("_mapping",)

    def __init__(self, mapping: ExceptionMapping) -> None:
        self._mapping = mapping

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        if exc is None or not isinstance(exc, Exception):
            return
        for from_exc, to_exc in self._mapping.items():
            if isinstance(exc, from_exc):
                raise to_exc(exc) from exc


class ConnectionNotAvailable(Exception):
    """The connection cannot take this request now (busy, closed or shutting down)."""


class ProxyError(Exception):
    """The proxy refused or failed to set up the connection."""


class UnsupportedProtocol(Exception):
    """The request URL has a missing or unsupported scheme."""


class ProtocolError(Exception):
    """The HTTP exchange broke the protocol."""


class RemoteProtocolError(ProtocolError):
    """The server broke the protocol."""


class LocalProtocolError(ProtocolError):
    """The request could not be sent without breaking the protocol."""


class TimeoutException(Exception):
    """Base class of every timeout."""


class PoolTimeout(TimeoutException):
    """No connection of the pool became available in time."""


class ConnectTimeout(TimeoutException):
    """Connecting (TCP, Unix socket or TLS handshake) took too long."""


class ReadTimeout(TimeoutException):
    """Reading from the network took too long."""


class WriteTimeout(TimeoutException):
    """Writing to the network took too long."""


class NetworkError(Exception):
    """Base class of network failures."""


class ConnectError(NetworkError):
    """The connection could not be established."""


class ReadError(NetworkError):
    """Reading from the network failed."""


class WriteError(NetworkError):
    """Writing to the network failed."""


def said(exc: BaseException, message: str) -> BaseException:
    """`exc`, given `message` if it has none: the error made from it (`str(ours) ==
    str(exc)`, API.md §8) then says what happened, rather than nothing."""
    if not exc.args:
        exc.args = (message,)
    return exc


def timed_out(exc: BaseException) -> BaseException:
    """`exc`, a timeout raised by asyncio, anyio or trio (which carry no message), with the
    one the socket module's timeouts have."""
    return said(exc, "timed out")
