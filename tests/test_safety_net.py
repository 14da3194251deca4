"""Keep-alive decisions against a real server, through the public API only.

Each test here was checked against a one-line defect that left the rest of the suite green
(issue 9): an HTTP/1.0 response with a Content-Length kept alive; ``Connection: close`` ignored
when h11 (not the fast path) parsed the response head; the pool's periodic sweep never
expiring idle connections; a 502 answer to CONNECT. The server (tests/servers/responder.py)
never hangs up on its own, so only the client's decision closes a connection, and the server
sees that close.

Which heads take the fast path is an implementation detail; the heads marked "h11" below are
ones the fast path declines today (an interim response first, an obsolete line folding, a
repeated Content-Length): test_simple_head.py checks that they are declined.
"""

from __future__ import annotations

import socket
from typing import Any, Callable, List

import anyio
import helpers
import pytest
from servers import RawServer, Responder

import httpcore

pytestmark = pytest.mark.anyio

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

RawFactory = Callable[..., RawServer]

BODY = b"\r\n\r\nok"

# (method, response) pairs after which the client must close the connection.
MUST_CLOSE = {
    "http10-fast": (b"GET", b"HTTP/1.0 200 OK\r\nContent-Length: 2" + BODY),
    "http10-h11-interim": (
        b"GET",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nContent-Length: 2" + BODY,
    ),
    "http10-h11-folded": (b"GET", b"HTTP/1.0 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2" + BODY),
    "http10-h11-repeated-length": (
        b"GET",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nContent-Length: 2" + BODY,
    ),
    "http10-head": (b"HEAD", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n"),
    "close-fast": (b"GET", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2" + BODY),
    "close-h11-interim": (
        b"GET",
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2" + BODY,
    ),
    "close-h11-folded": (
        b"GET",
        b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nConnection: Close\r\nContent-Length: 2" + BODY,
    ),
    "close-h11-repeated-length": (
        b"GET",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nconnection: keep-alive, close\r\n"
        b"Content-Length: 2" + BODY,
    ),
    "close-h11-chunked": (
        b"GET",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
    ),
    "close-head": (b"HEAD", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n"),
}

# The same shapes in HTTP/1.1 without `Connection: close`: the connection is reused.
KEEP_ALIVE = {
    "fast": (b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2" + BODY),
    "h11-interim": (
        b"GET",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2" + BODY,
    ),
    "h11-folded": (b"GET", b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2" + BODY),
    "h11-repeated-length": (
        b"GET",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2" + BODY,
    ),
    "h11-chunked": (
        b"GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ),
    "head": (b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"),
    # Lines ended by LF alone: h11 takes the head, and nothing more is coming to wait for.
    "h11-bare-lf": (b"GET", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
}


async def wait_closed(responder: Responder, count: int) -> bool:
    """Whether the server saw ``count`` connections closed by the client (within 5 s)."""
    return await anyio.to_thread.run_sync(responder.wait_closed, count)  # type: ignore[no-any-return]


def expected_body(method: bytes) -> bytes:
    return b"" if method == b"HEAD" else b"ok"


@pytest.mark.parametrize(("method", "response"), MUST_CLOSE.values(), ids=list(MUST_CLOSE))
async def test_pool_closes_the_connection_after_the_response(
    api: Any, raw_server: RawFactory, method: bytes, response: bytes
) -> None:
    responder = Responder([response])
    srv = raw_server(responder)
    async with api.ConnectionPool() as pool:
        reply = await pool.request(method, srv.url + "/")
        assert (reply.status, reply.content) == (200, expected_body(method))
        assert pool.connections == []
        assert await wait_closed(responder, 1)
        # The next request opens a new connection.
        reply = await pool.request(method, srv.url + "/")
        assert reply.status == 200
    assert srv.connections == 2
    assert responder.requests == 2


@pytest.mark.parametrize(("method", "response"), MUST_CLOSE.values(), ids=list(MUST_CLOSE))
async def test_connection_closes_after_the_response(
    api: Any, raw_server: RawFactory, method: bytes, response: bytes
) -> None:
    responder = Responder([response])
    srv = raw_server(responder)
    origin = helpers.origin(srv.url)
    async with api.HTTPConnection(origin) as conn:
        async with conn.stream(method, srv.url + "/") as reply:
            assert await reply.aread() == expected_body(method)
            assert not conn.is_closed()
        assert conn.is_closed()
        assert not conn.is_available()
        assert await wait_closed(responder, 1)


@pytest.mark.parametrize(("method", "response"), KEEP_ALIVE.values(), ids=list(KEEP_ALIVE))
async def test_keep_alive_response_reuses_the_connection(
    api: Any, raw_server: RawFactory, method: bytes, response: bytes
) -> None:
    responder = Responder([response])
    srv = raw_server(responder)
    async with api.ConnectionPool() as pool:
        for _ in range(3):
            # A client waiting for more of a whole response fails, rather than hangs.
            reply = await pool.request(method, srv.url + "/", extensions={"timeout": {"read": 10}})
            assert (reply.status, reply.content) == (200, expected_body(method))
            assert len(pool.connections) == 1
            assert pool.connections[0].is_idle()
    assert srv.connections == 1
    assert responder.requests == 3
    # Leaving the pool closed the connection.
    assert await wait_closed(responder, 1)


@pytest.mark.parametrize(("method", "response"), KEEP_ALIVE.values(), ids=list(KEEP_ALIVE))
async def test_connection_close_request_header_closes(
    api: Any, raw_server: RawFactory, method: bytes, response: bytes
) -> None:
    """The request said `Connection: close`: the connection ends whatever the response said."""
    responder = Responder([response])
    srv = raw_server(responder)
    async with api.ConnectionPool() as pool:
        reply = await pool.request(method, srv.url + "/", headers={"Connection": "close"})
        assert (reply.status, reply.content) == (200, expected_body(method))
        assert pool.connections == []
        assert await wait_closed(responder, 1)


# -- keep-alive expiry ------------------------------------------------------------------------

EXPIRY = 0.25


async def sleep_past(seconds: float) -> None:
    """Let at least ``seconds`` pass on the monotonic clock the pool reads."""
    deadline = anyio.current_time() + seconds
    while anyio.current_time() < deadline:
        await anyio.sleep(deadline - anyio.current_time())


async def test_idle_connection_is_closed_after_keepalive_expiry(
    api: Any, raw_server: RawFactory
) -> None:
    """An idle connection to origin A is closed once it expired, by the next request even when
    that request goes to origin B (the pool's sweep, not a lookup for A)."""
    responder_a, responder_b = Responder(), Responder()
    srv_a, srv_b = raw_server(responder_a), raw_server(responder_b)
    async with api.ConnectionPool(keepalive_expiry=EXPIRY) as pool:
        assert (await pool.request("GET", srv_a.url + "/")).content == b"ok"
        assert [c.is_idle() for c in pool.connections] == [True]
        await sleep_past(EXPIRY * 1.5)
        async with pool.stream("GET", srv_b.url + "/") as response:
            # Connection A is gone before B's response is even read.
            assert len(pool.connections) == 1
            assert pool.connections[0].can_handle_request(helpers.origin(srv_b.url))
            assert await response.aread() == b"ok"
        assert await wait_closed(responder_a, 1)
        assert responder_b.closed == 0
    assert srv_a.connections == srv_b.connections == 1


async def test_idle_connection_within_keepalive_expiry_is_reused(
    api: Any, raw_server: RawFactory
) -> None:
    responder = Responder()
    srv = raw_server(responder)
    async with api.ConnectionPool(keepalive_expiry=60.0) as pool:
        for _ in range(3):
            assert (await pool.request("GET", srv.url + "/")).content == b"ok"
        assert len(pool.connections) == 1
    assert srv.connections == 1


async def test_keepalive_expiry_zero_closes_after_each_response(
    api: Any, raw_server: RawFactory
) -> None:
    responder = Responder()
    srv = raw_server(responder)
    async with api.ConnectionPool(keepalive_expiry=0) as pool:
        for count in (1, 2):
            assert (await pool.request("GET", srv.url + "/")).content == b"ok"
            assert pool.connections == []
            assert await wait_closed(responder, count)
    assert srv.connections == 2


# -- max_keepalive_connections under concurrency ------------------------------------------------


@pytest.mark.parametrize(("limit", "concurrent"), [(2, 5), (0, 3), (4, 4)])
async def test_max_keepalive_connections_with_concurrent_requests(
    api: Any, raw_server: RawFactory, limit: int, concurrent: int
) -> None:
    """`concurrent` requests at once open exactly `concurrent` connections (the server holds
    every answer until all are in); afterwards exactly `limit` stay idle, the rest are closed."""
    responder = Responder(answer_after=concurrent)
    srv = raw_server(responder)
    async with api.ConnectionPool(max_keepalive_connections=limit) as pool:
        peak: List[int] = []

        async def one() -> None:
            async with pool.stream("GET", srv.url + "/") as response:
                peak.append(len(pool.connections))
                assert await response.aread() == b"ok"

        await api.concurrently(*[one for _ in range(concurrent)])
        assert srv.connections == concurrent
        assert max(peak) == concurrent
        assert len(pool.connections) == limit
        assert all(c.is_idle() for c in pool.connections)
        assert await wait_closed(responder, concurrent - limit)
        assert responder.closed == concurrent - limit

        # The idle ones are reused, one after the other.
        for _ in range(3):
            assert (await pool.request("GET", srv.url + "/")).content == b"ok"
        assert srv.connections == concurrent + (3 if limit == 0 else 0)
        assert len(pool.connections) == limit


# -- a proxy refusing CONNECT -----------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # type: ignore[no-any-return]


async def test_connect_answered_502_by_a_real_proxy(api: Any, http_proxy: Any) -> None:
    """The proxy cannot reach the target: ProxyError with API.md §5.4's message, pool empty."""
    async with api.HTTPProxy(proxy_url=http_proxy.url) as proxy:
        with pytest.raises(httpcore.ProxyError) as info:
            await proxy.request("GET", f"https://127.0.0.1:{closed_port()}/")
        assert str(info.value) == "502 Bad Gateway"
        assert proxy.connections == []
        assert repr(proxy) == (
            f"<{api.name('HTTPProxy')} [Requests: 0 active, 0 queued | "
            "Connections: 0 active, 0 idle]>"
        )
    assert http_proxy.connects == 1


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", "502 Bad Gateway"),
        (b"HTTP/1.1 502 \r\nContent-Length: 3\r\n\r\nbad", "502 "),
        (b"HTTP/1.1 502 Bad \xe9Gateway\r\nContent-Length: 0\r\n\r\n", "502 Bad Gateway"),
        # Only 2xx opens a tunnel.
        (b"HTTP/1.1 300 Multiple Choices\r\nContent-Length: 0\r\n\r\n", "300 Multiple Choices"),
    ],
    ids=["reason", "empty-reason", "non-ascii-reason", "300"],
)
async def test_connect_answered_502_with_keep_alive(
    api: Any, raw_server: RawFactory, answer: bytes, message: str
) -> None:
    """The refusing proxy keeps its connection open: httpcore closes it all the same."""
    responder = Responder([answer])
    srv = raw_server(responder)
    async with api.HTTPProxy(proxy_url=srv.url) as proxy:
        with pytest.raises(httpcore.ProxyError) as info:
            await proxy.request("GET", "https://example.com/")
        assert str(info.value) == message
        assert proxy.connections == []
        assert await wait_closed(responder, 1)
        # And again, on a new connection.
        with pytest.raises(httpcore.ProxyError):
            await proxy.request("GET", "https://example.com/")
        assert proxy.connections == []
    assert srv.connections == 2
    assert [m.split(b"\r\n")[0] for m in srv.messages] == [b"CONNECT example.com:443 HTTP/1.1"] * 2
