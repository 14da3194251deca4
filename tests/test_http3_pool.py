"""Pools with `http3=True`: prior knowledge, Alt-Svc discovery, the fallback to TCP when UDP
is blocked, GOAWAY retries, and the error without httpcore-http3. Sync, asyncio and trio."""

from __future__ import annotations

import socket
import ssl
import sys
import time
from typing import Any, Iterator, List

import h3helpers
import helpers
import pytest

import httpcore
from httpcore.base import _http3

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api
h3_server, h3_server_shared, quic_server = (
    h3helpers.h3_server,
    h3helpers.h3_server_shared,
    h3helpers.quic_server,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

TIMEOUTS = {"timeout": {"connect": 5.0, "read": 10.0, "write": 10.0, "pool": 10.0}}


async def test_prior_knowledge(
    api: helpers.API, h3_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    async with api.ConnectionPool(
        ssl_context=client_ssl_context, http1=False, http2=False, http3=True
    ) as pool:
        for _ in range(3):
            response = await pool.request("GET", h3_server.url + "/", extensions=TIMEOUTS)
            assert response.status == 200
            assert response.extensions["http_version"] == b"HTTP/3"
        assert len(pool.connections) == 1
        assert repr(pool.connections[0]) == (
            f"<{api.name('HTTPConnection')} ['https://127.0.0.1:{h3_server.port}', HTTP/3, "
            "IDLE, Request Count: 3]>"
        )
        assert "1 idle" in repr(pool)


async def test_prior_knowledge_concurrent_requests_share_the_connection(
    api: helpers.API, h3_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    versions: List[bytes] = []
    async with api.ConnectionPool(
        ssl_context=client_ssl_context, http1=False, http2=False, http3=True
    ) as pool:

        async def one() -> None:
            response = await pool.request("GET", h3_server.url + "/slow/50", extensions=TIMEOUTS)
            versions.append(response.extensions["http_version"])

        await api.concurrently(*[one for _ in range(20)])
        assert versions == [b"HTTP/3"] * 20
        assert len(pool.connections) == 1


async def test_prior_knowledge_failure_is_the_requests_error(
    api: helpers.API, client_ssl_context: ssl.SSLContext
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        url = f"https://127.0.0.1:{sink.getsockname()[1]}/"
        async with api.ConnectionPool(
            ssl_context=client_ssl_context, http1=False, http2=False, http3=True
        ) as pool:
            with pytest.raises(httpcore.ConnectTimeout, match="timed out"):
                await pool.request("GET", url, extensions={"timeout": {"connect": 0.3}})
            assert pool.connections == []


async def test_alt_svc_discovery(
    api: helpers.API, h3_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    async with api.ConnectionPool(ssl_context=client_ssl_context, http3=True) as pool:
        first = await pool.request("GET", h3_server.url + "/", extensions=TIMEOUTS)
        assert first.extensions["http_version"] == b"HTTP/1.1"
        # Under aioquic 1.0 hypercorn also advertises the drafts (h3-29...), each in its own field.
        advertised = [value for name, value in first.headers if name == b"alt-svc"]
        assert f'h3=":{h3_server.port}"; ma=3600'.encode() in advertised
        second = await pool.request("GET", h3_server.url + "/", extensions=TIMEOUTS)
        assert second.extensions["http_version"] == b"HTTP/3"
        third = await pool.request(
            "POST", h3_server.url + "/echo", content=b"x", extensions=TIMEOUTS
        )
        assert third.extensions["http_version"] == b"HTTP/3" and third.content == b"x"
        # The TCP connection was retired once idle; one HTTP/3 connection is left.
        assert [c.info().split(", ")[1] for c in pool.connections] == ["HTTP/3"]


async def test_without_http3_alt_svc_is_ignored(
    api: helpers.API, h3_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    async with api.ConnectionPool(ssl_context=client_ssl_context) as pool:
        for _ in range(2):
            response = await pool.request("GET", h3_server.url + "/", extensions=TIMEOUTS)
            assert response.extensions["http_version"] == b"HTTP/1.1"


@pytest.fixture
def quick_discovery(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_http3, "DISCOVERY_CONNECT_TIMEOUT", 0.3)
    yield


async def test_udp_blocked_falls_back_to_tcp(
    api: helpers.API,
    raw_server: Any,
    client_ssl_context: ssl.SSLContext,
    quick_discovery: None,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))  # swallows the QUIC handshake: UDP "blocked"
        advert = f'h3=":{sink.getsockname()[1]}"; ma=600'.encode()
        response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nAlt-Svc: " + advert + b"\r\n\r\nok"
        server = raw_server([response] * 10, tls=True)
        url = f"https://127.0.0.1:{server.port}/"
        async with api.ConnectionPool(ssl_context=client_ssl_context, http3=True) as pool:
            first = await pool.request("GET", url, extensions=TIMEOUTS)
            assert first.extensions["http_version"] == b"HTTP/1.1"
            started = time.monotonic()
            second = await pool.request("GET", url, extensions=TIMEOUTS)
            assert second.content == b"ok"  # over TCP, after the QUIC attempt timed out
            assert second.extensions["http_version"] == b"HTTP/1.1"
            assert 0.25 < time.monotonic() - started < 5
            started = time.monotonic()
            third = await pool.request("GET", url, extensions=TIMEOUTS)
            assert third.content == b"ok"
            assert time.monotonic() - started < 0.25  # QUIC not tried again for a while


async def test_goaway_requests_retried_on_a_new_connection(
    api: helpers.API, quic_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    clients: List[Any] = []

    def behaviour(server: Any, conn: Any, stream_id: int, headers: Any, body: bytes) -> None:
        if conn.address not in clients:
            clients.append(conn.address)
        server.respond(conn, stream_id, body=b"%d" % len(clients))
        server.goaway(conn, stream_id + 4)  # one request per connection

    server = quic_server(behaviour)
    async with api.ConnectionPool(
        ssl_context=client_ssl_context, http1=False, http2=False, http3=True
    ) as pool:
        bodies = [
            (await pool.request("GET", server.url + "/", extensions=TIMEOUTS)).content
            for _ in range(3)
        ]
    assert bodies == [b"1", b"2", b"3"]
    assert len(clients) == 3


def test_http3_without_the_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpcore.http3", None)
    with pytest.raises(RuntimeError, match=r"pip install httpcore\[http3\]"):
        httpcore.ConnectionPool(http3=True)
    with pytest.raises(RuntimeError, match=r"pip install httpcore\[http3\]"):
        httpcore.AsyncConnectionPool(http3=True)
    httpcore.ConnectionPool()  # without http3 nothing is looked up


async def test_graceful_close_retries_the_unanswered_request(
    api: helpers.API, quic_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    connections: List[Any] = []

    def behaviour(server: Any, conn: Any, stream_id: int, headers: Any, body: bytes) -> None:
        if conn not in connections:
            connections.append(conn)
        if len(connections) == 1 and headers[b":path"] == b"/second":
            # The first connection is shut down (H3_NO_ERROR) instead of answering.
            conn.quic.close(error_code=0x100)
            server.transmit(conn)
            return
        server.respond(conn, stream_id, body=headers[b":path"])

    server = quic_server(behaviour)
    async with api.ConnectionPool(
        ssl_context=client_ssl_context, http1=False, http2=False, http3=True
    ) as pool:
        first = await pool.request("GET", server.url + "/first", extensions=TIMEOUTS)
        second = await pool.request("GET", server.url + "/second", extensions=TIMEOUTS)
    assert (first.content, second.content) == (b"/first", b"/second")
    assert len(connections) == 2


# -- proxies: HTTP CONNECT and SOCKS tunnel TCP, QUIC runs over UDP -------------------------


async def test_http3_through_an_http_proxy_goes_over_tcp(
    api: helpers.API, h3_server: Any, http_proxy: Any, client_ssl_context: ssl.SSLContext
) -> None:
    # As curl's --http3 with a proxy: accepted, and the requests go through the tunnel over
    # TCP, Alt-Svc advertisements notwithstanding.
    async with api.HTTPProxy(http_proxy.url, ssl_context=client_ssl_context, http3=True) as pool:
        for _ in range(2):
            response = await pool.request("GET", h3_server.url + "/", extensions=TIMEOUTS)
            assert response.status == 200
            assert response.extensions["http_version"] == b"HTTP/1.1"
            assert b"alt-svc" in dict(response.headers)
        assert len(pool.connections) == 1
    assert http_proxy.connects >= 1


async def test_http3_through_a_socks_proxy_goes_over_tcp(
    api: helpers.API, h3_server: Any, socks5_proxy: Any, client_ssl_context: ssl.SSLContext
) -> None:
    import httpcore.socks

    cls = httpcore.AsyncSOCKSProxy if api.is_async else httpcore.socks.SOCKSProxy
    pool = cls(socks5_proxy.url, ssl_context=client_ssl_context, http3=True)
    client = pool if api.is_async else helpers.SyncClient(pool)
    async with client:
        for _ in range(2):
            response = await client.request("GET", h3_server.url + "/", extensions=TIMEOUTS)
            assert response.extensions["http_version"] == b"HTTP/1.1"


@pytest.mark.parametrize("kind", ["HTTPProxy", "SOCKSProxy", "ConnectionPool(proxy=...)"])
def test_http3_only_through_a_proxy_is_refused(kind: str) -> None:
    # As curl's --http3-only with a proxy: no request could ever be sent.
    import httpcore.socks

    versions = {"http1": False, "http2": False, "http3": True}
    with pytest.raises(RuntimeError, match="HTTP/3 cannot go through a proxy") as info:
        if kind == "HTTPProxy":
            httpcore.HTTPProxy("http://127.0.0.1:8080/", **versions)
        elif kind == "SOCKSProxy":
            httpcore.socks.SOCKSProxy("socks5://127.0.0.1:1080/", **versions)
        else:
            httpcore.AsyncConnectionPool(proxy=httpcore.Proxy("http://127.0.0.1:8080/"), **versions)
    assert "Enable http1 or http2" in str(info.value)
