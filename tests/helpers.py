"""A small harness that runs one test body against the sync, asyncio and trio clients.

Test modules bind the fixtures under their names::

    anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

and write each behaviour once, as an ``@pytest.mark.anyio`` coroutine taking ``api``. Under the
``sync`` flavour, ``api`` hands out the sync classes wrapped in thin adapters whose coroutine
methods call the blocking methods directly (they never suspend), so the same ``await`` code
exercises ``handle_request``/``close``/``read``; under ``asyncio``/``trio`` it hands out the real
``Async*`` classes.

Recording mock backends (``api.backend(...)``, ``api.mock_stream(...)``) keep the bytes written,
the connect/start_tls arguments and the retry delays, for byte-exact assertions.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import sys
import threading
import time
import warnings
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Set,
)

import anyio
import pytest

import httpcore

FLAVOURS = ["sync", "asyncio", "trio"]


# -- recording mock streams and backends ----------------------------------------------------


class _StreamRecorder:
    """Shared by the sync and async recording streams."""

    _buffer: List[bytes]
    _closed: bool

    def _setup(self, write_error: bool, readable_when_drained: bool) -> None:
        self.written: List[bytes] = []
        self.timeouts: List[Any] = []  # ("read" | "write", timeout) per call
        self.tls: List[Dict[str, Any]] = []
        self._write_error = write_error
        self._readable_when_drained = readable_when_drained

    def _record_write(self, data: bytes, timeout: Optional[float]) -> None:
        self.timeouts.append(("write", timeout))
        if self._write_error:
            raise httpcore.WriteError("Connection reset by peer")
        self.written.append(data)

    def _record_tls(self, kwargs: Dict[str, Any]) -> Any:
        self.tls.append(kwargs)
        return self

    @property
    def data(self) -> bytes:
        """Everything written so far."""
        return b"".join(self.written)

    @property
    def closed(self) -> bool:
        return self._closed

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # An idle socket is only readable once the server closed it: here, once the canned
            # bytes are used up.
            return self._readable_when_drained and not self._buffer
        return super().get_extra_info(info)  # type: ignore[misc]


class SyncRecordingStream(_StreamRecorder, httpcore.MockStream):
    def __init__(
        self,
        buffer: List[bytes],
        http2: bool = False,
        write_error: bool = False,
        readable_when_drained: bool = False,
    ) -> None:
        super().__init__(buffer, http2)
        self._setup(write_error, readable_when_drained)

    def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        self.timeouts.append(("read", timeout))
        return super().read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self._record_write(buffer, timeout)

    def start_tls(self, ssl_context: Any, server_hostname: Any = None, timeout: Any = None) -> Any:
        kwargs = {"ssl_context": ssl_context, "server_hostname": server_hostname}
        return self._record_tls({**kwargs, "timeout": timeout})


class AsyncRecordingStream(_StreamRecorder, httpcore.AsyncMockStream):
    def __init__(
        self,
        buffer: List[bytes],
        http2: bool = False,
        write_error: bool = False,
        readable_when_drained: bool = False,
    ) -> None:
        super().__init__(buffer, http2)
        self._setup(write_error, readable_when_drained)

    async def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        self.timeouts.append(("read", timeout))
        return await super().read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self._record_write(buffer, timeout)

    async def start_tls(
        self, ssl_context: Any, server_hostname: Any = None, timeout: Any = None
    ) -> Any:
        kwargs = {"ssl_context": ssl_context, "server_hostname": server_hostname}
        return self._record_tls({**kwargs, "timeout": timeout})


class _BackendRecorder:
    """Shared by the sync and async recording backends."""

    _buffer: List[bytes]
    _http2: bool
    stream_class: Any

    def _setup(self, fail_connects: int, error: type, stream_options: Dict[str, Any]) -> None:
        self.connects: List[Dict[str, Any]] = []
        self.streams: List[Any] = []
        self.sleeps: List[float] = []
        self._fail_connects = fail_connects
        self._error = error
        self._stream_options = stream_options

    def _connect(self, kwargs: Dict[str, Any]) -> Any:
        self.connects.append(kwargs)
        if self._fail_connects > 0:
            self._fail_connects -= 1
            raise self._error("[Errno 111] Connection refused")
        stream = self.stream_class(list(self._buffer), self._http2, **self._stream_options)
        self.streams.append(stream)
        return stream


class SyncRecordingBackend(_BackendRecorder, httpcore.MockBackend):
    stream_class = SyncRecordingStream

    def __init__(
        self,
        buffer: List[bytes],
        http2: bool = False,
        fail_connects: int = 0,
        error: type = httpcore.ConnectError,
        **stream_options: Any,
    ) -> None:
        super().__init__(buffer, http2)
        self._setup(fail_connects, error, stream_options)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: Optional[float] = None,
        local_address: Optional[str] = None,
        socket_options: Any = None,
    ) -> Any:
        kwargs = {"host": host, "port": port, "timeout": timeout}
        return self._connect(
            {**kwargs, "local_address": local_address, "socket_options": socket_options}
        )

    def connect_unix_socket(
        self, path: str, timeout: Optional[float] = None, socket_options: Any = None
    ) -> Any:
        return self._connect({"path": path, "timeout": timeout, "socket_options": socket_options})

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


class AsyncRecordingBackend(_BackendRecorder, httpcore.AsyncMockBackend):
    stream_class = AsyncRecordingStream

    def __init__(
        self,
        buffer: List[bytes],
        http2: bool = False,
        fail_connects: int = 0,
        error: type = httpcore.ConnectError,
        **stream_options: Any,
    ) -> None:
        super().__init__(buffer, http2)
        self._setup(fail_connects, error, stream_options)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: Optional[float] = None,
        local_address: Optional[str] = None,
        socket_options: Any = None,
    ) -> Any:
        kwargs = {"host": host, "port": port, "timeout": timeout}
        return self._connect(
            {**kwargs, "local_address": local_address, "socket_options": socket_options}
        )

    async def connect_unix_socket(
        self, path: str, timeout: Optional[float] = None, socket_options: Any = None
    ) -> Any:
        return self._connect({"path": path, "timeout": timeout, "socket_options": socket_options})

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


# -- adapters giving the sync classes the async method names ----------------------------------


class SyncResponse:
    """A sync `Response` seen through the async method names."""

    def __init__(self, response: httpcore.Response) -> None:
        self.wrapped = response

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def __repr__(self) -> str:
        return repr(self.wrapped)

    async def aread(self) -> bytes:
        return self.wrapped.read()

    async def aiter_stream(self) -> AsyncIterator[bytes]:
        for chunk in self.wrapped.iter_stream():
            yield chunk

    async def aclose(self) -> None:
        self.wrapped.close()


class SyncClient:
    """A sync pool/connection seen through the async method names."""

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def __repr__(self) -> str:
        return repr(self.wrapped)

    async def request(self, *args: Any, **kwargs: Any) -> httpcore.Response:
        return self.wrapped.request(*args, **kwargs)  # type: ignore[no-any-return]

    @contextlib.asynccontextmanager
    async def stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[SyncResponse]:
        with self.wrapped.stream(*args, **kwargs) as response:
            yield SyncResponse(response)

    async def handle_async_request(self, request: httpcore.Request) -> SyncResponse:
        return SyncResponse(self.wrapped.handle_request(request))

    async def aclose(self) -> None:
        self.wrapped.close()

    async def __aenter__(self) -> SyncClient:
        self.wrapped.__enter__()
        return self

    async def __aexit__(self, *args: Any) -> None:
        self.wrapped.__exit__(*args)


def run_unsuspended(coroutine: Any) -> Any:
    """Run a coroutine that never suspends (sync flavour) to completion, in this thread."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise RuntimeError("a sync-flavour coroutine suspended")


class API:
    """The classes and helpers of one flavour."""

    def __init__(self, flavour: str) -> None:
        self.flavour = flavour
        self.is_async = flavour != "sync"

    # names and classes

    def name(self, name: str) -> str:
        """The class name as it appears in reprs: `Async` prefix for the async flavour."""
        return "Async" + name if self.is_async else name

    def cls(self, name: str) -> Any:
        return getattr(httpcore, self.name(name))

    def _client(self, name: str, *args: Any, **kwargs: Any) -> Any:
        obj = self.cls(name)(*args, **kwargs)
        return obj if self.is_async else SyncClient(obj)

    def ConnectionPool(self, *args: Any, **kwargs: Any) -> Any:
        return self._client("ConnectionPool", *args, **kwargs)

    def HTTPProxy(self, *args: Any, **kwargs: Any) -> Any:
        return self._client("HTTPProxy", *args, **kwargs)

    def HTTPConnection(self, *args: Any, **kwargs: Any) -> Any:
        return self._client("HTTPConnection", *args, **kwargs)

    def HTTP11Connection(self, *args: Any, **kwargs: Any) -> Any:
        return self._client("HTTP11Connection", *args, **kwargs)

    def backend(self, buffer: List[bytes], http2: bool = False, **options: Any) -> Any:
        """A recording mock backend (options: fail_connects, error, write_error,
        readable_when_drained)."""
        cls = AsyncRecordingBackend if self.is_async else SyncRecordingBackend
        return cls(buffer, http2, **options)

    def mock_stream(self, buffer: List[bytes], **options: Any) -> Any:
        cls = AsyncRecordingStream if self.is_async else SyncRecordingStream
        return cls(list(buffer), **options)

    # request bodies and callbacks of the right kind

    def body(self, chunks: Iterable[bytes]) -> Any:
        """An iterator (sync) / async iterator (async) over `chunks`."""
        if not self.is_async:
            return iter(list(chunks))

        async def agen() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        return agen()

    def trace(
        self, function: Callable[[str, Dict[str, Any]], None], checkpoint: bool = False
    ) -> Any:
        """A trace callback of the right kind calling `function`; with `checkpoint`, it also
        lets other tasks/threads run."""
        if not self.is_async:

            def callback(name: str, info: Dict[str, Any]) -> None:
                function(name, info)
                if checkpoint:
                    time.sleep(0.0005)

            return callback

        async def acallback(name: str, info: Dict[str, Any]) -> None:
            function(name, info)
            if checkpoint:
                await anyio.sleep(0)

        return acallback

    def wrong_kind_trace(self) -> Any:
        """A trace callback of the *other* kind."""
        if self.is_async:
            return lambda name, info: None

        async def acallback(name: str, info: Dict[str, Any]) -> None:
            pass  # pragma: no cover

        return acallback

    # running things

    @staticmethod
    async def aw(value: Any) -> Any:
        """Await `value` if it is awaitable (network stream methods of either flavour)."""
        return await value if inspect.isawaitable(value) else value

    async def concurrently(self, *functions: Callable[[], Any]) -> None:
        """Run the coroutine functions concurrently: tasks (async) or threads (sync)."""
        if self.is_async:
            async with anyio.create_task_group() as tg:
                for function in functions:
                    tg.start_soon(function)
            return
        errors: List[BaseException] = []

        def run(function: Callable[[], Any]) -> None:
            try:
                run_unsuspended(function())
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(f,)) for f in functions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        if errors:
            raise errors[0]


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def anyio_backend(flavour: str) -> str:
    # The sync flavour's coroutines never suspend; asyncio merely hosts them.
    return "asyncio" if flavour == "sync" else flavour


@pytest.fixture
def api(flavour: str) -> API:
    return API(flavour)


def origin(url: str = "https://example.com:443") -> httpcore.Origin:
    scheme, rest = url.split("://")
    host, port = rest.split(":")
    return httpcore.Origin(scheme.encode(), host.encode(), int(port))


def open_descriptors() -> Set[str]:
    """This process's open descriptors, each with what it points to (Linux): compared by that,
    not counted, since other tests' servers may still be closing theirs in other threads."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            pass
    return found


@contextlib.contextmanager
def left_to_the_collector() -> Iterator[List[str]]:
    """Run the body with the garbage collector disabled (a socket left unclosed stays open, and
    is seen open), then collect: what was left to the collector (`ResourceWarning`s,
    unraisable exceptions) is appended to the list yielded, on exit."""
    found: List[str] = []
    gc.collect()
    unraisable: List[Any] = []
    old_hook = sys.unraisablehook
    gc.disable()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            sys.unraisablehook = unraisable.append
            try:
                yield found
                gc.enable()
                gc.collect()
            finally:
                sys.unraisablehook = old_hook
    finally:
        gc.enable()
    found += [
        f"ResourceWarning: {w.message}" for w in caught if issubclass(w.category, ResourceWarning)
    ]
    found += [f"unraisable: {u.exc_value!r}" for u in unraisable]
