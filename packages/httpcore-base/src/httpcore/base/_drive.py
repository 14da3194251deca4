"""Sans-I/O driving: the protocol and pool logic is written once, as generators.

A generator of this library never does I/O itself. It *yields operations* — tuples whose first
item is an opcode below — and receives each result (or has the exception thrown into it).
`drive()` performs the operations with blocking calls, `adrive()` awaits them, so one piece
of protocol code serves both the sync and the async classes. Generators that produce a
response body also yield `bytes` chunks, which `SyncOpStream`/`AsyncOpStream` hand to the
caller.

The per-flavour pieces (locks, events, the stream class) are grouped in `SyncIO`/`AsyncIO`,
which every class carries as its `_io` attribute.
"""

from __future__ import annotations

import threading
import types
from typing import Any, Callable, Dict, Generator, Iterator, Optional, Tuple, TypeVar, Union

from . import _async

T = TypeVar("T")

Op = Tuple[Any, ...]
#: A protocol generator: yields operations, is sent their results, returns a value.
Gen = Generator[Op, Any, T]
#: A body generator: like `Gen`, but may also yield chunks of body bytes.
BodyGen = Generator[Union[Op, bytes], Any, None]

# Opcodes. The target object is always the second item of the tuple.
READ = "read"  # (READ, stream, max_bytes, timeout) -> bytes
WRITE = "write"  # (WRITE, stream, data, timeout) -> None
CLOSE = "close"  # (CLOSE, obj) -> None; obj.close() / await obj.aclose(), shielded
START_TLS = "start_tls"  # (START_TLS, stream, kwargs) -> stream
CONNECT_TCP = "connect_tcp"  # (CONNECT_TCP, backend, kwargs) -> stream
CONNECT_UNIX = "connect_unix"  # (CONNECT_UNIX, backend, kwargs) -> stream
SLEEP = "sleep"  # (SLEEP, backend, seconds) -> None
HANDLE = "handle"  # (HANDLE, connection, request) -> Response
ITER = "iter"  # (ITER, iterable) -> iterator / async iterator
NEXT = "next"  # (NEXT, iterator) -> next item, or None when exhausted
TRACE = "trace"  # (TRACE, callback, event_name, info) -> None
WAIT = "wait"  # (WAIT, waiter, timeout) -> None; waiter.wait_sync / wait_async
LOCK = "lock"  # (LOCK, lock) -> None
UNLOCK = "unlock"  # (UNLOCK, lock) -> None
CALL = "call"  # (CALL, sync_function, async_function, args) -> result

SYNC_TRACE_MSG = (
    "If you are using a synchronous interface, the callback of the `trace` extension should "
    "be a normal function instead of an asynchronous function."
)
ASYNC_TRACE_MSG = (
    "If you're using an asynchronous interface, the callback of the `trace` extension should "
    "be an asynchronous function rather than a normal function."
)


def do(*op: Any) -> Gen[Any]:
    """A generator performing the single operation `op` (for use with `yield from`)."""
    return (yield op)


# -- the synchronous implementations ------------------------------------------------------


def _sync_trace(callback: Callable[..., Any], name: str, info: Dict[str, Any]) -> None:
    result = callback(name, info)
    if isinstance(result, types.CoroutineType):  # what inspect.iscoroutine() tests
        result.close()
        raise TypeError(SYNC_TRACE_MSG)


def _sync_call(function: Callable[..., Any], _async_function: Any, args: Tuple[Any, ...]) -> Any:
    return function(*args)


_SYNC_OPS: Dict[str, Callable[..., Any]] = {
    READ: lambda stream, n, timeout: stream.read(n, timeout),
    WRITE: lambda stream, data, timeout: stream.write(data, timeout),
    CLOSE: lambda obj: obj.close(),
    START_TLS: lambda stream, kwargs: stream.start_tls(**kwargs),
    CONNECT_TCP: lambda backend, kwargs: backend.connect_tcp(**kwargs),
    CONNECT_UNIX: lambda backend, kwargs: backend.connect_unix_socket(**kwargs),
    SLEEP: lambda backend, seconds: backend.sleep(seconds),
    HANDLE: lambda connection, request: connection.handle_request(request),
    ITER: iter,
    NEXT: lambda iterator: next(iterator, None),
    TRACE: _sync_trace,
    WAIT: lambda waiter, timeout: waiter.wait_sync(timeout),
    LOCK: lambda lock: lock.acquire(),
    UNLOCK: lambda lock: lock.release(),
    CALL: _sync_call,
}


class _Finished:
    """What `_advance`/`_aadvance` return when the generator has finished."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _advance(gen: Generator[Any, Any, Any]) -> Any:
    """Perform operations until `gen` yields body bytes (returned) or finishes (`_Finished`)."""
    ops = _SYNC_OPS
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
    return item


def drive(gen: Gen[T]) -> T:
    """Run a protocol generator to completion with blocking I/O."""
    result = _advance(gen)
    if type(result) is not _Finished:
        raise RuntimeError("a protocol generator yielded body bytes")
    return result.value  # type: ignore[no-any-return]


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
        item: Any
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
        if type(result) is _Finished:
            raise StopIteration
        return result  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._close is not None:
            drive(self.closing())


# -- the asynchronous implementations -----------------------------------------------------


async def _async_trace(callback: Callable[..., Any], name: str, info: Dict[str, Any]) -> None:
    import inspect  # here: importing it costs a sync-only user ~10 ms of cold start

    result = callback(name, info)
    if not inspect.isawaitable(result):
        raise TypeError(ASYNC_TRACE_MSG)
    await result


async def _async_read(stream: Any, n: int, timeout: Optional[float]) -> bytes:
    return await stream.read(n, timeout)  # type: ignore[no-any-return]


async def _async_write(stream: Any, data: bytes, timeout: Optional[float]) -> None:
    await stream.write(data, timeout)


async def _async_close(obj: Any) -> None:
    if type(obj) is AsyncOpStream:
        # Our own body streams shield the network closes they make; shielding them here
        # would cost a task per response under asyncio.
        await obj.aclose()
    else:
        await _async.shielded(obj.aclose)


async def _async_start_tls(stream: Any, kwargs: Dict[str, Any]) -> Any:
    return await stream.start_tls(**kwargs)


async def _async_connect_tcp(backend: Any, kwargs: Dict[str, Any]) -> Any:
    return await backend.connect_tcp(**kwargs)


async def _async_connect_unix(backend: Any, kwargs: Dict[str, Any]) -> Any:
    return await backend.connect_unix_socket(**kwargs)


async def _async_sleep(backend: Any, seconds: float) -> None:
    await backend.sleep(seconds)


async def _async_handle(connection: Any, request: Any) -> Any:
    return await connection.handle_async_request(request)


async def _async_iter(iterable: Any) -> Any:
    return iterable.__aiter__()


async def _async_next(iterator: Any) -> Any:
    try:
        return await iterator.__anext__()
    except StopAsyncIteration:
        return None


async def _async_wait(waiter: Any, timeout: Optional[float]) -> None:
    await waiter.wait_async(timeout)


async def _async_lock(lock: Any) -> None:
    await lock.acquire()


async def _async_unlock(lock: Any) -> None:
    lock.release()


async def _async_call(_function: Any, async_function: Any, args: Tuple[Any, ...]) -> Any:
    return await async_function(*args)


_ASYNC_OPS: Dict[str, Callable[..., Any]] = {
    READ: _async_read,
    WRITE: _async_write,
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


async def _aadvance(gen: Generator[Any, Any, Any]) -> Any:
    """The async twin of `_advance`."""
    ops = _ASYNC_OPS
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
    return item


async def adrive(gen: Gen[T]) -> T:
    """Run a protocol generator to completion, awaiting each operation."""
    result = await _aadvance(gen)
    if type(result) is not _Finished:
        raise RuntimeError("a protocol generator yielded body bytes")
    return result.value  # type: ignore[no-any-return]


class AsyncOpStream(OpStream):
    """An async-iterable response body produced by a body generator."""

    __slots__ = ()

    def __aiter__(self) -> AsyncOpStream:
        return self

    async def __anext__(self) -> bytes:
        result = await _aadvance(self._body)
        if type(result) is _Finished:
            raise StopAsyncIteration
        return result  # type: ignore[no-any-return]

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


class SyncIO:
    """The synchronous flavour: threads, blocking calls."""

    is_async = False
    stream_class = SyncOpStream

    @staticmethod
    def state_lock() -> Any:
        """A lock for bookkeeping that never spans I/O."""
        return threading.Lock()

    @staticmethod
    def io_lock() -> Any:
        """A lock held across I/O, taken with the LOCK/UNLOCK operations."""
        return threading.Lock()

    @staticmethod
    def new_event() -> Any:
        return threading.Event()

    @staticmethod
    def default_backend() -> Any:
        from ._sync_backend import SyncBackend

        return SyncBackend()


class AsyncIO:
    """The asynchronous flavour: asyncio or trio, picked at run time."""

    is_async = True
    stream_class = AsyncOpStream

    @staticmethod
    def state_lock() -> Any:
        return _NULL_LOCK

    @staticmethod
    def io_lock() -> Any:
        return _async.AsyncLock()

    @staticmethod
    def new_event() -> Any:
        return _async.AsyncEvent()

    @staticmethod
    def default_backend() -> Any:
        # Looked up at the point of use: the async backends ship in httpcore-async.
        try:
            from httpcore.aio._auto import AutoBackend
        except ImportError:
            raise RuntimeError(
                "Attempted to use an async class, but the async support is not installed. "
                "Use 'pip install httpcore[asyncio]' (or 'httpcore[trio]')."
            ) from None
        return AutoBackend()


Flavour = Union["type[SyncIO]", "type[AsyncIO]"]


class _IteratorCloser:
    """`close()`/`aclose()` of a request body's iterator, for the CLOSE operation; iterators
    without them (e.g. over a list) need nothing."""

    __slots__ = ("_iterator",)

    def __init__(self, iterator: Any) -> None:
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


def close_iterator(iterator: Any) -> Gen[None]:
    """Close a request body's iterator that a request left part-way (failed, cancelled, or the
    server stopped reading), so that a generator's cleanup runs now and not in the garbage
    collector (where trio warns of an async generator collected before it was exhausted)."""
    yield (CLOSE, _IteratorCloser(iterator))
