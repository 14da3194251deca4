"""HTTP/2 through an HTTP proxy's CONNECT tunnel (`HTTPProxy(http2=True)`): concurrent first
requests wait for one tunnel rather than each opening their own, as they would for a direct
connection; when the origin picks HTTP/1.1 or the proxy refuses, each still gets its own
answer. Against the test proxy (tests/servers/proxy.py), hypercorn and the raw server."""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any, Callable, List

import anyio
import helpers
import pytest
from servers import RawServer, Responder

import httpcore

pytestmark = pytest.mark.anyio

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api


async def test_concurrent_first_requests_share_one_http2_tunnel(
    api: Any, http_proxy: Any, tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    versions: List[bytes] = []
    async with api.HTTPProxy(
        proxy_url=http_proxy.url, ssl_context=client_ssl_context, http2=True
    ) as proxy:

        async def get() -> None:
            response = await proxy.request("GET", tls_server.url + "/")
            assert response.content == b"Hello, world!"
            versions.append(response.extensions["http_version"])

        await api.concurrently(*[get for _ in range(10)])
        assert versions == [b"HTTP/2"] * 10
        assert http_proxy.connects == 1
        assert len(proxy.connections) == 1


async def test_concurrent_first_requests_get_a_tunnel_each_when_the_origin_picks_http11(
    api: Any,
    http_proxy: Any,
    raw_server: Callable[..., RawServer],
    client_ssl_context: ssl.SSLContext,
) -> None:
    # The origin holds its first answers until three connections have a request in.
    responder = Responder(answer_after=3)
    srv = raw_server(responder, tls=True, alpn=("http/1.1",))
    url = srv.url.replace("http://", "https://")
    versions: List[bytes] = []
    async with api.HTTPProxy(
        proxy_url=http_proxy.url, ssl_context=client_ssl_context, http2=True
    ) as proxy:

        async def get() -> None:
            response = await proxy.request("GET", url + "/")
            assert response.content == b"ok"
            versions.append(response.extensions["http_version"])

        await api.concurrently(get, get, get)
        assert versions == [b"HTTP/1.1"] * 3
        assert http_proxy.connects == 3
        assert len(proxy.connections) == 3
        assert all(connection.is_idle() for connection in proxy.connections)


async def test_a_refused_tunnel_is_a_proxy_error_for_each_request_waiting_for_it(
    api: Any, raw_server: Callable[..., RawServer]
) -> None:
    connects: List[bytes] = []

    def refuse(conn: socket.socket, server: RawServer) -> None:
        request = server.read_request(conn)
        assert request is not None
        connects.append(request.split(b"\r\n", 1)[0])
        conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        server.read_request(conn)  # until the client hangs up

    srv = raw_server(refuse)
    outcomes: List[str] = []
    async with api.HTTPProxy(proxy_url=srv.url, http2=True) as proxy:

        async def get() -> None:
            with pytest.raises(httpcore.ProxyError) as raised:
                await proxy.request("GET", "https://example.com/")
            outcomes.append(str(raised.value))

        await api.concurrently(get, get, get)
        assert outcomes == ["502 Bad Gateway"] * 3
        assert proxy.connections == []
    # The two that waited for the first tunnel went back to the pool and opened their own.
    assert connects == [b"CONNECT example.com:443 HTTP/1.1"] * 3


@pytest.mark.parametrize("flavour", ["asyncio", "trio"])  # tasks are cancelled, not threads
async def test_cancelling_the_request_opening_the_tunnel_sends_the_waiting_ones_elsewhere(
    api: Any, raw_server: Callable[..., RawServer]
) -> None:
    """The first CONNECT gets no answer and its request is cancelled: the two requests waiting
    for that tunnel go back to the pool and open their own (refused here, so each ends with
    the proxy's answer); nothing is left in the pool."""
    connects: List[bytes] = []

    def proxy(conn: socket.socket, server: RawServer) -> None:
        request = server.read_request(conn)
        assert request is not None
        connects.append(request.split(b"\r\n", 1)[0])
        if len(connects) > 1:
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        else:
            first_connect.set()
        server.read_request(conn)  # until the client hangs up

    first_connect = threading.Event()
    srv = raw_server(proxy)
    outcomes: List[str] = []
    async with api.HTTPProxy(proxy_url=srv.url, http2=True) as proxy_pool:

        async def waiting() -> None:
            with pytest.raises(httpcore.ProxyError) as raised:
                await proxy_pool.request("GET", "https://example.com/")
            outcomes.append(str(raised.value))

        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as first:
                async with anyio.create_task_group() as doomed:
                    doomed.start_soon(proxy_pool.request, "GET", "https://example.com/")
                    assert await anyio.to_thread.run_sync(first_connect.wait, 10)
                    tg.start_soon(waiting)
                    tg.start_soon(waiting)
                    await anyio.wait_all_tasks_blocked()  # waiting for that tunnel
                    first.cancel()
            assert first.cancelled_caught
        assert outcomes == ["502 Bad Gateway"] * 2
        assert proxy_pool.connections == []
    assert connects == [b"CONNECT example.com:443 HTTP/1.1"] * 3


@pytest.mark.parametrize(
    ("scheme", "http1", "http2", "available"),
    [
        (b"https", True, True, True),
        (b"wss", True, True, True),
        (b"ws", True, True, False),  # plain: HTTP/1.1, unless HTTP/2 is all it may speak
        (b"ws", False, True, True),
        (b"https", True, False, False),
    ],
)
def test_a_tunnel_not_yet_open_takes_more_requests_only_if_it_may_turn_out_http2(
    scheme: bytes, http1: bool, http2: bool, available: bool
) -> None:
    from httpcore.base._proxy import TunnelHTTPConnection

    proxy = httpcore.Origin(b"http", b"proxy.example", 3128)
    remote = httpcore.Origin(scheme, b"example.com", 443)
    with TunnelHTTPConnection(proxy, remote, http1=http1, http2=http2) as connection:
        assert connection.is_available() is available
        assert not connection.has_expired()


def _relay(conn: socket.socket, port: int) -> None:
    """Answer a CONNECT with 200 and relay the tunnel to 127.0.0.1:`port` until either side
    closes."""
    upstream = socket.create_connection(("127.0.0.1", port))
    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    back = threading.Thread(target=pipe, args=(upstream, conn), daemon=True)
    back.start()
    pipe(conn, upstream)
    back.join(10)
    upstream.close()


@pytest.mark.parametrize("flavour", ["asyncio", "trio"])  # tasks are cancelled, not threads
async def test_a_request_cancelled_while_waiting_for_the_tunnel_leaves_it_to_the_others(
    api: Any,
    raw_server: Callable[..., RawServer],
    tls_server: Any,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """Two requests wait for the tunnel the first one opens; one of them is cancelled. The
    tunnel opens all the same and the other request shares it (one CONNECT in all)."""
    connects: List[bytes] = []
    connect_arrived, release = threading.Event(), threading.Event()

    def proxy(conn: socket.socket, server: RawServer) -> None:
        request = server.read_request(conn)
        assert request is not None
        connects.append(request.split(b"\r\n", 1)[0])
        connect_arrived.set()
        assert release.wait(10)
        _relay(conn, tls_server.port)

    srv = raw_server(proxy)
    url = tls_server.url + "/"
    versions: List[bytes] = []
    async with api.HTTPProxy(
        proxy_url=srv.url, ssl_context=client_ssl_context, http2=True
    ) as proxy_pool:

        async def get() -> None:
            response = await proxy_pool.request("GET", url)
            versions.append(response.extensions["http_version"])

        async with anyio.create_task_group() as tg:
            tg.start_soon(get)  # opens the tunnel
            assert await anyio.to_thread.run_sync(connect_arrived.wait, 10)
            with anyio.CancelScope() as cancelled:
                async with anyio.create_task_group() as waiting:
                    waiting.start_soon(get)
                    tg.start_soon(get)
                    await anyio.wait_all_tasks_blocked()  # both wait for the tunnel
                    cancelled.cancel()
            release.set()
        assert cancelled.cancelled_caught
        assert versions == [b"HTTP/2", b"HTTP/2"]
        assert len(proxy_pool.connections) == 1
    assert connects == [f"CONNECT 127.0.0.1:{tls_server.port} HTTP/1.1".encode()]
