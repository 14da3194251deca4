"""Focused, deterministic regression tests for the pool defects the HTTP/1.1 pool chaos test
(`test_pool_chaos.py`) found."""

from __future__ import annotations

import os
import socket
import sys
import threading
from typing import Any, AsyncIterator, Callable, Dict, Iterable, Iterator, List, Optional

import anyio
import helpers
import pytest
from helpers import left_to_the_collector
from pool_chaos_world import CLOSE_DEADLINE, TIMEOUTS, TraceFailed
from servers import RawServer, Responder
from servers.raw import sockets_to
from test_pool_chaos import RawFactory, idle_only, wait_until

import httpcore
from httpcore import SOCKET_OPTION

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd") or not sys.platform.startswith("linux"),
    reason="counts sockets through /proc (Linux)",
)

# A trace callback that fails (raises, or is cancelled while it awaits) on
# "connection.connect_tcp.complete": the connected stream, which that step returned, is dropped
# without being closed (httpcore/base/_trace.py `_traced` loses the step's value when emitting
# ".complete" fails; `HTTPConnectionCore._handle` then only marks the connection failed). The
# socket is left to the garbage collector; under asyncio it even stays open after the pool is
# closed (its transport is still registered with the event loop). Found as
# `test_pool_chaos[asyncio-2]` (request s2-r12: a traced GET with a checkpoint in its callback,
# cancelled a few ticks after it started).


async def _no_socket_left(port: int) -> List[str]:
    if await wait_until(lambda: not sockets_to(port), CLOSE_DEADLINE):
        return []
    return [f"client sockets left open: {sockets_to(port)}"]


@pytest.mark.anyio
async def test_connect_complete_trace_raising_closes_the_socket(
    api: helpers.API, raw_server: RawFactory
) -> None:
    server = raw_server(Responder())

    def fail(name: str, info: Dict[str, Any]) -> None:
        if name == "connection.connect_tcp.complete":
            raise TraceFailed()

    with left_to_the_collector() as problems:
        async with api.ConnectionPool() as pool:
            with pytest.raises(TraceFailed):
                extensions = {"trace": api.trace(fail), "timeout": TIMEOUTS}
                await pool.request("GET", server.url + "/", extensions=extensions)
            assert pool.connections == []
        problems += await _no_socket_left(server.port)
    assert problems == []


@pytest.mark.anyio
@pytest.mark.parametrize("flavour", ["asyncio", "trio"])
async def test_connect_complete_trace_cancelled_closes_the_socket(
    api: helpers.API, raw_server: RawFactory
) -> None:
    server = raw_server(Responder())
    with left_to_the_collector() as problems:
        async with api.ConnectionPool() as pool:
            with anyio.CancelScope() as scope:

                async def trace(name: str, info: Dict[str, Any]) -> None:
                    if name == "connection.connect_tcp.complete":
                        scope.cancel()
                        await anyio.sleep(0)

                extensions = {"trace": trace, "timeout": TIMEOUTS}
                await pool.request("GET", server.url + "/", extensions=extensions)
            assert scope.cancelled_caught
            assert pool.connections == []
        problems += await _no_socket_left(server.port)
    assert problems == []


# A trace callback raising on "http11.receive_response_body.complete" (the body is complete):
# the HTTP/1.1 connection closes the response twice. `_receive_body` (httpcore/base/_http11.py)
# closes it on the error, which leaves the connection IDLE; the error reaches the pool's
# `_pool_body`, which closes the response's stream again (`inner.closing()`: the stream's close
# callback was never consumed) and `HTTP11Core._response_closed` runs a second time. Meanwhile
# the IDLE connection can be handed to another request (`PoolState._find_available` checks
# `reserved`, not `using`); the second close then reads *that* request's `ResponseState`,
# finds it unfinished and closes the connection under it: it fails (ReadError "Bad file
# descriptor" / "Connection closed" / ClosedResourceError) though the server answered it, or is
# sent twice when replayable. Found as sync seed 1246 (a PUT sent twice, the first copy cut
# mid-body), trio seed 1142 (a POST answered by the server ended in ReadError), asyncio seed
# 1278 (a GET answered, then sent again).


@pytest.mark.anyio
async def test_a_late_second_response_close_leaves_the_next_request_alone(
    api: helpers.API, raw_server: RawFactory
) -> None:
    b_arrived, a_done, start_b = threading.Event(), threading.Event(), threading.Event()

    def handler(conn: socket.socket, server: RawServer) -> None:
        server.read_request(conn)  # A
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        b_arrived.set()  # B's head: B is in flight, its body not all sent
        while not data.endswith(b"\r\n0\r\n\r\n"):
            more = conn.recv(65536)
            if not more:
                return
            data += more
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        server.read_request(conn)

    srv = raw_server(handler)

    async def until(event: threading.Event) -> None:
        if api.is_async:
            assert await wait_until(event.is_set, CLOSE_DEADLINE)
        else:
            assert event.wait(CLOSE_DEADLINE)

    async def on_event(name: str, info: Dict[str, Any]) -> None:
        if name == "http11.receive_response_body.complete":
            raise TraceFailed(name)
        if name == "http11.response_closed.complete" and not start_b.is_set():
            # A's response was closed once: its connection is IDLE, A not yet released.
            start_b.set()
            await until(b_arrived)

    def sync_on_event(name: str, info: Dict[str, Any]) -> None:
        helpers.run_unsuspended(on_event(name, info))

    def sync_body() -> Iterator[bytes]:
        yield b"da"
        assert a_done.wait(CLOSE_DEADLINE)  # the rest is sent after A's second close
        yield b"ta"

    async def async_body() -> AsyncIterator[bytes]:
        yield b"da"
        await until(a_done)
        yield b"ta"

    b_result: List[Any] = []
    async with api.ConnectionPool(max_connections=1) as pool:

        async def a() -> None:
            trace = on_event if api.is_async else sync_on_event
            try:
                with pytest.raises(TraceFailed):
                    await pool.request("GET", srv.url + "/a", extensions={"trace": trace})
            finally:
                a_done.set()

        async def b() -> None:
            await until(start_b)
            body = async_body() if api.is_async else sync_body()
            extensions = {"timeout": TIMEOUTS}
            try:
                response = await pool.request(
                    "POST", srv.url + "/b", content=body, extensions=extensions
                )
                b_result.append((response.status, response.content))
            except httpcore.NetworkError as exc:
                b_result.append(exc)

        await api.concurrently(a, b)
    assert b_result == [(200, b"ok")]


# Cancelled (asyncio) right after its response arrived, while the pool closes connections it
# evicted for the queued requests: the request is never released and its connection stays
# ACTIVE for good. `PoolCore._handle` (httpcore/base/_pool.py) runs the assignment and
# `_close_connections()` for the queue *after* the `try/except BaseException` that releases a
# failed request; under asyncio `_async.shielded()` finishes the close, then re-raises the
# cancellation there. (Under trio the shield defers it to the caller's next checkpoint, and the
# response is closed as usual.) Found as asyncio seed 1180: the pool kept
# "Requests: 1 active | Connections: 1 active" after every request had ended.


class _HookedStream(httpcore.AsyncNetworkStream):
    """A real stream whose `aclose()` first calls a hook (once)."""

    def __init__(self, inner: httpcore.AsyncNetworkStream, hook: Callable[[], None]) -> None:
        self._inner = inner
        self._hook: Optional[Callable[[], None]] = hook

    async def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        hook, self._hook = self._hook, None
        if hook is not None:
            hook()
            await anyio.sleep(0)
        await self._inner.aclose()

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _FirstCloseHookBackend(httpcore.AsyncNetworkBackend):
    """The default backend, whose first connection calls `hook` when it is closed."""

    def __init__(self, hook: Callable[[], None]) -> None:
        from httpcore.aio._auto import AutoBackend

        self._real = AutoBackend()
        self._hook: Optional[Callable[[], None]] = hook

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: Optional[float] = None,
        local_address: Optional[str] = None,
        socket_options: Optional[Iterable[SOCKET_OPTION]] = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._real.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        hook, self._hook = self._hook, None
        return stream if hook is None else _HookedStream(stream, hook)

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


@pytest.mark.anyio
@pytest.mark.parametrize("flavour", ["asyncio", "trio"])
async def test_a_request_cancelled_while_the_pool_closes_for_the_queue_is_released(
    raw_server: RawFactory,
) -> None:
    arrived = {path: threading.Event() for path in ("/a", "/r", "/q")}
    window, queued = threading.Event(), threading.Event()

    def handler(conn: socket.socket, server: RawServer) -> None:
        while True:
            message = server.read_request(conn)
            if message is None:
                return
            path = message.split(b" ")[1].decode()
            arrived[path].set()
            if path == "/a":
                queued.wait(5)  # A is answered once Q waits for a connection
            if path == "/r":
                window.wait(5)  # R is answered while A's connection is IDLE, A unreleased
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    srv = raw_server(handler)
    r_scope = anyio.CancelScope()
    r_done = threading.Event()
    # Closing A's connection (evicted by R's assignment, for Q) cancels R.
    backend = _FirstCloseHookBackend(r_scope.cancel)
    async with httpcore.AsyncConnectionPool(max_connections=2, network_backend=backend) as pool:

        async def a() -> None:
            async def trace(name: str, info: Dict[str, Any]) -> None:
                if name == "http11.response_closed.complete" and not window.is_set():
                    window.set()
                    assert await wait_until(r_done.is_set, CLOSE_DEADLINE)

            response = await pool.request("GET", srv.url + "/a", extensions={"trace": trace})
            assert response.status == 200

        async def r() -> None:
            assert await wait_until(arrived["/a"].is_set, CLOSE_DEADLINE)
            with r_scope:
                await pool.request("GET", srv.url + "/r")
            r_done.set()

        async def q() -> None:
            assert await wait_until(arrived["/r"].is_set, CLOSE_DEADLINE)
            # Another origin (same server): it cannot take A's connection, only evict it.
            response = await pool.request("GET", f"http://localhost:{srv.port}/q")
            assert response.status == 200

        async def watch() -> None:
            assert await wait_until(lambda: "1 queued" in repr(pool), CLOSE_DEADLINE)
            queued.set()

        async with anyio.create_task_group() as tg:
            for task in (a, r, q, watch):
                tg.start_soon(task)
        assert idle_only(pool) == []
