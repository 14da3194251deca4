"""The few async primitives every async class needs, for asyncio and trio.

Nothing here imports asyncio, anyio or trio at module level (a sync-only user of
`httpcore.base` loads none of them): the running library is asked for at the point of use (via
sniffio when it is installed), and asyncio or trio is imported there, when it is already loaded
and the import is a dictionary look-up. Under asyncio the native primitives are used, which
keeps anyio off the hot path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Awaitable, Callable, List, Optional, Protocol, TypeVar

from ._exceptions import PoolTimeout

if TYPE_CHECKING:
    import asyncio

    from ._happy_eyeballs import AddrInfo

T = TypeVar("T")

UNSUPPORTED = "Running under an unsupported async environment."


def current_library() -> str:
    """Name of the running async library: "asyncio" or "trio"."""
    try:
        import sniffio
    except ImportError:  # pragma: no cover - sniffio comes with anyio and trio
        return "asyncio"
    try:
        name = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        raise RuntimeError(UNSUPPORTED) from None
    if name not in ("asyncio", "trio"):
        raise RuntimeError(UNSUPPORTED)
    return name


async def shielded(function: Callable[[], Awaitable[T]]) -> T:
    """Await `function()` protected from cancellation of the calling task.

    Used for cleanup (closing connections and streams), so that a cancelled request still
    leaves its connection closed and the pool's bookkeeping right.
    """
    if current_library() == "trio":
        import trio

        with trio.CancelScope(shield=True):
            return await function()
    # Under asyncio the cleanup runs in its own task, and this task waits for it to finish
    # however often it is cancelled meanwhile (anyio cancel scopes cancel repeatedly), so the
    # caller's next step sees the cleanup done; then the cancellation is re-raised.
    import asyncio

    task = asyncio.ensure_future(function())
    cancelled: Optional[BaseException] = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            if not task.cancelled():
                cancelled = exc
    if cancelled is not None:
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation takes precedence
        raise cancelled
    return task.result()


class _LibraryEvent(Protocol):
    """An `asyncio.Event` or a `trio.Event`."""

    def set(self) -> None: ...

    def wait(self) -> Awaitable[object]: ...


class _LibraryLock(Protocol):
    """An `asyncio.Lock` or a `trio.Lock`."""

    def acquire(self) -> Awaitable[object]: ...

    def release(self) -> None: ...


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


class AsyncEvent:
    """A one-shot event that can be set from plain (non-async) code."""

    __slots__ = ("_event", "_future", "_is_set")

    def __init__(self) -> None:
        self._is_set = False
        self._event: Optional[_LibraryEvent] = None  # trio
        self._future: Optional[asyncio.Future[bool]] = None  # asyncio

    def set(self) -> None:
        self._is_set = True
        if self._event is not None:
            self._event.set()
        future = self._future
        if future is not None and not future.done():
            future.set_result(True)

    def is_set(self) -> bool:
        return self._is_set

    async def wait(self, timeout: Optional[float]) -> None:
        """Wait until set; raise `PoolTimeout` after `timeout` seconds."""
        if self._is_set:
            return
        if current_library() == "trio":
            import trio

            self._event = trio.Event()
            try:
                with trio.fail_after(float("inf") if timeout is None else timeout):
                    await self._event.wait()
            except trio.TooSlowError as exc:
                raise PoolTimeout(exc) from exc
            return
        import asyncio

        # A bare future and a timer: `asyncio.wait_for` would run the wait in a task of its
        # own (before Python 3.12), which costs more than the rest of an HTTP/2 wait.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._future = future
        if timeout is None:
            await future
            return
        timer = loop.call_later(timeout, _expire, future)
        try:
            if await future:
                return
        finally:
            timer.cancel()
        timed_out = asyncio.TimeoutError()
        raise PoolTimeout(timed_out) from timed_out


class AsyncLock:
    """A task lock for asyncio or trio, created on first use inside the running loop."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock: Optional[_LibraryLock] = None

    async def acquire(self) -> None:
        if self._lock is None:
            if current_library() == "trio":
                import trio

                self._lock = trio.Lock()
            else:
                import asyncio

                self._lock = asyncio.Lock()
        await self._lock.acquire()

    def release(self) -> None:
        lock = self._lock
        assert lock is not None  # released only after acquire()
        lock.release()


async def checkpoint() -> None:
    """Let the other tasks run once (one turn of the asyncio loop, a trio checkpoint)."""
    if current_library() == "trio":
        import trio

        await trio.lowlevel.checkpoint()
    else:
        import asyncio

        await asyncio.sleep(0)


async def getaddrinfo(host: str, port: int, family: int = 0, type: int = 0) -> List[AddrInfo]:
    """`socket.getaddrinfo` without blocking the event loop (asyncio or trio)."""
    if current_library() == "trio":
        import trio

        return list(await trio.socket.getaddrinfo(host, port, family, type))
    import asyncio

    loop = asyncio.get_running_loop()
    return list(await loop.getaddrinfo(host, port, family=family, type=type))
