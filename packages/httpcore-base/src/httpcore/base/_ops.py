"""The operations a protocol generator yields, and what each takes and returns.

An operation is a tuple `(OPCODE, target, *args)`; the driver (`_drive.py`) performs it and
sends the result back into the generator. Each opcode has a typed one-op helper here, so that
`data = yield from read(stream, n, timeout)` is typed where a bare `yield (READ, ...)` gives
whatever the driver sends (the `Sent` type).

Rules this module keeps:
- The helpers are for `yield from`: each adds a generator frame per operation, so the hottest
  sites (the HTTP/1.1 exchange's READ and WRITE) yield the tuple inline and annotate the
  assignment instead (`data: bytes = yield (READ, stream, n, timeout)`).
- A target is typed as either flavour's object (sync or async): the protocol code is written
  once and the driver of the flavour picks the method (`close()` / `aclose()`, ...).
- No I/O and no import of an async library here.
"""

from __future__ import annotations

from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Optional,
    Protocol,
    Tuple,
    TypedDict,
    TypeVar,
    Union,
)

from ._backends import (
    SOCKET_OPTION,
    AsyncNetworkBackend,
    AsyncNetworkStream,
    NetworkBackend,
    NetworkStream,
)
from ._models import Request, Response

if TYPE_CHECKING:  # annotations only: ssl is imported where TLS is used
    import ssl

T = TypeVar("T")

#: An operation: `(OPCODE, target, *args)`.
Op = Tuple[object, ...]
#: What a driver sends back into a generator: the result of the operation it yielded, whose
#: type depends on the opcode (the helpers below give it).
Sent = Any
#: A protocol generator: yields operations, is sent their results, returns a value.
Gen = Generator[Op, Sent, T]
#: A body generator: like `Gen`, but may also yield chunks of body bytes.
BodyGen = Generator[Union[Op, bytes], Sent, None]

# Opcodes. The target object is always the second item of the tuple.
READ = "read"  # (READ, stream, max_bytes, timeout) -> bytes
WRITE = "write"  # (WRITE, stream, data, timeout) -> None
CLOSE = "close"  # (CLOSE, obj) -> None; obj.close() / await obj.aclose(), shielded
START_TLS = "start_tls"  # (START_TLS, stream, TLSArgs) -> stream
CONNECT_TCP = "connect_tcp"  # (CONNECT_TCP, backend, TCPArgs) -> stream
CONNECT_UNIX = "connect_unix"  # (CONNECT_UNIX, backend, UnixArgs) -> stream
SLEEP = "sleep"  # (SLEEP, backend, seconds) -> None
HANDLE = "handle"  # (HANDLE, connection, request) -> Response
ITER = "iter"  # (ITER, iterable) -> iterator / async iterator
NEXT = "next"  # (NEXT, iterator) -> next item, or None when exhausted
TRACE = "trace"  # (TRACE, callback, event_name, info) -> None
WAIT = "wait"  # (WAIT, waiter, timeout) -> None; waiter.wait_sync / wait_async
LOCK = "lock"  # (LOCK, lock) -> None
UNLOCK = "unlock"  # (UNLOCK, lock) -> None
CALL = "call"  # (CALL, sync_function, async_function, args) -> result

# -- the targets ------------------------------------------------------------------------------

#: A network stream of either flavour.
AnyNetworkStream = Union[NetworkStream, AsyncNetworkStream]
#: A network backend of either flavour.
AnyNetworkBackend = Union[NetworkBackend, AsyncNetworkBackend]


class TCPArgs(TypedDict):
    """The keyword arguments of `connect_tcp` (also the info of its trace events)."""

    host: str
    port: int
    local_address: Optional[str]
    timeout: Optional[float]
    socket_options: Optional[Iterable[SOCKET_OPTION]]


class UnixArgs(TypedDict):
    """The keyword arguments of `connect_unix_socket`."""

    path: str
    timeout: Optional[float]
    socket_options: Optional[Iterable[SOCKET_OPTION]]


class TLSArgs(TypedDict):
    """The keyword arguments of `start_tls`."""

    ssl_context: ssl.SSLContext
    server_hostname: Optional[str]
    timeout: Optional[float]


class SyncClosable(Protocol):
    """A network stream, connection, pool or response stream of the sync flavour."""

    def close(self) -> None: ...


class AsyncClosable(Protocol):
    """The same, of the async flavour."""

    def aclose(self) -> Awaitable[None]: ...


#: What CLOSE closes: `close()` under the sync driver, `await aclose()` under the async one.
Closable = Union[SyncClosable, AsyncClosable]


class SyncHandler(Protocol):
    """A connection or pool of the sync flavour."""

    def handle_request(self, request: Request) -> Response: ...


class AsyncHandler(Protocol):
    """The same, of the async flavour."""

    def handle_async_request(self, request: Request) -> Awaitable[Response]: ...


#: What HANDLE hands a request to: a connection (or pool) of either flavour.
Handler = Union[SyncHandler, AsyncHandler]


class Waitable(Protocol):
    """What WAIT waits on (e.g. a pool request waiting for a connection)."""

    def wait_sync(self, timeout: Optional[float]) -> None: ...

    def wait_async(self, timeout: Optional[float]) -> Awaitable[None]: ...


class IOLock(Protocol):
    """A lock held across I/O (`Flavour.io_lock()`): `acquire()` is awaited under async."""

    def acquire(self) -> object: ...

    def release(self) -> None: ...


#: The `trace` extension's callback: `(event_name, info)`, awaited under async.
TraceCallback = Callable[[str, Mapping[str, object]], object]

#: A request body of either flavour, and its iterator.
AnyIterable = Union[Iterable[T], AsyncIterable[T]]
AnyIterator = Union[Iterator[T], AsyncIterator[T]]

# -- one helper per opcode ---------------------------------------------------------------------


def read(stream: AnyNetworkStream, max_bytes: int, timeout: Optional[float]) -> Gen[bytes]:
    """Up to `max_bytes` from `stream`; `b""` at the end of the stream."""
    data: bytes = yield (READ, stream, max_bytes, timeout)
    return data


def write(stream: AnyNetworkStream, data: bytes, timeout: Optional[float]) -> Gen[None]:
    """All of `data` to `stream`."""
    yield (WRITE, stream, data, timeout)


def close(obj: Closable) -> Gen[None]:
    """Close `obj` (under async, shielded from cancellation)."""
    yield (CLOSE, obj)


def start_tls(stream: AnyNetworkStream, kwargs: TLSArgs) -> Gen[AnyNetworkStream]:
    """TLS over `stream`: the stream to use from then on."""
    tls_stream: AnyNetworkStream = yield (START_TLS, stream, kwargs)
    return tls_stream


def connect_tcp(backend: AnyNetworkBackend, kwargs: TCPArgs) -> Gen[AnyNetworkStream]:
    """A TCP connection opened by `backend`."""
    stream: AnyNetworkStream = yield (CONNECT_TCP, backend, kwargs)
    return stream


def connect_unix(backend: AnyNetworkBackend, kwargs: UnixArgs) -> Gen[AnyNetworkStream]:
    """A Unix socket connection opened by `backend`."""
    stream: AnyNetworkStream = yield (CONNECT_UNIX, backend, kwargs)
    return stream


def sleep(backend: AnyNetworkBackend, seconds: float) -> Gen[None]:
    """Wait `seconds` (the backend's `sleep`)."""
    yield (SLEEP, backend, seconds)


def handle(connection: Handler, request: Request) -> Gen[Response]:
    """`connection.handle_request(request)` (async: `handle_async_request`)."""
    response: Response = yield (HANDLE, connection, request)
    return response


def check_body(stream: object, is_async: bool) -> None:
    """Refuse, before anything is sent, a request body the connection's flavour cannot
    iterate (API.md §0: sync bodies are iterables, async ones async iterables)."""
    if hasattr(stream, "__aiter__" if is_async else "__iter__"):
        return
    if not is_async and hasattr(stream, "__getitem__"):
        return  # iter() takes the sequence protocol too (memoryview before Python 3.10)
    kind = "an async iterable" if is_async else "an iterable"
    flavour = "an async" if is_async else "a sync"
    raise TypeError(
        f"request body must be bytes or {kind} of bytes on {flavour} connection, "
        f"but got {type(stream).__name__}."
    )


def iterate(iterable: AnyIterable[T]) -> Gen[AnyIterator[T]]:
    """The iterator of a request body (`iter()` / `__aiter__()`)."""
    iterator: AnyIterator[T] = yield (ITER, iterable)
    return iterator


def next_item(iterator: AnyIterator[T]) -> Gen[Optional[T]]:
    """The next item of `iterator`, or None once it is exhausted."""
    item: Optional[T] = yield (NEXT, iterator)
    return item


def trace(callback: TraceCallback, name: str, info: Mapping[str, object]) -> Gen[None]:
    """Call the trace callback (awaited under async; the wrong kind raises TypeError)."""
    yield (TRACE, callback, name, info)


def wait(waiter: Waitable, timeout: Optional[float]) -> Gen[None]:
    """Wait on `waiter` (its timeout error after `timeout` seconds)."""
    yield (WAIT, waiter, timeout)


def lock(io_lock: IOLock) -> Gen[None]:
    """Acquire a lock held across I/O."""
    yield (LOCK, io_lock)


def unlock(io_lock: IOLock) -> Gen[None]:
    """Release it."""
    yield (UNLOCK, io_lock)


def call(
    sync_function: Callable[..., T],
    async_function: Callable[..., Awaitable[T]],
    args: Tuple[object, ...],
) -> Gen[T]:
    """`sync_function(*args)`, or `await async_function(*args)` under async."""
    result: T = yield (CALL, sync_function, async_function, args)
    return result
