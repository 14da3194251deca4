"""Proxy behaviours that mutation testing (scripts/mutation) found untested: `HTTPProxy`'s
`http1` default, and which CONNECT answers open a tunnel."""

from __future__ import annotations

import socket
import ssl
from typing import Any, Callable, List

import helpers
import pytest
from servers import RawServer, Responder

import httpcore

pytestmark = pytest.mark.anyio

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

RawFactory = Callable[..., RawServer]


async def test_http2_enabled_falls_back_to_http11_when_alpn_does_not_pick_h2(
    api: Any, http_proxy: Any, raw_server: RawFactory, client_ssl_context: ssl.SSLContext
) -> None:
    """`http1` defaults to True: with `http2=True`, a server that answers ALPN with http/1.1
    only gets HTTP/1.1, not HTTP/2 with prior knowledge."""
    srv = raw_server(Responder(), tls=True, alpn=("http/1.1",))
    url = srv.url.replace("http://", "https://")
    async with api.HTTPProxy(
        proxy_url=http_proxy.url, ssl_context=client_ssl_context, http2=True
    ) as proxy:
        response = await proxy.request("GET", url + "/")
        assert response.content == b"ok"
        assert response.extensions["http_version"] == b"HTTP/1.1"


async def test_any_2xx_answer_to_connect_opens_the_tunnel(api: Any, raw_server: RawFactory) -> None:
    """RFC 9110 §9.3.6: any 2xx switches to tunnel mode (here 299): the client starts TLS
    through it, which this fake proxy then drops (a connect error, not a `ProxyError`)."""
    received: List[bytes] = []

    def handler(conn: socket.socket, server: RawServer) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 299 Tunnel open\r\n\r\n")
        received.append(conn.recv(1))
        conn.close()

    srv = raw_server(handler)
    async with api.HTTPProxy(proxy_url=srv.url) as proxy:
        with pytest.raises(httpcore.ConnectError):
            await proxy.request("GET", "https://example.com/")
        assert proxy.connections == []
    # The first byte through the tunnel opens a TLS handshake record.
    assert received == [b"\x16"]


def test_http_proxy_keeps_its_url_where_httpx_reads_it() -> None:
    # httpx's own test suite reads `_proxy_url` (the name httpcore 1.0.9 uses).
    with httpcore.HTTPProxy(proxy_url="http://proxy.test:8080/") as proxy:
        assert proxy._proxy_url == httpcore.URL("http://proxy.test:8080/")


OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.mark.parametrize(
    "kind, urls",
    [
        ("direct", ["http://a.test/", "http://b.test/", "http://c.test/"]),
        ("forward", ["http://a.test/", "http://b.test/", "http://c.test/"]),
        ("tunnel", ["https://a.test/", "https://b.test/", "https://c.test/"]),
    ],
)
async def test_a_full_pool_evicts_without_probing_its_idle_sockets(
    api: Any, kind: str, urls: List[str]
) -> None:
    """Rule 4 of `_pool_state.py`: the readability check (a syscall) is made only on a
    connection about to be handed out. A full pool making room for another origin sweeps its
    idle connections by their keep-alive timers alone, for tunnels and forwarding proxies as
    for direct connections."""
    buffer = [b"HTTP/1.1 200 Connection established\r\n\r\n", OK_RESPONSE]
    if kind != "tunnel":
        buffer = [OK_RESPONSE]
    backend = api.backend(buffer)
    probes: List[int] = []

    def counting(stream: Any) -> None:
        original = stream.get_extra_info

        def get_extra_info(info: str) -> Any:
            if info == "is_readable":
                probes.append(id(stream))
            return original(info)

        stream.get_extra_info = get_extra_info

    if kind == "direct":
        client = api.ConnectionPool(network_backend=backend, max_connections=2)
    else:
        client = api.HTTPProxy(
            proxy_url="http://proxy.test:8080/", network_backend=backend, max_connections=2
        )
    async with client:
        for url in urls[:2]:
            assert (await client.request("GET", url)).content == b"ok"
        assert len(client.connections) == 2
        for stream in backend.streams:
            counting(stream)
        assert (await client.request("GET", urls[2])).content == b"ok"
        assert probes == []
        # One idle connection was closed to make room for the new origin's.
        assert len(backend.streams) == 3
        assert sum(stream.closed for stream in backend.streams) == 1
        assert len(client.connections) == 2
