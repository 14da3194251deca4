"""Cancellation safety of the async client (API.md §9 "Cancellation", issue 3).

A request is cancelled at each await point it can block in:

- ``connect``:   the backend's ``connect_tcp`` (a backend whose connect blocks until cancelled);
- ``tls``:       the TLS handshake (a TCP server that reads the ClientHello and never answers);
- ``write``:     writing a streamed request body (a server that never reads);
- ``write_bytes``: writing one large in-memory body in a single write (same server);
- ``headers``:   reading the response head (a server that reads the request and never answers);
- ``pool``:      waiting for a connection (``max_connections=1`` with the slot taken);
- ``body``:      streaming the response body (a server that sends part of it and stalls);
- ``retry``:     the backoff sleep between connect retries;
- ``proxy_connect``: waiting for the proxy's answer to CONNECT;
- ``proxy_tls``: the TLS handshake with the origin inside the CONNECT tunnel;

by each way of cancelling: asyncio task cancellation, ``asyncio.timeout`` (``asyncio.wait_for``
before 3.11, and ``wait_for`` on its own), anyio cancel scopes (``move_on_after`` and
``CancelScope.cancel()``) and trio cancel scopes (``move_on_after`` and ``CancelScope.cancel()``).

Afterwards the pool holds no request and no half-used connection (only IDLE connections are
left; an interrupted HTTP/1.1 connection is closed and removed), the socket of the interrupted
request has been closed (the server sees EOF), and the next request on the same pool succeeds.

Synchronisation is by events and bounded polling, never by sleeping for a guessed time. The
one exception is ``asyncio.wait_for``, whose deadline cannot be moved: its timeout is far longer
than reaching the await point takes on loopback, and the test asserts the point was reached.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from typing import Any, AsyncIterator, Callable, Iterable, List, Optional

import anyio
import pytest
import trio
from cancellers import ASYNC_STYLES, BOUND, Predicate, RequestFn, cancellers, poll

import httpcore
from httpcore import AsyncConnectionPool, AsyncNetworkBackend, AsyncNetworkStream

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
CONNECTED = b"HTTP/1.1 200 Connection established\r\n\r\n"
WAIT_FOR_TIMEOUT = 0.25  # only for asyncio.wait_for, whose deadline cannot be moved


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


CANCELLERS = cancellers(WAIT_FOR_TIMEOUT)
# Which styles apply under which event loop (selected here, never skipped at run time).
STYLES = ASYNC_STYLES
by_style = pytest.mark.parametrize(
    ("anyio_backend", "style"), STYLES, ids=[f"{b}-{s}" for b, s in STYLES]
)


# --------------------------------------------------------------------------------------------
# The servers: the first connection misbehaves as the scenario asks, later ones answer normally


def recv_head(sock: socket.socket, buffer: bytearray) -> bool:
    """Read up to the end of a request head (requests here have no body); False on EOF."""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            return False
        buffer += data
    del buffer[: buffer.index(b"\r\n\r\n") + 4]
    return True


def serve_ok(sock: socket.socket) -> None:
    """Answer every request on the connection with a small keep-alive response."""
    buffer = bytearray()
    while recv_head(sock, buffer):
        sock.sendall(OK)


class Scenario:
    """A `raw_server` handler. `reached` is set when the first connection reaches its stall,
    `eof` once the client has closed that connection; `release` lets a server that must not
    read (``write``) start draining after the cancellation."""

    def __init__(self, mode: str, tls_context: Optional[ssl.SSLContext] = None) -> None:
        self.mode = mode
        self.tls_context = tls_context
        self.reached = threading.Event()
        self.release = threading.Event()
        self.eof = threading.Event()
        self._first = True
        self._lock = threading.Lock()

    def __call__(self, sock: socket.socket, server: Any) -> None:
        with self._lock:
            first, self._first = self._first, False
        tunnel = self.mode.startswith("proxy_")
        if not first or self.mode in ("normal", "proxy_ok"):
            if tunnel:
                assert recv_head(sock, bytearray())
                sock.sendall(CONNECTED)
            if self.tls_context is None:
                serve_ok(sock)
            else:
                # wrap_socket detaches the plain socket the raw server closes.
                with self.tls_context.wrap_socket(sock, server_side=True) as tls:
                    serve_ok(tls)
            return
        if self.mode == "proxy_connect":
            assert recv_head(sock, bytearray())  # the CONNECT request; never answered
            self.reached.set()
        elif self.mode == "proxy_tls":
            assert recv_head(sock, bytearray())
            sock.sendall(CONNECTED)
            assert sock.recv(65536)  # the ClientHello to the origin; never answered
            self.reached.set()
        elif self.mode == "tls":
            assert sock.recv(65536)  # the ClientHello; never answered
            self.reached.set()
        elif self.mode == "headers":
            assert recv_head(sock, bytearray())
            self.reached.set()
        elif self.mode == "body":
            assert recv_head(sock, bytearray())
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        elif self.mode == "write_bytes":
            assert sock.recv(1024)  # the head has arrived; the rest is never read
            self.reached.set()
            assert self.release.wait(BOUND)
        elif self.mode == "write":
            assert self.release.wait(BOUND)
        self.drain_until_eof(sock)

    def drain_until_eof(self, sock: socket.socket) -> None:
        try:
            while sock.recv(1 << 20):
                pass
        except ConnectionResetError:
            pass
        self.eof.set()


@pytest.fixture
def server_tls_context(server_cert_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server_cert_file)
    return context


def real_backend(anyio_backend: str) -> AsyncNetworkBackend:
    return httpcore.TrioBackend() if anyio_backend == "trio" else httpcore.AnyIOBackend()


class StallingBackend(AsyncNetworkBackend):
    """Delegates to a real backend, except that the first `connect_tcp` (``connect``) or the
    first backoff `sleep` (``retry``, whose connects fail twice) blocks until cancelled."""

    def __init__(self, real: AsyncNetworkBackend, mode: str) -> None:
        self.real = real
        self.mode = mode
        self.reached = threading.Event()
        self.failures = 2 if mode == "retry" else 0

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: Optional[float] = None,
        local_address: Optional[str] = None,
        socket_options: Optional[Iterable[Any]] = None,
    ) -> AsyncNetworkStream:
        if self.mode == "connect" and not self.reached.is_set():
            self.reached.set()
            await anyio.sleep_forever()
        if self.failures:
            self.failures -= 1
            raise httpcore.ConnectError("[Errno 111] Connection refused")
        return await self.real.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        if self.mode == "retry" and seconds > 0 and not self.reached.is_set():
            self.reached.set()
            await anyio.sleep_forever()
        await self.real.sleep(seconds)


# --------------------------------------------------------------------------------------------
# Checks


def assert_clean(pool: AsyncConnectionPool, active: int = 0) -> None:
    assert repr(pool).startswith(
        f"<AsyncConnectionPool [Requests: {active} active, 0 queued | Connections: {active} active"
    ), repr(pool)
    if not active:
        assert all(c.is_idle() for c in pool.connections), pool.connections


async def assert_next_request_succeeds(pool: AsyncConnectionPool, url: str) -> None:
    response = await pool.request("GET", url)
    assert (response.status, response.content) == (200, b"ok")
    assert_clean(pool)
    assert len(pool.connections) == 1


# --------------------------------------------------------------------------------------------
# The tests


async def run_scenario(
    point: str,
    style: str,
    anyio_backend: str,
    raw_server: Callable[..., Any],
    client_ssl_context: ssl.SSLContext,
    server_tls_context: ssl.SSLContext,
) -> None:
    cancel = CANCELLERS[style]
    stalls_on_server = point in SERVER_POINTS
    uses_tls = point in ("tls", "proxy_connect", "proxy_tls")
    scenario = Scenario(
        point if stalls_on_server else "normal",
        tls_context=server_tls_context if uses_tls else None,
    )
    server = raw_server(scenario)
    url = server.url.replace("http://", "https://") if uses_tls else server.url
    url += "/"
    reached: Predicate = scenario.reached.is_set
    kwargs: dict[str, Any] = {}
    if uses_tls:
        kwargs["ssl_context"] = client_ssl_context
    if point.startswith("proxy_"):
        # The raw server is the proxy; the tunnel's TLS (to "the origin") ends in it too.
        kwargs["proxy"] = httpcore.Proxy(server.url)
    if point in ("connect", "retry"):
        backend = StallingBackend(real_backend(anyio_backend), point)
        kwargs["network_backend"] = backend
        kwargs["retries"] = 3
        reached = backend.reached.is_set
    if point == "pool":
        kwargs["max_connections"] = 1

    async with AsyncConnectionPool(**kwargs) as pool:
        request: RequestFn = lambda: pool.request("GET", url)  # noqa: E731

        if point == "write":
            chunks_sent = [0]

            async def endless_body() -> AsyncIterator[bytes]:
                chunk = b"x" * 16384
                while True:
                    yield chunk
                    chunks_sent[0] += 1

            request = lambda: pool.request("POST", url, content=endless_body())  # noqa: E731
            # The generator never suspends: once it has been asked for more, the request is
            # suspended in a write (and stays there, as the server does not read).
            reached = lambda: chunks_sent[0] >= 2  # noqa: E731
        elif point == "write_bytes":
            big = b"x" * (32 * 1024 * 1024)  # more than the loopback socket buffers hold
            request = lambda: pool.request("POST", url, content=big)  # noqa: E731
        elif point == "body":
            got_chunk = threading.Event()

            async def stream_body() -> None:
                async with pool.stream("GET", url) as response:
                    async for chunk in response.aiter_stream():
                        assert chunk == b"x" * 10
                        got_chunk.set()
                raise AssertionError("the body finished")  # pragma: no cover

            request = stream_body
            reached = got_chunk.is_set

        if point == "pool":
            async with pool.stream("GET", url) as holder:
                reached = lambda: repr(pool).startswith(  # noqa: E731
                    "<AsyncConnectionPool [Requests: 1 active, 1 queued"
                )
                await cancel(request, reached)
                assert_clean(pool, active=1)
                assert await holder.aread() == b"ok"
        else:
            await cancel(request, reached)

        scenario.release.set()
        assert_clean(pool)
        if stalls_on_server:
            # The interrupted connection was closed: the server sees EOF.
            await poll(scenario.eof.is_set, "the client to close the interrupted connection")
            assert pool.connections == []
        await assert_next_request_succeeds(pool, url)


SERVER_POINTS = ["tls", "write", "write_bytes", "headers", "body", "proxy_connect", "proxy_tls"]
POINTS = ["connect", "retry", "pool", *SERVER_POINTS]


@pytest.mark.anyio
@pytest.mark.parametrize("point", POINTS)
@by_style
async def test_cancelled_request_leaves_pool_clean(
    point: str,
    style: str,
    anyio_backend: str,
    raw_server: Callable[..., Any],
    client_ssl_context: ssl.SSLContext,
    server_tls_context: ssl.SSLContext,
) -> None:
    await run_scenario(
        point, style, anyio_backend, raw_server, client_ssl_context, server_tls_context
    )


# --------------------------------------------------------------------------------------------
# Races around the hand-over of a connection


@pytest.mark.anyio
@pytest.mark.parametrize("read_holder_body", [True, False], ids=["reused", "replaced"])
@pytest.mark.parametrize("route", ["direct", "tunnel"])
async def test_waiter_cancelled_right_after_being_handed_a_connection(
    anyio_backend: str,
    raw_server: Callable[..., Any],
    read_holder_body: bool,
    route: str,
    client_ssl_context: ssl.SSLContext,
    server_tls_context: ssl.SSLContext,
) -> None:
    """The waiting request is woken with a connection and cancelled before it runs.

    ``reused``: the holder read its body, so its idle connection is handed over; ``replaced``:
    the holder's connection is closed, so a new one is created for the waiter. Either way the
    connection must not stay reserved for the cancelled request. ``tunnel``: the same through
    a CONNECT proxy (the raw server is the proxy and, inside the tunnel, the TLS origin).
    """
    if route == "direct":
        server = raw_server(Scenario("normal"))
        url = server.url + "/"
        kwargs: dict[str, Any] = {}
    else:
        server = raw_server(Scenario("proxy_ok", tls_context=server_tls_context))
        url = server.url.replace("http://", "https://") + "/"
        kwargs = {"proxy": httpcore.Proxy(server.url), "ssl_context": client_ssl_context}
    async with AsyncConnectionPool(max_connections=1, **kwargs) as pool:
        waiter_done = threading.Event()
        queued = lambda: repr(pool).startswith(  # noqa: E731
            "<AsyncConnectionPool [Requests: 1 active, 1 queued"
        )

        async def waiter() -> None:
            try:
                await pool.request("GET", url)
            finally:
                waiter_done.set()

        if anyio_backend == "asyncio":
            async with pool.stream("GET", url) as holder:
                task = asyncio.ensure_future(waiter())
                await poll(queued, "the waiter to queue")
                if read_holder_body:
                    await holder.aread()
            # No await between the hand-over (in the holder's close) and the cancellation.
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            async with trio.open_nursery() as nursery:
                scope = trio.CancelScope()

                async def cancellable_waiter() -> None:
                    with scope:
                        await waiter()

                async with pool.stream("GET", url) as holder:
                    nursery.start_soon(cancellable_waiter)
                    await poll(queued, "the waiter to queue")
                    if read_holder_body:
                        await holder.aread()
                scope.cancel()
            assert scope.cancelled_caught
        assert waiter_done.is_set()
        assert_clean(pool)
        await assert_next_request_succeeds(pool, url)


# --------------------------------------------------------------------------------------------
# Many requests cancelled at assorted moments


@pytest.mark.anyio
async def test_many_requests_cancelled_at_assorted_moments(anyio_backend: str, server: Any) -> None:
    """Requests sharing a small pool, each with its own deadline (some expire while waiting
    for a connection, some while connecting, some while reading). Whatever the timing, the
    pool ends with no request and only idle connections, and keeps working."""
    finished: List[str] = []
    async with AsyncConnectionPool(max_connections=4) as pool:

        async def one(index: int) -> None:
            with anyio.move_on_after(index * 0.0007) as scope:
                async with pool.stream("GET", f"{server.url}/stream/20/1000") as response:
                    async for _ in response.aiter_stream():
                        pass
            finished.append("cancelled" if scope.cancelled_caught else "completed")

        async with anyio.create_task_group() as tg:
            for index in range(40):
                tg.start_soon(one, index)

        assert len(finished) == 40
        assert "cancelled" in finished
        assert_clean(pool)
        response = await pool.request("GET", f"{server.url}/")
        assert response.status == 200
        assert_clean(pool)
