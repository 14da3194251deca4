"""`HTTPConnection` behaviours that mutation testing (scripts/mutation) found untested."""

from __future__ import annotations

import socket
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
