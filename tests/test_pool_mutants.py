"""Pool behaviours that mutation testing (scripts/mutation) found untested."""

from __future__ import annotations

import contextlib
import ssl
import time
from typing import Any, Callable, List

import anyio
import helpers
import pytest
from servers import RawServer, Responder

import httpcore

pytestmark = pytest.mark.anyio

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, world!"


class CloseFailed(Exception):
    pass


class SyncFailingClose(helpers.SyncRecordingStream):
    def close(self) -> None:
        super().close()
        raise CloseFailed("close failed")


class AsyncFailingClose(helpers.AsyncRecordingStream):
    async def aclose(self) -> None:
        await super().aclose()
        raise CloseFailed("close failed")


async def test_a_failing_close_is_raised_after_closing_every_connection(api: Any) -> None:
    backend = api.backend([HELLO])
    backend.stream_class = AsyncFailingClose if api.is_async else SyncFailingClose
    pool = api.ConnectionPool(network_backend=backend)
    for url in ("https://a.test/", "https://b.test/", "https://c.test/"):
        assert (await pool.request("GET", url)).status == 200
    assert len(pool.connections) == 3
    with pytest.raises(CloseFailed):
        await pool.aclose()
    # Every connection was closed, the first failure did not stop the others.
    assert [stream.closed for stream in backend.streams] == [True, True, True]
    assert pool.connections == []


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_requests_queued_behind_a_tunnel_share_it_once_it_is_http2(
    anyio_backend: str, http_proxy: Any, tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    """max_connections=1: the second request queues while the tunnel is being set up (unknown
    protocol: not available); once the first request runs on it over HTTP/2, the second is
    handed the same connection at once, not when the first response ends."""
    second_done = anyio.Event()
    results: List[bytes] = []
    async with httpcore.AsyncHTTPProxy(
        proxy_url=http_proxy.url, ssl_context=client_ssl_context, http2=True, max_connections=1
    ) as proxy:

        async def first() -> None:
            async with proxy.stream("GET", tls_server.url + "/") as response:
                assert response.extensions["http_version"] == b"HTTP/2"
                with anyio.fail_after(5):
                    await second_done.wait()
                results.append(await response.aread())

        async def second() -> None:
            response = await proxy.request(
                "GET", tls_server.url + "/", extensions={"timeout": {"pool": 5}}
            )
            results.append(response.content)
            second_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            tg.start_soon(second)
        assert results == [b"Hello, world!"] * 2
        assert len(proxy.connections) == 1
    assert http_proxy.connects == 1


class _FakeState:
    """A connection of the user's own (`create_connection` overridden): always ready."""

    def __init__(self, origin: httpcore.Origin) -> None:
        self.origin = origin
        self.closed = False
        self.requests = 0

    def info(self) -> str:
        return "fake"

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return origin == self.origin

    def is_available(self) -> bool:
        return not self.closed

    def has_expired(self) -> bool:
        return False

    def is_idle(self) -> bool:
        return not self.closed

    def is_closed(self) -> bool:
        return self.closed


class FakeConnection(_FakeState, httpcore.ConnectionInterface):
    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        self.requests += 1
        return httpcore.Response(200, content=iter([b"a", b"b", b"c"]))

    def close(self) -> None:
        self.closed = True


class AsyncFakeConnection(_FakeState, httpcore.AsyncConnectionInterface):
    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        self.requests += 1

        async def chunks() -> Any:
            for chunk in (b"a", b"b", b"c"):
                yield chunk

        return httpcore.Response(200, content=chunks())

    async def aclose(self) -> None:
        self.closed = True


async def test_a_connection_of_ones_own_streams_its_body_through_the_pool(api: Any) -> None:
    created: List[Any] = []

    class Pool(api.cls("ConnectionPool")):  # type: ignore[misc]
        def create_connection(self, origin: httpcore.Origin) -> Any:
            connection = (AsyncFakeConnection if api.is_async else FakeConnection)(origin)
            created.append(connection)
            return connection

    pool = Pool() if api.is_async else helpers.SyncClient(Pool())
    async with pool:
        async with pool.stream("GET", "https://example.com/") as response:
            assert [chunk async for chunk in response.aiter_stream()] == [b"a", b"b", b"c"]
        assert (await pool.request("GET", "https://example.com/")).content == b"abc"
        assert [c.requests for c in created] == [2]
    assert created[0].closed


async def test_concurrent_requests_on_a_fresh_http2_pool_share_one_connection(
    api: Any, tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    """The requests arriving while the first connection is still connecting are promised it
    (it may turn out HTTP/2), rather than opening connections of their own."""
    versions: List[bytes] = []
    async with api.ConnectionPool(ssl_context=client_ssl_context, http2=True) as pool:

        async def one() -> None:
            response = await pool.request("GET", tls_server.url + "/")
            versions.append(response.extensions["http_version"])

        await api.concurrently(one, one, one)
        assert versions == [b"HTTP/2"] * 3
        assert len(pool.connections) == 1


async def test_an_active_http2_connection_is_shared_past_other_origins_idle_ones(
    api: Any, tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    async with api.ConnectionPool(ssl_context=client_ssl_context, http2=True) as pool:
        # An idle connection to another origin (localhost) comes first in the pool.
        assert (await pool.request("GET", tls_server.localhost_url + "/")).status == 200
        async with pool.stream("GET", tls_server.url + "/") as first:
            second = await pool.request("GET", tls_server.url + "/")
            assert second.extensions["http_version"] == b"HTTP/2"
            assert len(pool.connections) == 2
            assert await first.aread() == b"Hello, world!"
        assert len(pool.connections) == 2


async def test_the_default_pool_opens_at_most_ten_connections(
    api: Any, raw_server: Callable[..., RawServer]
) -> None:
    """11 concurrent requests, the server answering none before 10 connections are in: 10
    connections, the 11th request waits and reuses one."""
    responder = Responder(answer_after=10)
    srv = raw_server(responder)
    async with api.ConnectionPool() as pool:

        async def one() -> None:
            assert (await pool.request("GET", srv.url + "/")).content == b"ok"

        await api.concurrently(*[one for _ in range(11)])
        assert len(pool.connections) == 10
    assert srv.connections == 10
    assert responder.requests == 11


async def test_the_default_pool_speaks_http11_even_where_http2_is_offered(
    api: Any, tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    async with api.ConnectionPool(ssl_context=client_ssl_context) as pool:
        response = await pool.request("GET", tls_server.url + "/")
        assert response.extensions["http_version"] == b"HTTP/1.1"


@pytest.mark.parametrize("limit", [2, 3])
async def test_max_keepalive_keeps_idle_connections_while_others_are_active(
    api: Any, raw_server: Callable[..., RawServer], limit: int
) -> None:
    """`limit + 1` connections, closed one by one: the first `limit` to go idle stay (the
    limit counts idle connections only); the one over the limit is closed when it goes idle."""
    responder = Responder()
    srv = raw_server(responder)
    count = limit + 1
    async with api.ConnectionPool(max_keepalive_connections=limit) as pool:
        async with contextlib.AsyncExitStack() as stack:
            streams = [
                await stack.enter_async_context(pool.stream("GET", srv.url + "/"))
                for _ in range(count)
            ]
            assert len(pool.connections) == count
            for response in streams:
                await response.aread()
        # The stack closed the responses last-opened first.
        assert [c.is_idle() for c in pool.connections] == [True] * limit
        assert responder.wait_closed(1)
        assert responder.closed == 1
    assert srv.connections == count


async def test_max_keepalive_counts_only_idle_connections_step_by_step(
    api: Any, raw_server: Callable[..., RawServer]
) -> None:
    srv = raw_server(Responder())
    async with api.ConnectionPool(max_keepalive_connections=2) as pool:
        async with pool.stream("GET", srv.url + "/") as first:
            async with pool.stream("GET", srv.url + "/") as second:
                async with pool.stream("GET", srv.url + "/") as third:
                    await first.aread()
                    await second.aread()
                    await third.aread()
                assert [c.is_idle() for c in pool.connections] == [False, False, True]
            assert [c.is_idle() for c in pool.connections] == [False, True, True]
        assert [c.is_idle() for c in pool.connections] == [True, True]


async def test_the_sweep_keeps_the_connections_after_an_expired_one(
    api: Any, raw_server: Callable[..., RawServer]
) -> None:
    """A expired while C is busy: the sweep closes A and keeps C (and B, made after it)."""
    expiry = 0.25
    srv_a, srv_b, srv_c = (raw_server(Responder()) for _ in range(3))
    async with api.ConnectionPool(keepalive_expiry=expiry) as pool:
        assert (await pool.request("GET", srv_a.url + "/")).content == b"ok"
        async with pool.stream("GET", srv_c.url + "/") as busy:
            deadline = time.monotonic() + expiry * 1.5
            while time.monotonic() < deadline:
                if api.is_async:
                    await anyio.sleep(deadline - time.monotonic())
                else:
                    time.sleep(max(0.0, deadline - time.monotonic()))
            assert (await pool.request("GET", srv_b.url + "/")).content == b"ok"
            assert await busy.aread() == b"ok"
        ports = sorted(c.info() for c in pool.connections)
        assert len(ports) == 2
        assert str(srv_c.port) in " ".join(ports)
        assert str(srv_a.port) not in " ".join(ports)


async def test_repr_counts_active_and_queued_requests(
    api: Any, raw_server: Callable[..., RawServer]
) -> None:
    srv = raw_server(Responder())
    name = api.name("ConnectionPool")

    async def until(text: str) -> None:
        deadline = time.monotonic() + 10
        while text not in repr(pool):
            assert time.monotonic() < deadline, repr(pool)
            if api.is_async:
                await anyio.sleep(0.005)
            else:
                time.sleep(0.005)

    async with api.ConnectionPool(max_connections=1) as pool:

        async def holder() -> None:
            async with pool.stream("GET", srv.url + "/") as response:
                await until(" 1 queued")
                assert repr(pool) == (
                    f"<{name} [Requests: 1 active, 1 queued | Connections: 1 active, 0 idle]>"
                )
                await response.aread()

        async def queued() -> None:
            await until("Requests: 1 active, 0 queued")
            assert (await pool.request("GET", srv.url + "/")).content == b"ok"

        await api.concurrently(holder, queued)
        assert repr(pool) == (
            f"<{name} [Requests: 0 active, 0 queued | Connections: 0 active, 1 idle]>"
        )


# -- HTTPProxy's own defaults -------------------------------------------------------------------


async def test_the_default_proxy_does_not_retry_a_failed_connect(api: Any) -> None:
    backend = api.backend([HELLO], fail_connects=1)
    async with api.HTTPProxy(proxy_url="http://proxy.test:8080", network_backend=backend) as proxy:
        with pytest.raises(httpcore.ConnectError):
            await proxy.request("GET", "http://example.com/")
        assert len(backend.connects) == 1
        assert proxy.connections == []


async def test_the_default_proxy_tunnels_http11_even_where_http2_is_offered(
    api: Any, http_proxy: Any, tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    async with api.HTTPProxy(proxy_url=http_proxy.url, ssl_context=client_ssl_context) as proxy:
        response = await proxy.request("GET", tls_server.url + "/")
        assert response.content == b"Hello, world!"
        assert response.extensions["http_version"] == b"HTTP/1.1"


async def test_the_default_proxy_opens_at_most_ten_connections(
    api: Any, raw_server: Callable[..., RawServer]
) -> None:
    """As for the pool: 11 concurrent forwarded requests, 10 connections to the proxy."""
    responder = Responder(answer_after=10)
    srv = raw_server(responder)
    async with api.HTTPProxy(proxy_url=srv.url) as proxy:

        async def one() -> None:
            assert (await proxy.request("GET", "http://example.test/")).content == b"ok"

        await api.concurrently(*[one for _ in range(11)])
        assert len(proxy.connections) == 10
    assert srv.connections == 10
    assert responder.requests == 11


async def test_requests_requeued_at_capacity_wait_and_reuse_the_connection(api: Any) -> None:
    """max_connections=1, http2=True: both requests are promised the pending https connection;
    it turns out HTTP/1.1, so the second is requeued, waits (the pool is at capacity) and then
    reuses that same connection, which stays in the pool."""
    backend = api.backend([HELLO] * 3)
    async with api.ConnectionPool(http2=True, max_connections=1, network_backend=backend) as pool:
        trace = api.trace(lambda name, info: None, checkpoint=True)
        statuses: List[int] = []

        async def fetch() -> None:
            response = await pool.request(
                "GET", "https://example.com/", extensions={"trace": trace}
            )
            statuses.append(response.status)

        await api.concurrently(fetch, fetch)
        assert statuses == [200, 200]
        assert len(backend.streams) == 1
        assert [c.is_idle() for c in pool.connections] == [True]
        assert "Request Count: 2" in pool.connections[0].info()
        # Nothing is left promised to the requeued request: the next one reuses it too.
        await fetch()
        assert len(backend.streams) == 1
        assert "Request Count: 3" in pool.connections[0].info()


class SyncCloseOnly:
    """A response body of another library: iterable, with `close()` and no `aclose()`."""

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Any:
        return iter([b"a", b"b"])

    def close(self) -> None:
        self.closed = True


class AsyncCloseOnly:
    """The async counterpart: async-iterable, with `aclose()` and no `close()`."""

    def __init__(self) -> None:
        self.closed = False

    async def __aiter__(self) -> Any:
        for chunk in (b"a", b"b"):
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


async def test_a_foreign_body_with_only_close_or_aclose_is_closed_by_the_pool(api: Any) -> None:
    bodies: List[Any] = []

    class Connection(_FakeState, httpcore.ConnectionInterface):
        def handle_request(self, request: httpcore.Request) -> httpcore.Response:
            bodies.append(SyncCloseOnly())
            return httpcore.Response(200, content=bodies[-1])

        def close(self) -> None:
            self.closed = True

    class AsyncConnection(_FakeState, httpcore.AsyncConnectionInterface):
        async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
            bodies.append(AsyncCloseOnly())
            return httpcore.Response(200, content=bodies[-1])

        async def aclose(self) -> None:
            self.closed = True

    class Pool(api.cls("ConnectionPool")):  # type: ignore[misc]
        def create_connection(self, origin: httpcore.Origin) -> Any:
            return (AsyncConnection if api.is_async else Connection)(origin)

    pool = Pool() if api.is_async else helpers.SyncClient(Pool())
    async with pool:
        assert (await pool.request("GET", "https://example.com/")).content == b"ab"
        assert [body.closed for body in bodies] == [True]
