"""`HTTPConnection` behaviours that mutation testing (scripts/mutation) found untested."""

from __future__ import annotations

import socket
import ssl
import sys
from typing import Any, Callable, List

import helpers
import pytest
from servers import RawServer

import httpcore

pytestmark = pytest.mark.anyio

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api


def client_hello_recorder(hellos: List[bytes]) -> Callable[[socket.socket, RawServer], None]:
    """A handler that keeps the client's first TLS record (its ClientHello) and hangs up."""

    def handler(conn: socket.socket, server: RawServer) -> None:
        data = b""
        while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        hellos.append(data)
        conn.close()

    return handler


@pytest.mark.parametrize("http2", [False, True])
async def test_the_default_tls_context_offers_h2_only_with_http2(
    api: Any, raw_server: Callable[..., RawServer], http2: bool
) -> None:
    """Without an `ssl_context`, the shared default context's ALPN list is http/1.1, plus h2
    when HTTP/2 is enabled (read from the ClientHello the server receives)."""
    hellos: List[bytes] = []
    srv = raw_server(client_hello_recorder(hellos))
    url = srv.url.replace("http://", "https://")
    async with api.ConnectionPool(http2=http2) as pool:
        with pytest.raises(httpcore.ConnectError):
            await pool.request("GET", url + "/")
    assert len(hellos) == 1
    hello = hellos[0]
    assert hello[:1] == b"\x16"  # a TLS handshake record
    alpn = b"\x08http/1.1\x02h2" if http2 else b"\x08http/1.1"
    assert alpn in hello
    if not http2:
        assert b"\x02h2" not in hello


@pytest.fixture
def hide(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Make an optional distribution look uninstalled (its import fails) for one test."""

    def hide_module(name: str) -> None:
        monkeypatch.setitem(sys.modules, name, None)

    return hide_module


async def test_without_httpcore_http3_only_asking_for_http3_fails_and_early(
    api: Any, hide: Callable[[str], None]
) -> None:
    hide("httpcore.http3")
    origin = httpcore.Origin(b"https", b"example.com", 443)
    # Not asked for: nothing is looked up.
    async with api.HTTPConnection(origin):
        pass
    async with api.ConnectionPool():
        pass
    # Asked for: the constructor says what is missing.
    with pytest.raises(RuntimeError, match="http3"):
        api.cls("HTTPConnection")(origin, http3=True)
    with pytest.raises(RuntimeError, match="http3"):
        api.cls("ConnectionPool")(http3=True)


async def test_without_httpcore_socks_a_socks_proxy_says_what_is_missing(
    api: Any, hide: Callable[[str], None]
) -> None:
    hide("httpcore.socks")
    proxy = httpcore.Proxy("socks5://127.0.0.1:1080")
    async with api.ConnectionPool(proxy=proxy) as pool:
        with pytest.raises(RuntimeError, match=r"pip install httpcore\[socks\]"):
            await pool.request("GET", "http://example.com/")
        assert pool.connections == []


async def test_without_httpcore_http2_negotiating_h2_says_what_is_missing(
    api: Any, hide: Callable[[str], None], tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    hide("httpcore.http2")
    async with api.ConnectionPool(ssl_context=client_ssl_context, http2=True) as pool:
        with pytest.raises(RuntimeError, match=r"pip install httpcore\[http2\]"):
            await pool.request("GET", tls_server.url + "/")
        assert pool.connections == []


async def test_without_httpcore_http2_the_connected_stream_is_closed(
    api: Any, hide: Callable[[str], None]
) -> None:
    # h2 negotiated (mock ALPN) but httpcore-http2 missing: the error says what to install and
    # the TLS stream is closed by the library, not left to the garbage collector.
    hide("httpcore.http2")
    backend = api.backend([], http2=True)
    async with api.ConnectionPool(network_backend=backend, http2=True) as pool:
        with pytest.raises(RuntimeError, match=r"pip install httpcore\[http2\]"):
            await pool.request("GET", "https://example.com/")
        assert pool.connections == []
    assert len(backend.streams) == 1 and backend.streams[0]._closed
