"""Sans-I/O driving: the protocol and pool logic is written once, as generators.

A generator of this library never does I/O itself. It *yields operations* — tuples whose first
item is an opcode (`_ops.py`, with a typed one-op helper per opcode) — and receives each result
(or has the exception thrown into it).
`drive()` performs the operations with blocking calls, `adrive()` awaits them, so one piece
of protocol code serves both the sync and the async classes. Generators that produce a
response body also yield `bytes` chunks, which `SyncOpStream`/`AsyncOpStream` hand to the
caller.

The per-flavour pieces (locks, events, the stream class) are grouped in `SyncIO`/`AsyncIO`,
which every class carries as its `_io` attribute.
"""

from __future__ import annotations

import _thread
import threading
import types
from typing import (
    Any,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    ContextManager,
    Dict,
    Generator,
    Generic,
    Iterator,
    Mapping,
    Optional,
    Protocol,
    Tuple,
    Union,
)

from . import _async
from ._backends import AsyncNetworkBackend, AsyncNetworkStream
from ._models import Request, Response
from ._ops import (
    CALL,
    CLOSE,
    CONNECT_TCP,
    CONNECT_UNIX,
    HANDLE,
    ITER,
    LOCK,
    NEXT,
    READ,
    SLEEP,
    START_TLS,
    TRACE,
    UNLOCK,
    WAIT,
    WRITE,
    AnyIterator,
    AnyNetworkBackend,
    AsyncClosable,
    AsyncHandler,
    BodyGen,
    Gen,
    IOLock,
    Op,
    Sent,
    T,
    TCPArgs,
    TLSArgs,
    TraceCallback,
    UnixArgs,
    Waitable,
)

__all__ = [  # the opcodes and types are defined in `_ops`; protocol code imports them here
    "CALL",
    "CLOSE",
    "CONNECT_TCP",
    "CONNECT_UNIX",
    "HANDLE",
    "ITER",
    "LOCK",
    "NEXT",
    "READ",
    "SLEEP",
    "START_TLS",
    "TRACE",
    "UNLOCK",
    "WAIT",
    "WRITE",
    "AsyncIO",
    "AsyncOpStream",
    "BodyGen",
    "Event",
    "Flavour",
    "Gen",
    "Op",
    "OpStream",
    "SyncIO",
    "SyncOpStream",
    "T",
    "adrive",
    "close_iterator",
    "do",
    "drive",
]

SYNC_TRACE_MSG = (
    "If you are using a synchronous interface, the callback of the `trace` extension should "
    "be a normal function instead of an asynchronous function."
)
ASYNC_TRACE_MSG = (
    "If you're using an asynchronous interface, the callback of the `trace` extension should "
    "be an asynchronous function rather than a normal function."
)


def do(*op: object) -> Gen[Sent]:
    """A generator performing the single operation `op` (for use with `yield from`); its
    result is untyped: prefer the typed helpers of `_ops` (`read`, `start_tls`, ...)."""
    return (yield op)


# -- the synchronous implementations ------------------------------------------------------


def _sync_trace(callback: TraceCallback, name: str, info: Mapping[str, object]) -> None:
    result = callback(name, info)
    if isinstance(result, types.CoroutineType):  # what inspect.iscoroutine() tests
        result.close()
        raise TypeError(SYNC_TRACE_MSG)


def _sync_call(function: Callable[..., T], _async_function: object, args: Tuple[object, ...]) -> T:
    return function(*args)


def _sync_next(iterator: Iterator[T]) -> Optional[T]:
    return next(iterator, None)


# Every operation but READ and WRITE (which `_advance` performs directly), by opcode; the
# targets are those of the sync flavour.
_SYNC_OPS: Dict[str, Callable[..., object]] = {
    CLOSE: lambda obj: obj.close(),
    START_TLS: lambda stream, kwargs: stream.start_tls(**kwargs),
    CONNECT_TCP: lambda backend, kwargs: backend.connect_tcp(**kwargs),
    CONNECT_UNIX: lambda backend, kwargs: backend.connect_unix_socket(**kwargs),
    SLEEP: lambda backend, seconds: backend.sleep(seconds),
    HANDLE: lambda connection, request: connection.handle_request(request),
    ITER: iter,
    NEXT: _sync_next,
    TRACE: _sync_trace,
    WAIT: lambda waiter, timeout: waiter.wait_sync(timeout),
    LOCK: lambda lock: lock.acquire(),
    UNLOCK: lambda lock: lock.release(),
    CALL: _sync_call,
}


class _Finished(Generic[T]):
    """What `_advance`/`_aadvance` return when the generator has finished."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value


def _advance(gen: Generator[Union[Op, bytes], Sent, T]) -> Union[_Finished[T], bytes]:
    """Perform operations until `gen` yields body bytes (returned) or finishes (`_Finished`)."""
    ops = _SYNC_OPS
    # An operation's target and arguments depend on its opcode: dispatched dynamically.
    item: Any
    try:
        item = gen.send(None)
        while type(item) is not bytes:
            try:
                op = item[0]
                # The hot operations are called directly, the rest through the table.
                if op is READ:
                    value = item[1].read(item[2], item[3])
                elif op is WRITE:
                    value = item[1].write(item[2], item[3])
                else:
                    value = ops[op](*item[1:])
            except BaseException as exc:
                item = gen.throw(exc)
            else:
                item = gen.send(value)
    except StopIteration as stop:
        return _Finished(stop.value)
    chunk: bytes = item
    return chunk


def drive(gen: Gen[T]) -> T:
    """Run a protocol generator to completion with blocking I/O."""
    result = _advance(gen)
    if type(result) is _Finished:
        return result.value
    raise RuntimeError("a protocol generator yielded body bytes")


class OpStream:
    """What the sync and async op streams share: reading and closing them from inside another
    protocol generator (whose driver then performs their operations)."""

    __slots__ = ("_body", "_close")

    def __init__(self, body: BodyGen, close: Callable[[], Gen[None]]) -> None:
        self._body = body
        self._close: Optional[Callable[[], Gen[None]]] = close

    def collect(self) -> Gen[bytes]:
        """The whole body."""
        body = self._body
        chunks = []
        item: Any  # bytes or an operation, told apart by the exact type (the fastest test)
        try:
            item = body.send(None)
            while True:
                if type(item) is bytes:
                    chunks.append(item)
                    item = body.send(None)
                else:
                    try:
                        value = yield item
                    except BaseException as exc:
                        item = body.throw(exc)
                    else:
                        item = body.send(value)
        except StopIteration:
            pass
        return b"".join(chunks)

    def closing(self) -> Gen[None]:
        """Close it (once; later calls do nothing)."""
        close, self._close = self._close, None
        if close is not None:
            self._body.close()
            yield from close()


class SyncOpStream(OpStream):
    """A sync-iterable response body produced by a body generator.

    `close()` runs the close generator once; later calls do nothing.
    """

    __slots__ = ()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        result = _advance(self._body)
        if type(result) is bytes:
            return result
        raise StopIteration

    def close(self) -> None:
        if self._close is not None:
            drive(self.closing())


# -- the asynchronous implementations -----------------------------------------------------


async def _async_trace(callback: TraceCallback, name: str, info: Mapping[str, object]) -> None:
    import inspect  # here: importing it costs a sync-only user ~10 ms of cold start

    result = callback(name, info)
    if not inspect.isawaitable(result):
        raise TypeError(ASYNC_TRACE_MSG)
    await result


async def _async_close(obj: Union[AsyncClosable, AsyncOpStream]) -> None:
    if type(obj) is AsyncOpStream:
        # Our own body streams shield the network closes they make; shielding them here
        # would cost a task per response under asyncio.
        await obj.aclose()
    else:
        await _async.shielded(obj.aclose)


async def _async_start_tls(stream: AsyncNetworkStream, kwargs: TLSArgs) -> AsyncNetworkStream:
    return await stream.start_tls(**kwargs)


async def _async_connect_tcp(backend: AsyncNetworkBackend, kwargs: TCPArgs) -> AsyncNetworkStream:
    return await backend.connect_tcp(**kwargs)


async def _async_connect_unix(backend: AsyncNetworkBackend, kwargs: UnixArgs) -> AsyncNetworkStream:
    return await backend.connect_unix_socket(**kwargs)


async def _async_sleep(backend: AsyncNetworkBackend, seconds: float) -> None:
    await backend.sleep(seconds)


async def _async_handle(connection: AsyncHandler, request: Request) -> Response:
    return await connection.handle_async_request(request)


async def _async_iter(iterable: AsyncIterable[T]) -> AsyncIterator[T]:
    return iterable.__aiter__()


async def _async_next(iterator: AsyncIterator[T]) -> Optional[T]:
    try:
        return await iterator.__anext__()
    except StopAsyncIteration:
        return None


async def _async_wait(waiter: Waitable, timeout: Optional[float]) -> None:
    await waiter.wait_async(timeout)


async def _async_lock(lock: _async.AsyncLock) -> None:
    await lock.acquire()


async def _async_unlock(lock: _async.AsyncLock) -> None:
    lock.release()


async def _async_call(
    _function: object, async_function: Callable[..., Awaitable[T]], args: Tuple[object, ...]
) -> T:
    return await async_function(*args)


# Every operation but READ and WRITE (which `_aadvance` awaits directly), by opcode; the
# targets are those of the async flavour.
_ASYNC_OPS: Dict[str, Callable[..., Awaitable[object]]] = {
    CLOSE: _async_close,
    START_TLS: _async_start_tls,
    CONNECT_TCP: _async_connect_tcp,
    CONNECT_UNIX: _async_connect_unix,
    SLEEP: _async_sleep,
    HANDLE: _async_handle,
    ITER: _async_iter,
    NEXT: _async_next,
    TRACE: _async_trace,
    WAIT: _async_wait,
    LOCK: _async_lock,
    UNLOCK: _async_unlock,
    CALL: _async_call,
}


async def _aadvance(gen: Generator[Union[Op, bytes], Sent, T]) -> Union[_Finished[T], bytes]:
    """The async twin of `_advance`."""
    ops = _ASYNC_OPS
    item: Any  # dispatched dynamically, as in `_advance`
    try:
        item = gen.send(None)
        while type(item) is not bytes:
            try:
                op = item[0]
                if op is READ:
                    value = await item[1].read(item[2], item[3])
                elif op is WRITE:
                    value = await item[1].write(item[2], item[3])
                else:
                    value = await ops[op](*item[1:])
            except BaseException as exc:
                item = gen.throw(exc)
            else:
                item = gen.send(value)
    except StopIteration as stop:
        return _Finished(stop.value)
    chunk: bytes = item
    return chunk


async def adrive(gen: Gen[T]) -> T:
    """Run a protocol generator to completion, awaiting each operation."""
    result = await _aadvance(gen)
    if type(result) is _Finished:
        return result.value
    raise RuntimeError("a protocol generator yielded body bytes")


class AsyncOpStream(OpStream):
    """An async-iterable response body produced by a body generator."""

    __slots__ = ()

    def __aiter__(self) -> AsyncOpStream:
        return self

    async def __anext__(self) -> bytes:
        result = await _aadvance(self._body)
        if type(result) is bytes:
            return result
        raise StopAsyncIteration

    async def aclose(self) -> None:
        if self._close is not None:
            await adrive(self.closing())


# -- the flavours ---------------------------------------------------------------------------


class _NullLock:
    """Stands in for a state lock under async, where state changes never span an await."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


_NULL_LOCK = _NullLock()


#: The response body stream of a flavour (`Flavour.stream_class`).
ResponseStream = Union[SyncOpStream, AsyncOpStream]


class Event(Protocol):
    """A one-shot event (`Flavour.new_event()`): `wait()` returns whether it was set (sync),
    or is awaited and raises `PoolTimeout` (async)."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...

    def wait(self, timeout: Optional[float]) -> object: ...


class Flavour(Protocol):
    """What protocol code asks of its flavour (`SyncIO` or `AsyncIO`, as the `_io` class
    attribute): whether it is async, the response stream class, locks, events, the default
    network backend."""

    @property
    def is_async(self) -> bool: ...

    @property
    def stream_class(self) -> Callable[[BodyGen, Callable[[], Gen[None]]], ResponseStream]: ...

    def state_lock(self) -> ContextManager[object]:
        """A lock for bookkeeping that never spans I/O."""

    def io_lock(self) -> IOLock:
        """A lock held across I/O, taken with the LOCK/UNLOCK operations."""

    def new_event(self) -> Event: ...

    def default_backend(self) -> AnyNetworkBackend: ...


class ThreadEvent:
    """A one-shot event for one waiting thread (what `SyncIO.new_event()` makes).

    `threading.Event` wakes its waiter while holding the lock of its condition, which the
    waiter must then take too: two thread switches per hand-over. Here the waiter sleeps on
    a held lock that `set()` releases: one. Only one thread may wait on it; `set()` may be
    called any number of times, from any thread.
    """

    __slots__ = ("_flag", "_lock")

    def __init__(self) -> None:
        self._flag = False
        self._lock = _thread.allocate_lock()
        self._lock.acquire()

    def set(self) -> None:
        if not self._flag:
            self._flag = True
            try:
                self._lock.release()
            except RuntimeError:  # another thread's `set()` released it first
                pass

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: Optional[float]) -> bool:
        """Whether it was set, within `timeout` seconds (None: for as long as it takes)."""
        if self._flag:
            return True
        if timeout is None:
            return self._lock.acquire()
        if timeout > 0:
            # Longer than a lock can wait (~292 years) would be an OverflowError: as good as
            # no timeout.
            return self._lock.acquire(True, min(timeout, _thread.TIMEOUT_MAX)) or self._flag
        return self._flag


class SyncIO:
    """The synchronous flavour: threads, blocking calls."""

    is_async = False
    stream_class = SyncOpStream

    @staticmethod
    def state_lock() -> threading.Lock:
        """A lock for bookkeeping that never spans I/O."""
        return threading.Lock()

    @staticmethod
    def io_lock() -> threading.Lock:
        """A lock held across I/O, taken with the LOCK/UNLOCK operations."""
        return threading.Lock()

    @staticmethod
    def new_event() -> ThreadEvent:
        return ThreadEvent()

    @staticmethod
    def default_backend() -> AnyNetworkBackend:
        from ._sync_backend import SyncBackend

        return SyncBackend()


class AsyncIO:
    """The asynchronous flavour: asyncio or trio, picked at run time."""

    is_async = True
    stream_class = AsyncOpStream

    @staticmethod
    def state_lock() -> _NullLock:
        return _NULL_LOCK

    @staticmethod
    def io_lock() -> _async.AsyncLock:
        return _async.AsyncLock()

    @staticmethod
    def new_event() -> _async.AsyncEvent:
        return _async.AsyncEvent()

    @staticmethod
    def default_backend() -> AnyNetworkBackend:
        # Looked up at the point of use: the async backends ship in httpcore-async.
        try:
            from httpcore.aio._auto import AutoBackend
        except ImportError:
            raise RuntimeError(
                "Attempted to use an async class, but the async support is not installed. "
                "Use 'pip install httpcore[asyncio]' (or 'httpcore[trio]')."
            ) from None
        return AutoBackend()


class _IteratorCloser:
    """`close()`/`aclose()` of a request body's iterator, for the CLOSE operation; iterators
    without them (e.g. over a list) need nothing."""

    __slots__ = ("_iterator",)

    def __init__(self, iterator: AnyIterator[object]) -> None:
        self._iterator = iterator

    def close(self) -> None:
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()

    async def aclose(self) -> None:
        aclose = getattr(self._iterator, "aclose", None)
        if aclose is not None:
            await aclose()
        else:
            self.close()


def close_iterator(iterator: AnyIterator[object]) -> Gen[None]:
    """Close a request body's iterator that a request left part-way (failed, cancelled, or the
    server stopped reading), so that a generator's cleanup runs now and not in the garbage
    collector (where trio warns of an async generator collected before it was exhausted)."""
    yield (CLOSE, _IteratorCloser(iterator))
