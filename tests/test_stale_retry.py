"""The pool's retry of a request lost to a stale keep-alive connection (API.md §3.7).

A scripted server answers some requests on a connection, then reads the next one and closes
(cleanly, or with a reset) without answering: the race a client meets when a server or load
balancer drops a kept-alive connection just as a request goes out. The pool sends such a
request again, once, only when it is idempotent and its body can be sent twice; everything else
raises exactly what a bare connection raises.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import helpers
import pytest
from servers import RawServer

import httpcore

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

RawFactory = Callable[..., RawServer]
EMPTY_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
DISCONNECTED = "Server disconnected without sending a response."


def stale_server(
    raw_server: RawFactory,
    answers: int = 1,
    *,
    reset: bool = False,
    stale_connections: Optional[int] = None,
    reply: Optional[bytes] = None,
) -> RawServer:
    """Each connection answers `answers` requests, then swallows the next one and closes.

    `stale_connections`: only that many connections (the first accepted) ever swallow; later ones
    answer everything. `reply`: what the swallowing connection sends before closing (default
    nothing: a part of a response tests the "after the first byte" rule).
    """
    lock = threading.Lock()
    accepted = [0]

    def handler(conn: socket.socket, server: RawServer) -> None:
        with lock:
            index = accepted[0]
            accepted[0] += 1
        stale = stale_connections is None or index < stale_connections
        served = 0
        while True:
            if server.read_request(conn) is None:
                return
            if served < answers or not stale:
                conn.sendall(EMPTY_OK)
                served += 1
                continue
            if reply:
                conn.sendall(reply)
            if reset:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            return

    return raw_server(handler)


def methods_seen(server: RawServer) -> List[bytes]:
    return [message.split(b" ", 1)[0] for message in server.messages]


def retry_events(events: List[Tuple[str, Dict[str, Any]]]) -> List[Tuple[str, Dict[str, Any]]]:
    return [(name, info) for name, info in events if "retry_request" in name]


# -- what is retried ------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("reset", [False, True], ids=["eof", "reset"])
async def test_get_lost_on_a_stale_connection_is_sent_again(
    api: helpers.API, raw_server: RawFactory, reset: bool
) -> None:
    srv = stale_server(raw_server, reset=reset)
    events: List[Tuple[str, Dict[str, Any]]] = []
    async with api.ConnectionPool() as pool:
        first = await pool.request("GET", srv.url)
        assert first.status == 200
        second = await pool.request(
            "GET", srv.url, extensions={"trace": api.trace(lambda n, i: events.append((n, i)))}
        )
        assert second.status == 200
        # The stale connection was dropped; the retry's new connection stays idle in the pool.
        assert len(pool.connections) == 1
    assert srv.connections == 2
    assert methods_seen(srv) == [b"GET", b"GET", b"GET"]
    retried = retry_events(events)
    assert [name for name, _ in retried] == [
        "connection_pool.retry_request.started",
        "connection_pool.retry_request.complete",
    ]
    started = retried[0][1]
    assert started["request"].method == b"GET"
    expected = "ReadError" if reset else "RemoteProtocolError"
    assert started["reason"].startswith(expected + ": ")
    # The failed attempt is traced as such before the retry.
    names = [name for name, _ in events]
    assert names.index("http11.receive_response_headers.failed") < names.index(
        "connection_pool.retry_request.started"
    )


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"])
async def test_idempotent_methods_with_replayable_bodies_are_retried(
    api: helpers.API, raw_server: RawFactory, method: str
) -> None:
    srv = stale_server(raw_server)
    content = b"replayed body" if method == "PUT" else None
    async with api.ConnectionPool() as pool:
        await pool.request(method, srv.url)
        response = await pool.request(method, srv.url, content=content)
        assert response.status == 200
    assert methods_seen(srv) == [method.encode()] * 3
    if content is not None:
        # Both attempts carried the whole body.
        assert srv.messages[1].endswith(content)
        assert srv.messages[2].endswith(content)


@pytest.mark.anyio
async def test_library_byte_stream_is_replayable(api: helpers.API, raw_server: RawFactory) -> None:
    srv = stale_server(raw_server)
    async with api.ConnectionPool() as pool:
        await pool.request("GET", srv.url)
        host = f"{srv.host}:{srv.port}"
        request = httpcore.Request(
            "PUT", srv.url, headers={"Host": host, "Content-Length": "7"}, content=b"payload"
        )
        response = await pool.handle_async_request(request)
        await response.aread()
        assert response.status == 200
    assert methods_seen(srv) == [b"GET", b"PUT", b"PUT"]


@pytest.mark.anyio
async def test_retry_is_logged_at_debug(
    api: helpers.API, raw_server: RawFactory, caplog: pytest.LogCaptureFixture
) -> None:
    srv = stale_server(raw_server)
    caplog.set_level(logging.DEBUG, logger="httpcore")
    async with api.ConnectionPool() as pool:
        await pool.request("GET", srv.url)
        await pool.request("GET", srv.url)
    records = [r for r in caplog.records if r.name == "httpcore.connection_pool"]
    messages = [r.getMessage() for r in records]
    assert len(messages) == 2
    assert messages[0].startswith("retry_request.started request=<Request [b'GET']> reason=")
    assert DISCONNECTED in messages[0]
    assert messages[1] == "retry_request.complete"
    assert all(r.levelno == logging.DEBUG for r in records)


@pytest.mark.anyio
async def test_concurrent_requests_survive_a_stale_connection(
    api: helpers.API, raw_server: RawFactory
) -> None:
    # Only the first connection goes stale; eight requests race for the pool's connections.
    srv = stale_server(raw_server, stale_connections=1)
    statuses: List[int] = []
    async with api.ConnectionPool(max_connections=8) as pool:
        await pool.request("GET", srv.url)

        async def fetch() -> None:
            response = await pool.request("GET", srv.url)
            statuses.append(response.status)

        await api.concurrently(*[fetch] * 8)
    assert statuses == [200] * 8
    # The warm-up, eight requests, and the one sent again.
    assert methods_seen(srv) == [b"GET"] * 10


# -- what is not retried --------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_non_idempotent_requests_reach_the_server_once(
    api: helpers.API, raw_server: RawFactory, method: str
) -> None:
    srv = stale_server(raw_server)
    async with api.ConnectionPool() as pool:
        await pool.request("GET", srv.url)
        with pytest.raises(httpcore.RemoteProtocolError) as info:
            await pool.request(method, srv.url, content=b"once")
        assert str(info.value) == DISCONNECTED
        assert pool.connections == []
    assert methods_seen(srv) == [b"GET", method.encode()]


@pytest.mark.anyio
async def test_a_caller_iterator_body_is_never_replayed(
    api: helpers.API, raw_server: RawFactory
) -> None:
    srv = stale_server(raw_server)
    async with api.ConnectionPool() as pool:
        await pool.request("GET", srv.url)
        with pytest.raises(httpcore.RemoteProtocolError) as info:
            await pool.request(
                "PUT",
                srv.url,
                headers={"Content-Length": "4"},
                content=api.body([b"da", b"ta"]),
            )
        assert str(info.value) == DISCONNECTED
    assert methods_seen(srv) == [b"GET", b"PUT"]


@pytest.mark.anyio
async def test_a_new_connection_is_not_retried(api: helpers.API, raw_server: RawFactory) -> None:
    srv = stale_server(raw_server, answers=0)
    async with api.ConnectionPool() as pool:
        with pytest.raises(httpcore.RemoteProtocolError) as info:
            await pool.request("GET", srv.url)
        assert str(info.value) == DISCONNECTED
        assert pool.connections == []
    assert methods_seen(srv) == [b"GET"]


@pytest.mark.anyio
@pytest.mark.parametrize("reset", [False, True], ids=["eof", "reset"])
async def test_a_server_that_never_answers_sees_the_request_at_most_twice(
    api: helpers.API, raw_server: RawFactory, reset: bool
) -> None:
    # The first connection answers once; after that nothing is ever answered.
    lock = threading.Lock()
    accepted = [0]

    def handler(conn: socket.socket, server: RawServer) -> None:
        with lock:
            index = accepted[0]
            accepted[0] += 1
        if index == 0:
            server.read_request(conn)
            conn.sendall(EMPTY_OK)
        server.read_request(conn)
        if reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    srv = raw_server(handler)
    async with api.ConnectionPool() as pool:
        await pool.request("GET", srv.url)
        with pytest.raises((httpcore.RemoteProtocolError, httpcore.ReadError)) as info:
            await pool.request("GET", srv.url)
        if not reset:
            assert type(info.value) is httpcore.RemoteProtocolError
            assert str(info.value) == DISCONNECTED
        assert pool.connections == []
    assert methods_seen(srv) == [b"GET", b"GET", b"GET"]
    assert srv.connections == 2


@pytest.mark.anyio
async def test_no_retry_once_part_of_the_response_arrived(
    api: helpers.API, raw_server: RawFactory
) -> None:
    srv = stale_server(raw_server, reply=b"HTTP/1.1 200 OK\r\nContent-")
    async with api.ConnectionPool() as pool:
        await pool.request("GET", srv.url)
        with pytest.raises(httpcore.RemoteProtocolError):
            await pool.request("GET", srv.url)
        assert pool.connections == []
    assert methods_seen(srv) == [b"GET", b"GET"]


@pytest.mark.anyio
async def test_connections_used_directly_never_retry(
    api: helpers.API, raw_server: RawFactory
) -> None:
    srv = stale_server(raw_server)
    origin = httpcore.URL(srv.url).origin
    async with api.HTTPConnection(origin) as connection:
        await connection.request("GET", srv.url)
        with pytest.raises(httpcore.RemoteProtocolError) as info:
            await connection.request("GET", srv.url)
        assert str(info.value) == DISCONNECTED
    assert methods_seen(srv) == [b"GET", b"GET"]


@pytest.mark.anyio
async def test_a_bare_http11_connection_never_retries(api: helpers.API) -> None:
    stream = api.mock_stream([EMPTY_OK])
    origin = httpcore.Origin(b"http", b"example.com", 80)
    async with api.HTTP11Connection(origin, stream) as connection:
        assert (await connection.request("GET", "http://example.com/")).status == 200
        with pytest.raises(httpcore.RemoteProtocolError) as info:
            await connection.request("GET", "http://example.com/")
        assert str(info.value) == DISCONNECTED
    assert stream.data.count(b"GET / HTTP/1.1") == 2


@pytest.mark.anyio
async def test_retry_through_a_forwarding_proxy(api: helpers.API, raw_server: RawFactory) -> None:
    # The raw server plays the proxy: forwarded requests carry the absolute URL.
    srv = stale_server(raw_server)
    async with api.HTTPProxy(proxy_url=srv.url) as proxy:
        await proxy.request("GET", "http://example.com/")
        response = await proxy.request("GET", "http://example.com/")
        assert response.status == 200
    assert [m.split(b"\r\n", 1)[0] for m in srv.messages] == [
        b"GET http://example.com/ HTTP/1.1"
    ] * 3


def test_httpx_requests_are_retried(raw_server: RawFactory) -> None:
    # httpx hands the pool its own in-memory body stream: replayable too.
    import httpx

    srv = stale_server(raw_server)
    with httpx.Client() as client:
        assert client.get(srv.url).status_code == 200
        assert client.put(srv.url, content=b"twice").status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(srv.url, content=b"once")
    assert methods_seen(srv) == [b"GET", b"PUT", b"PUT", b"POST"]
    assert srv.messages[1].endswith(b"twice") and srv.messages[2].endswith(b"twice")


@pytest.mark.anyio
async def test_a_request_lost_twice_on_stale_connections_is_not_sent_a_third_time(
    api: helpers.API, raw_server: RawFactory
) -> None:
    """The retry happens once: lost again on a second stale kept-alive connection, the request
    fails, even though a third (new) connection would have answered."""
    srv = stale_server(raw_server, stale_connections=2)
    async with api.ConnectionPool() as pool:
        async with pool.stream("GET", srv.url) as first:
            await first.aread()
            assert (await pool.request("GET", srv.url)).status == 200
        assert len(pool.connections) == 2
        with pytest.raises(httpcore.RemoteProtocolError) as info:
            await pool.request("GET", srv.url)
        assert str(info.value) == DISCONNECTED
        assert pool.connections == []
    assert methods_seen(srv) == [b"GET"] * 4
    assert srv.connections == 2


@pytest.mark.anyio
async def test_no_retry_of_a_head_request_once_part_of_the_response_arrived(
    api: helpers.API, raw_server: RawFactory
) -> None:
    # HEAD responses are read by h11 (no fast path): its reads must note the bytes too.
    srv = stale_server(raw_server, reply=b"HTTP/1.1 200 OK\r\nContent-")
    async with api.ConnectionPool() as pool:
        await pool.request("HEAD", srv.url)
        with pytest.raises(httpcore.RemoteProtocolError):
            await pool.request("HEAD", srv.url)
        assert pool.connections == []
    assert methods_seen(srv) == [b"HEAD", b"HEAD"]
