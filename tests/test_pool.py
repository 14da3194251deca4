"""ConnectionPool / AsyncConnectionPool over recording mock backends (API.md §3)."""

from __future__ import annotations

import asyncio
import socket

import anyio
import helpers
import pytest
from helpers import AsyncRecordingBackend, AsyncRecordingStream

import httpcore

pytestmark = pytest.mark.anyio

# The harness fixtures (sync, asyncio and trio flavours).
anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

HELLO = b"HTTP/1.1 200 OK\r\nContent-Type: plain/text\r\nContent-Length: 13\r\n\r\nHello, world!"


def pool_repr(api, active=0, queued=0, conns_active=0, conns_idle=0, name="ConnectionPool"):
    return (
        f"<{api.name(name)} [Requests: {active} active, {queued} queued | "
        f"Connections: {conns_active} active, {conns_idle} idle]>"
    )


def conn_repr(api, url, state, count, cls="HTTPConnection"):
    return f"<{api.name(cls)} [{url!r}, HTTP/1.1, {state}, Request Count: {count}]>"


async def test_reuse_repr_and_close(api):
    backend = api.backend([HELLO] * 3)
    async with api.ConnectionPool(network_backend=backend) as pool:
        assert repr(pool) == pool_repr(api)
        async with pool.stream("GET", "https://example.com/") as response:
            assert repr(pool) == pool_repr(api, active=1, conns_active=1)
            assert [repr(c) for c in pool.connections] == [
                conn_repr(api, "https://example.com:443", "ACTIVE", 1)
            ]
            await response.aread()
        assert repr(pool) == pool_repr(api, conns_idle=1)
        assert [repr(c) for c in pool.connections] == [
            conn_repr(api, "https://example.com:443", "IDLE", 1)
        ]

        # Same origin: the idle connection is reused.
        response = await pool.request("GET", "https://example.com/other")
        assert response.content == b"Hello, world!"
        assert [repr(c) for c in pool.connections] == [
            conn_repr(api, "https://example.com:443", "IDLE", 2)
        ]

        # Different origins: new connections, in creation order.
        await pool.request("GET", "http://example.com/")
        await pool.request("GET", "https://example.org/")
        assert [repr(c) for c in pool.connections] == [
            conn_repr(api, "https://example.com:443", "IDLE", 2),
            conn_repr(api, "http://example.com:80", "IDLE", 1),
            conn_repr(api, "https://example.org:443", "IDLE", 1),
        ]
        assert repr(pool) == pool_repr(api, conns_idle=3)
        assert len(backend.streams) == 3

        # `connections` is a copy.
        pool.connections.clear()
        assert len(pool.connections) == 3

        await pool.aclose()
        assert repr(pool) == pool_repr(api)
        assert pool.connections == []
        assert all(stream.closed for stream in backend.streams)

        # The pool remains usable after close().
        response = await pool.request("GET", "https://example.com/")
        assert response.status == 200
        assert len(backend.streams) == 4
    # Leaving the context closes what is left.
    assert pool.connections == []
    assert backend.streams[-1].closed


async def test_in_flight_response_fails_after_pool_close(api):
    backend = api.backend([b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n", b"Hello, ", b"world!"])
    pool = api.ConnectionPool(network_backend=backend)
    async with pool.stream("GET", "https://example.com/") as response:
        await pool.aclose()
        with pytest.raises(httpcore.ReadError) as exc_info:
            await response.aread()
        assert str(exc_info.value) == "Connection closed"
    assert pool.connections == []
    assert repr(pool) == pool_repr(api)


async def test_request_with_iterator_body_through_pool(api):
    backend = api.backend([HELLO])
    async with api.ConnectionPool(network_backend=backend) as pool:
        response = await pool.request(
            "PUT", "http://example.com/x", content=api.body([b"ab", b"cd"])
        )
        assert response.status == 200
    assert backend.streams[0].data == (
        b"PUT /x HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"
    )


async def test_streamed_response_chunks_through_pool(api):
    backend = api.backend([b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n", b"Hello, ", b"world!"])
    async with api.ConnectionPool(network_backend=backend) as pool:
        async with pool.stream("GET", "https://example.com/") as response:
            assert [c async for c in response.aiter_stream()] == [b"Hello, ", b"world!"]
            assert response.extensions["http_version"] == b"HTTP/1.1"
            assert response.headers == [(b"Content-Length", b"13")]
        assert repr(pool) == pool_repr(api, conns_idle=1)


@pytest.mark.parametrize("origins", [["https://a.com/"], ["https://a.com/", "https://b.com/"]])
async def test_max_connections_one_with_concurrent_requests(api, origins):
    backend = api.backend([HELLO] * 20)
    seen = []
    queued = []
    async with api.ConnectionPool(max_connections=1, network_backend=backend) as pool:

        def record(name, info):
            seen.append(len(pool.connections))
            queued.append(" 0 queued" not in repr(pool))

        trace = api.trace(record, checkpoint=True)
        statuses = []

        async def fetch(url):
            response = await pool.request("GET", url, extensions={"trace": trace})
            statuses.append(response.status)

        def task(i):
            return lambda: fetch(origins[i % len(origins)])

        await api.concurrently(*[task(i) for i in range(6)])
        assert statuses == [200] * 6
        assert seen and max(seen) == 1
        assert any(queued)  # requests really did wait for the connection
        # The connection used last stays, idle (with two origins, the other was evicted).
        assert [c.is_idle() for c in pool.connections] == [True]
        assert repr(pool).startswith(f"<{api.name('ConnectionPool')} [Requests: 0 active, 0 queued")
    if len(origins) == 1:
        assert len(backend.streams) == 1


async def test_max_connections_evicts_idle_for_new_origin(api):
    backend = api.backend([HELLO])
    async with api.ConnectionPool(max_connections=1, network_backend=backend) as pool:
        await pool.request("GET", "https://a.com/")
        await pool.request("GET", "https://b.com/")
        assert [repr(c) for c in pool.connections] == [
            conn_repr(api, "https://b.com:443", "IDLE", 1)
        ]
        assert backend.streams[0].closed


async def test_http2_pending_connection_requeues_http11_requests(api):
    # With http2=True several requests share the pending https connection; once it turns out
    # HTTP/1.1 the others get ConnectionNotAvailable and are re-queued transparently.
    backend = api.backend([HELLO] * 10)
    async with api.ConnectionPool(http2=True, network_backend=backend) as pool:
        trace = api.trace(lambda name, info: None, checkpoint=True)
        statuses = []

        async def fetch():
            response = await pool.request(
                "GET", "https://example.com/", extensions={"trace": trace}
            )
            statuses.append(response.status)

        await api.concurrently(*[fetch] * 4)
        assert statuses == [200] * 4
        assert all(c.is_idle() for c in pool.connections)
        assert repr(pool).startswith(f"<{api.name('ConnectionPool')} [Requests: 0 active, 0 queued")


async def test_max_keepalive_counts_idle_connections(api):
    backend = api.backend([HELLO] * 2)
    async with api.ConnectionPool(max_keepalive_connections=1, network_backend=backend) as pool:
        await pool.request("GET", "https://a.com/")
        async with pool.stream("GET", "https://b.com/") as response:
            # One idle + one active with a limit of 1: the idle one stays (§12.1).
            assert repr(pool) == pool_repr(api, active=1, conns_active=1, conns_idle=1)
            await response.aread()
        # Two idle now: one is closed.
        assert repr(pool) == pool_repr(api, conns_idle=1)
        assert sum(stream.closed for stream in backend.streams) == 1


@pytest.mark.parametrize("options", [{"max_keepalive_connections": 0}, {"keepalive_expiry": 0.0}])
async def test_no_keepalive_leaves_the_pool_empty(api, options):
    backend = api.backend([HELLO])
    async with api.ConnectionPool(network_backend=backend, **options) as pool:
        response = await pool.request("GET", "https://example.com/")
        assert response.content == b"Hello, world!"
        assert pool.connections == []
        assert backend.streams[0].closed


async def test_keepalive_expiry_in_the_future_keeps_the_connection(api):
    backend = api.backend([HELLO] * 2)
    async with api.ConnectionPool(keepalive_expiry=60.0, network_backend=backend) as pool:
        await pool.request("GET", "https://example.com/")
        await pool.request("GET", "https://example.com/")
        assert len(backend.streams) == 1


@pytest.mark.parametrize(
    "response, headers",
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi", None),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", {"Connection": "close"}),
    ],
    ids=["response-header", "request-header"],
)
async def test_connection_close_removes_the_connection(api, response, headers):
    backend = api.backend([response])
    async with api.ConnectionPool(network_backend=backend) as pool:
        result = await pool.request("GET", "https://example.com/", headers=headers)
        assert result.content == b"hi"
        assert pool.connections == []


async def test_failed_connect_leaves_the_pool_empty(api):
    backend = api.backend([HELLO], fail_connects=1)
    async with api.ConnectionPool(network_backend=backend) as pool:
        with pytest.raises(httpcore.ConnectError):
            await pool.request("GET", "https://example.com/")
        assert pool.connections == []
        assert repr(pool) == pool_repr(api)


@pytest.mark.parametrize(
    "data",
    [
        [b"Wait, this isn't valid HTTP!", b""],
        [],
        [b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n", b"Hello"],
    ],
    ids=["invalid", "disconnect", "truncated-body"],
)
async def test_protocol_error_leaves_the_pool_empty(api, data):
    backend = api.backend(data)
    async with api.ConnectionPool(network_backend=backend) as pool:
        with pytest.raises(httpcore.RemoteProtocolError):
            await pool.request("GET", "https://example.com/")
        assert pool.connections == []
        assert backend.streams[0].closed
        assert repr(pool) == pool_repr(api)


async def test_pool_timeout(api):
    backend = api.backend([HELLO] * 2)
    async with api.ConnectionPool(max_connections=1, network_backend=backend) as pool:
        async with pool.stream("GET", "https://example.com/"):
            with pytest.raises(httpcore.PoolTimeout) as exc_info:
                await pool.request(
                    "GET", "https://example.com/", extensions={"timeout": {"pool": 0.01}}
                )
            assert str(exc_info.value) == ""
            if api.is_async:
                [cause] = exc_info.value.args
                names = (TimeoutError, asyncio.TimeoutError)
                assert isinstance(cause, names) or type(cause).__name__ == "TooSlowError"
            else:
                assert exc_info.value.args == ()
            # The timed-out request left the queue.
            assert repr(pool) == pool_repr(api, active=1, conns_active=1)
        # ...and the connection is still usable.
        response = await pool.request("GET", "https://example.com/")
        assert response.status == 200


async def test_pool_timeout_zero_with_a_connection_available(api):
    backend = api.backend([HELLO] * 2)
    async with api.ConnectionPool(max_connections=1, network_backend=backend) as pool:
        extensions = {"timeout": {"pool": 0}}
        assert (await pool.request("GET", "https://a.com/", extensions=extensions)).status == 200
        # Idle connection to reuse.
        assert (await pool.request("GET", "https://a.com/", extensions=extensions)).status == 200
        # Idle connection to evict for another origin.
        assert (await pool.request("GET", "https://b.com/", extensions=extensions)).status == 200


async def test_retries(api):
    backend = api.backend([HELLO], fail_connects=2)
    events = []
    trace = api.trace(lambda name, info: events.append(name))
    async with api.ConnectionPool(retries=2, network_backend=backend) as pool:
        response = await pool.request("GET", "https://example.com/", extensions={"trace": trace})
        assert response.status == 200
        assert backend.sleeps == [0, 0.5]
        assert events.count("connection.retry.started") == 2
        assert events.count("connection.retry.complete") == 2
        assert events[:4] == [
            "connection.connect_tcp.started",
            "connection.connect_tcp.failed",
            "connection.retry.started",
            "connection.retry.complete",
        ]
        assert len(pool.connections) == 1


async def test_retries_exhausted_leaves_the_pool_empty(api):
    backend = api.backend([HELLO], fail_connects=3)
    async with api.ConnectionPool(retries=2, network_backend=backend) as pool:
        with pytest.raises(httpcore.ConnectError):
            await pool.request("GET", "https://example.com/")
        assert backend.sleeps == [0, 0.5]
        assert pool.connections == []


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://example.com/", "Request URL has an unsupported protocol 'ftp://'."),
        ("/just/a/path", "Request URL is missing an 'http://' or 'https://' protocol."),
    ],
)
async def test_unsupported_scheme(api, url, message):
    backend = api.backend([HELLO])
    async with api.ConnectionPool(network_backend=backend) as pool:
        with pytest.raises(httpcore.UnsupportedProtocol) as exc_info:
            await pool.request("GET", url)
        assert str(exc_info.value) == message
        assert backend.connects == []
        assert repr(pool) == pool_repr(api)


@pytest.mark.parametrize("scheme", ["ws", "wss"])
async def test_websocket_schemes_are_supported(api, scheme):
    backend = api.backend([HELLO])
    async with api.ConnectionPool(network_backend=backend) as pool:
        response = await pool.request("GET", f"{scheme}://example.com/")
        assert response.status == 200


async def test_server_closed_idle_connection_is_not_reused(api):
    backend = api.backend([HELLO], readable_when_drained=True)
    async with api.ConnectionPool(network_backend=backend) as pool:
        await pool.request("GET", "https://example.com/")
        assert len(pool.connections) == 1 and pool.connections[0].has_expired()
        response = await pool.request("GET", "https://example.com/")
        assert response.content == b"Hello, world!"
        assert len(backend.streams) == 2
        assert backend.streams[0].closed
        assert [repr(c) for c in pool.connections] == [
            conn_repr(api, "https://example.com:443", "IDLE", 1)
        ]


async def test_uds(api):
    backend = api.backend([HELLO])
    async with api.ConnectionPool(uds="/tmp/server.sock", network_backend=backend) as pool:
        response = await pool.request("GET", "http://localhost/")
        assert response.status == 200
    assert backend.connects == [
        {"path": "/tmp/server.sock", "timeout": None, "socket_options": None}
    ]


async def test_local_address_and_socket_options_are_forwarded(api):
    backend = api.backend([HELLO])
    options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    async with api.ConnectionPool(
        local_address="0.0.0.0", socket_options=options, network_backend=backend
    ) as pool:
        await pool.request(
            "GET", "http://example.com:8080/", extensions={"timeout": {"connect": 2}}
        )
    assert backend.connects == [
        {
            "host": "example.com",
            "port": 8080,
            "timeout": 2,
            "local_address": "0.0.0.0",
            "socket_options": options,
        }
    ]
    assert backend.streams[0].data == b"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"


async def test_positional_constructor_arguments(api):
    backend = api.backend([HELLO])
    pool = api.ConnectionPool(None, None, 5, 3, 10.0, True, False, 0, None, None, backend, None)
    response = await pool.request("GET", "https://example.com/")
    assert response.status == 200
    await pool.aclose()


async def test_error_while_reading_body_releases_the_connection(api):
    class Boom(Exception):
        pass

    backend = api.backend([HELLO])
    async with api.ConnectionPool(network_backend=backend) as pool:
        with pytest.raises(Boom):
            async with pool.stream("GET", "https://example.com/") as response:
                async for _chunk in response.aiter_stream():
                    raise Boom()
        assert pool.connections == []
        assert repr(pool) == pool_repr(api)


@pytest.mark.parametrize("flavour", ["asyncio", "trio"])  # cancellation is async only
async def test_cancelled_request_leaves_no_connection(api):

    class BlockingStream(AsyncRecordingStream):
        async def read(self, max_bytes, timeout=None):
            # Out of canned data: block (until cancelled) instead of reporting EOF.
            if not self._buffer and not self._closed:
                await anyio.sleep_forever()
            return await super().read(max_bytes, timeout)

    class BlockingBackend(AsyncRecordingBackend):
        stream_class = BlockingStream

    backend = BlockingBackend([b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n"])
    async with api.ConnectionPool(network_backend=backend) as pool:
        with anyio.move_on_after(0.05) as scope:
            await pool.request("GET", "https://example.com/")
        assert scope.cancelled_caught
        assert pool.connections == []
        assert repr(pool) == pool_repr(api)
        assert backend.streams[0].closed

        # Cancelled while waiting for the head.
        backend._buffer = []
        with anyio.move_on_after(0.05):
            await pool.request("GET", "https://example.com/")
        assert pool.connections == []
        assert backend.streams[1].closed


async def test_pool_response_shares_headers_and_extensions(api):
    backend = api.backend([HELLO])
    async with api.ConnectionPool(network_backend=backend) as pool:
        async with pool.stream("GET", "https://example.com/") as response:
            assert response.extensions["network_stream"] is backend.streams[0]
            assert response.extensions["reason_phrase"] == b"OK"
            assert repr(response) == "<Response [200]>"
            await response.aread()
            await response.aclose()
            await response.aclose()  # closing twice is harmless
            assert repr(pool) == pool_repr(api, conns_idle=1)
        assert repr(pool) == pool_repr(api, conns_idle=1)
