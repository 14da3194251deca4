"""Connection options against real servers (sync, asyncio and trio): HTTP over a Unix socket
end to end (`uds=`), `local_address`, `socket_options` and the `sni_hostname` extension.

The mock-backend tests (test_pool.py, test_connection.py) record that these arguments are
handed to the backend; here a server sees their effect.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
from typing import Any, Callable, List, Optional

import helpers
import pytest
from servers import HTTPServer, RawServer, Responder

import httpcore

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

RawFactory = Callable[..., RawServer]

needs_unix = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")


def socket_of(response: Any) -> Any:
    return response.extensions["network_stream"].get_extra_info("socket")


# -- Unix domain sockets ------------------------------------------------------------------------


@needs_unix
@pytest.mark.parametrize("http2", [False, True], ids=["http1", "h2c"])
async def test_pool_over_a_unix_socket(api: Any, uds_server: HTTPServer, http2: bool) -> None:
    assert uds_server.uds is not None
    async with api.ConnectionPool(uds=uds_server.uds, http1=not http2, http2=http2) as pool:
        response = await pool.request("GET", "http://localhost/")
        assert (response.status, response.content) == (200, b"Hello, world!")
        assert socket_of(response).family == socket.AF_UNIX
        version = await pool.request("GET", "http://localhost/http_version")
        assert version.content == (b"2" if http2 else b"1.1")

        response = await pool.request("POST", "http://localhost/echo", content=b"over uds")
        assert response.content == b"over uds"
        # The Host header is the URL's, whatever the socket.
        response = await pool.request("GET", "http://example.test/echo_headers")
        headers = dict(json.loads(response.content)["headers"])
        assert headers["host"] == "example.test"
        # One connection per origin, each over the socket, each reused.
        assert len(pool.connections) == 2
        assert all(c.is_idle() for c in pool.connections)


@needs_unix
async def test_connection_over_a_unix_socket(api: Any, uds_server: HTTPServer) -> None:
    assert uds_server.uds is not None
    origin = helpers.origin("http://localhost:80")
    async with api.HTTPConnection(origin, uds=uds_server.uds) as conn:
        for _ in range(2):
            response = await conn.request("GET", "http://localhost/")
            assert (response.status, response.content) == (200, b"Hello, world!")
        assert socket_of(response).family == socket.AF_UNIX
        assert conn.is_idle()
        assert "Request Count: 2" in conn.info()


@needs_unix
async def test_unix_socket_that_does_not_exist(api: Any, tmp_path: Any) -> None:
    async with api.ConnectionPool(uds=str(tmp_path / "missing.sock")) as pool:
        with pytest.raises(httpcore.ConnectError):
            await pool.request("GET", "http://localhost/")
        assert pool.connections == []


# -- local_address ------------------------------------------------------------------------------

needs_linux_loopback = pytest.mark.skipif(
    sys.platform != "linux", reason="127.0.0.2 is a loopback address only on Linux"
)


@needs_linux_loopback
async def test_local_address_is_the_source_the_server_sees(
    api: Any, raw_server: RawFactory
) -> None:
    responder = Responder()
    srv = raw_server(responder)
    async with api.ConnectionPool(local_address="127.0.0.2") as pool:
        response = await pool.request("GET", srv.url + "/")
        assert response.content == b"ok"
        assert response.extensions["network_stream"].get_extra_info("client_addr")[0] == (
            "127.0.0.2"
        )
    origin = helpers.origin(srv.url)
    async with api.HTTPConnection(origin, local_address="127.0.0.2") as conn:
        assert (await conn.request("GET", srv.url + "/")).content == b"ok"
    assert [peer[0] for peer in responder.peers] == ["127.0.0.2", "127.0.0.2"]


async def test_without_local_address_the_source_is_the_default(
    api: Any, raw_server: RawFactory
) -> None:
    responder = Responder()
    srv = raw_server(responder)
    async with api.ConnectionPool() as pool:
        assert (await pool.request("GET", srv.url + "/")).content == b"ok"
    assert [peer[0] for peer in responder.peers] == ["127.0.0.1"]


# -- socket_options -----------------------------------------------------------------------------

KEEPIDLE = 77  # seconds; the system default is 7200


def options() -> List[Any]:
    result: List[Any] = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    if hasattr(socket, "TCP_KEEPIDLE"):
        result.append((socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPIDLE))
    return result


def assert_options_set(sock: Any) -> None:
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
    if hasattr(socket, "TCP_KEEPIDLE"):
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == KEEPIDLE


async def test_socket_options_are_set_on_the_socket(api: Any, raw_server: RawFactory) -> None:
    srv = raw_server(Responder())
    async with api.ConnectionPool(socket_options=options()) as pool:
        response = await pool.request("GET", srv.url + "/")
        assert response.content == b"ok"
        assert_options_set(socket_of(response))
    origin = helpers.origin(srv.url)
    async with api.HTTPConnection(origin, socket_options=options()) as conn:
        assert_options_set(socket_of(await conn.request("GET", srv.url + "/")))


async def test_without_socket_options_the_socket_has_the_defaults(
    api: Any, raw_server: RawFactory
) -> None:
    srv = raw_server(Responder())
    async with api.ConnectionPool() as pool:
        sock = socket_of(await pool.request("GET", srv.url + "/"))
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0


@needs_unix
async def test_socket_options_over_a_unix_socket(api: Any, uds_server: HTTPServer) -> None:
    option = (socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
    async with api.ConnectionPool(uds=uds_server.uds, socket_options=[option]) as pool:
        sock = socket_of(await pool.request("GET", "http://localhost/"))
        # Linux doubles the requested size for its bookkeeping.
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) in (32768, 65536)


# -- sni_hostname -------------------------------------------------------------------------------


def sni_recording_context(certfile: str, seen: List[Optional[str]]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile)
    context.set_alpn_protocols(["http/1.1"])

    def callback(sock: Any, server_name: Optional[str], ctx: Any) -> None:
        seen.append(server_name)

    context.sni_callback = callback
    return context


@pytest.mark.parametrize(
    ("sni", "expected"),
    [("localhost", "localhost"), (None, None)],
    ids=["sni_hostname", "ip-address-no-sni"],
)
async def test_sni_hostname_reaches_the_tls_server(
    api: Any,
    raw_server: RawFactory,
    server_cert_file: str,
    client_ssl_context: ssl.SSLContext,
    sni: Optional[str],
    expected: Optional[str],
) -> None:
    """The URL names 127.0.0.1 (never sent as SNI); `sni_hostname` names the server the TLS
    handshake asks for, and the certificate is checked against it."""
    seen: List[Optional[str]] = []
    context = sni_recording_context(server_cert_file, seen)
    srv = raw_server(Responder(), tls=True, ssl_context=context)
    extensions = {} if sni is None else {"sni_hostname": sni}
    async with api.ConnectionPool(ssl_context=client_ssl_context) as pool:
        response = await pool.request("GET", srv.url + "/", extensions=extensions)
        assert response.content == b"ok"
    assert seen == [expected]


async def test_sni_hostname_not_in_the_certificate_fails_verification(
    api: Any, raw_server: RawFactory, server_cert_file: str, client_ssl_context: ssl.SSLContext
) -> None:
    seen: List[Optional[str]] = []
    context = sni_recording_context(server_cert_file, seen)
    srv = raw_server(Responder(), tls=True, ssl_context=context)
    async with api.ConnectionPool(ssl_context=client_ssl_context) as pool:
        with pytest.raises(httpcore.ConnectError):
            await pool.request("GET", srv.url + "/", extensions={"sni_hostname": "other.test"})
        assert pool.connections == []
    assert seen == ["other.test"]
