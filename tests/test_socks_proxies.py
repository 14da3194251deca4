"""httpcore.socks end to end: SOCKS4/4a/5/5h through real proxies (pproxy, from conftest), sync
and async (asyncio and trio), and against raw sockets that accept and never answer, reset, or
answer in HTTP."""

from __future__ import annotations

import socket
import ssl
import struct
from typing import Any, Iterator, List, Tuple

import pytest
import socks_helpers
from socks_helpers import HELLO

from httpcore.base import ConnectError, ConnectionPool, ConnectTimeout, Origin, Proxy, ProxyError
from httpcore.socks import AsyncSocks5Connection, AsyncSOCKSProxy, Socks5Connection, SOCKSProxy

anyio_backend = socks_helpers.anyio_backend


@pytest.fixture
def silent_listener() -> Iterator[Tuple[str, int]]:
    """A TCP port that accepts connections (in the kernel backlog) and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()
    sock.close()


@pytest.fixture
def closed_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


# -- sync, against pproxy ----------------------------------------------------------------------


def test_socks5_http(socks5_proxy: Any, server: Any) -> None:
    with SOCKSProxy(socks5_proxy.url) as proxy:
        response = proxy.request("GET", server.url + "/")
        assert response.status == 200
        assert response.content == HELLO
        assert response.extensions["http_version"] == b"HTTP/1.1"
        (connection,) = proxy.connections
        assert isinstance(connection, Socks5Connection)
        assert repr(connection) == (
            f"<Socks5Connection ['{server.url}', HTTP/1.1, IDLE, Request Count: 1]>"
        )
        assert connection.is_idle() and connection.is_available()
        assert not connection.is_closed() and not connection.has_expired()
        assert connection.can_handle_request(Origin(b"http", b"127.0.0.1", server.port))
        assert not connection.can_handle_request(Origin(b"https", b"127.0.0.1", server.port))
        assert repr(proxy) == (
            "<SOCKSProxy [Requests: 0 active, 0 queued | Connections: 0 active, 1 idle]>"
        )
    assert proxy.connections == []


def test_socks5_keepalive_reuse(socks5_proxy: Any, server: Any) -> None:
    with SOCKSProxy(socks5_proxy.url) as proxy:
        for _ in range(3):
            assert proxy.request("GET", server.url + "/").content == HELLO
        (connection,) = proxy.connections
        assert "Request Count: 3" in connection.info()
        # A second origin gets its own tunnel.
        proxy.request("GET", f"http://localhost:{server.port}/")
        assert len(proxy.connections) == 2


def test_socks5_streaming_body(socks5_proxy: Any, server: Any) -> None:
    with SOCKSProxy(socks5_proxy.url) as proxy:
        with proxy.stream("GET", server.url + "/stream/4/1000") as response:
            assert b"".join(response.iter_stream()) == b"x" * 4000
        response = proxy.request("POST", server.url + "/echo", content=b"ping" * 1000)
        assert response.content == b"ping" * 1000


def test_socks5_https(socks5_proxy: Any, tls_server: Any, client_ssl_context: Any) -> None:
    with SOCKSProxy(socks5_proxy.url, ssl_context=client_ssl_context) as proxy:
        response = proxy.request("GET", tls_server.url + "/")
        assert response.status == 200
        assert response.content == HELLO
        assert response.extensions["network_stream"].get_extra_info("ssl_object") is not None
        proxy.request("GET", tls_server.url + "/")
        (connection,) = proxy.connections
        assert repr(connection) == (
            f"<Socks5Connection ['{tls_server.url}', HTTP/1.1, IDLE, Request Count: 2]>"
        )


def test_socks5_wss_is_tls(socks5_proxy: Any, tls_server: Any, client_ssl_context: Any) -> None:
    # A wss:// origin is TLS-wrapped through the tunnel too (upstream only wrapped https).
    url = tls_server.url.replace("https://", "wss://") + "/"
    with SOCKSProxy(socks5_proxy.url, ssl_context=client_ssl_context) as proxy:
        response = proxy.request("GET", url)
        assert response.status == 200
        assert response.content == HELLO


def test_socks5_sni_hostname(socks5_proxy: Any, tls_server: Any, client_ssl_context: Any) -> None:
    with SOCKSProxy(socks5_proxy.url, ssl_context=client_ssl_context) as proxy:
        # The certificate covers "localhost": verified against the SNI name, not the URL host.
        response = proxy.request(
            "GET", tls_server.url + "/", extensions={"sni_hostname": "localhost"}
        )
        assert response.status == 200
        with pytest.raises(ConnectError):
            proxy.request(
                "GET",
                f"https://localhost:{tls_server.port}/",
                extensions={"sni_hostname": "not-in-the-certificate.example"},
            )
        assert len(proxy.connections) == 1


def test_socks5h_and_hostname(socks5_proxy: Any, server: Any) -> None:
    url = socks5_proxy.url.replace("socks5://", "socks5h://")
    with SOCKSProxy(url) as proxy:
        response = proxy.request("GET", f"http://localhost:{server.port}/")
        assert response.content == HELLO


def test_socks5_auth(socks5_auth_proxy: Any, server: Any) -> None:
    with SOCKSProxy(socks5_auth_proxy.url, proxy_auth=("user", "pass")) as proxy:
        assert proxy.request("GET", server.url + "/").content == HELLO
    with SOCKSProxy(socks5_auth_proxy.url, proxy_auth=(b"user", b"pass")) as proxy:
        assert proxy.request("GET", server.url + "/").content == HELLO


def test_socks5_auth_rejected(socks5_auth_proxy: Any, server: Any) -> None:
    # pproxy hangs up instead of replying with a failure status.
    with SOCKSProxy(socks5_auth_proxy.url, proxy_auth=("user", "wrong")) as proxy:
        with pytest.raises(ProxyError, match="username/password"):
            proxy.request("GET", server.url + "/")
        assert proxy.connections == []


def test_socks5_auth_missing(socks5_auth_proxy: Any, server: Any) -> None:
    with SOCKSProxy(socks5_auth_proxy.url) as proxy:
        with pytest.raises(ProxyError, match="authentication method selection"):
            proxy.request("GET", server.url + "/")
        assert proxy.connections == []


def test_socks4(socks4_proxy: Any, server: Any) -> None:
    with SOCKSProxy(socks4_proxy.url) as proxy:
        assert proxy.request("GET", server.url + "/").content == HELLO
        # A host name is resolved locally for socks4.
        assert proxy.request("GET", f"http://localhost:{server.port}/").content == HELLO
        assert len(proxy.connections) == 2


def test_socks4a_with_address(socks4_proxy: Any, server: Any) -> None:
    url = socks4_proxy.url.replace("socks4://", "socks4a://")
    with SOCKSProxy(url) as proxy:
        assert proxy.request("GET", server.url + "/").content == HELLO


def test_socks4_https(socks4_proxy: Any, tls_server: Any, client_ssl_context: Any) -> None:
    with SOCKSProxy(socks4_proxy.url, ssl_context=client_ssl_context) as proxy:
        assert proxy.request("GET", tls_server.url + "/").content == HELLO


@pytest.mark.parametrize("scheme", ["socks5", "socks5h", "socks4"])
def test_connection_pool_proxy_route(
    scheme: str, socks5_proxy: Any, socks4_proxy: Any, server: Any
) -> None:
    proxy_server = socks4_proxy if scheme == "socks4" else socks5_proxy
    proxy_url = f"{scheme}://{proxy_server.host}:{proxy_server.port}"
    with ConnectionPool(proxy=Proxy(proxy_url)) as pool:
        assert pool.request("GET", server.url + "/").content == HELLO
        (connection,) = pool.connections
        assert isinstance(connection, Socks5Connection)


def test_connection_pool_proxy_route_auth(socks5_auth_proxy: Any, server: Any) -> None:
    with ConnectionPool(proxy=Proxy(socks5_auth_proxy.url, auth=("user", "pass"))) as pool:
        assert pool.request("GET", server.url + "/").content == HELLO


def test_proxy_unreachable(closed_port: int, server: Any) -> None:
    with SOCKSProxy(f"socks5://127.0.0.1:{closed_port}") as proxy:
        with pytest.raises(ConnectError):
            proxy.request("GET", server.url + "/")
        assert proxy.connections == []


def test_not_a_socks_server(raw_server: Any, server: Any) -> None:
    def http_server(conn: socket.socket, srv: Any) -> None:
        conn.recv(1024)  # the SOCKS greeting
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        while conn.recv(1024):
            pass

    peer = raw_server(http_server)
    with SOCKSProxy(f"socks5://{peer.host}:{peer.port}") as proxy:
        with pytest.raises(ProxyError, match="did not answer in SOCKS5") as info:
            proxy.request("GET", server.url + "/")
        assert "b'HT'" in str(info.value)
        assert proxy.connections == []


def test_handshake_timeout(silent_listener: Tuple[str, int], server: Any) -> None:
    host, port = silent_listener
    with SOCKSProxy(f"socks5://{host}:{port}") as proxy:
        with pytest.raises(ConnectTimeout):
            proxy.request("GET", server.url + "/", extensions={"timeout": {"connect": 0.2}})
        assert proxy.connections == []


def test_trace_events_real(socks5_proxy: Any, tls_server: Any, client_ssl_context: Any) -> None:
    events: List[str] = []
    with SOCKSProxy(socks5_proxy.url, ssl_context=client_ssl_context) as proxy:
        proxy.request(
            "GET",
            tls_server.url + "/",
            extensions={"trace": lambda name, info: events.append(name)},
        )
    assert events[:6] == [
        "socks.connect_tcp.started",
        "socks.connect_tcp.complete",
        "socks.setup_socks5_connection.started",
        "socks.setup_socks5_connection.complete",
        "socks.start_tls.started",
        "socks.start_tls.complete",
    ]
    assert events[6] == "http11.send_request_headers.started"


def test_socks5_concurrent_threads(socks5_proxy: Any, server: Any) -> None:
    import concurrent.futures

    with SOCKSProxy(socks5_proxy.url, max_connections=3) as proxy:

        def fetch(i: int) -> bytes:
            return proxy.request("GET", server.url + f"/bytes/{100 + i}").content

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
            bodies = list(executor.map(fetch, range(20)))
        assert bodies == [b"x" * (100 + i) for i in range(20)]
        assert 1 <= len(proxy.connections) <= 3


# -- async, against pproxy ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_socks5_http(socks5_proxy: Any, server: Any) -> None:
    async with AsyncSOCKSProxy(socks5_proxy.url) as proxy:
        for _ in range(2):
            response = await proxy.request("GET", server.url + "/")
            assert response.status == 200
            assert response.content == HELLO
        (connection,) = proxy.connections
        assert isinstance(connection, AsyncSocks5Connection)
        assert repr(connection) == (
            f"<AsyncSocks5Connection ['{server.url}', HTTP/1.1, IDLE, Request Count: 2]>"
        )
        assert repr(proxy) == (
            "<AsyncSOCKSProxy [Requests: 0 active, 0 queued | Connections: 0 active, 1 idle]>"
        )
        async with proxy.stream("GET", server.url + "/bytes/3000") as response:
            body = b"".join([chunk async for chunk in response.aiter_stream()])
        assert body == b"x" * 3000
    assert proxy.connections == []


@pytest.mark.anyio
async def test_async_socks5_https(
    socks5_proxy: Any, tls_server: Any, client_ssl_context: Any
) -> None:
    async with AsyncSOCKSProxy(socks5_proxy.url, ssl_context=client_ssl_context) as proxy:
        response = await proxy.request("GET", tls_server.url + "/")
        assert response.content == HELLO
        response = await proxy.request(
            "GET", tls_server.url + "/", extensions={"sni_hostname": "localhost"}
        )
        assert response.content == HELLO
        assert len(proxy.connections) == 1


@pytest.mark.anyio
async def test_async_socks5_auth(socks5_auth_proxy: Any, server: Any) -> None:
    async with AsyncSOCKSProxy(socks5_auth_proxy.url, proxy_auth=("user", "pass")) as proxy:
        assert (await proxy.request("GET", server.url + "/")).content == HELLO
    async with AsyncSOCKSProxy(socks5_auth_proxy.url, proxy_auth=("user", "nope")) as proxy:
        with pytest.raises(ProxyError):
            await proxy.request("GET", server.url + "/")
        assert proxy.connections == []


@pytest.mark.anyio
async def test_async_socks4(socks4_proxy: Any, server: Any) -> None:
    async with AsyncSOCKSProxy(socks4_proxy.url) as proxy:
        assert (await proxy.request("GET", f"http://localhost:{server.port}/")).content == HELLO


@pytest.mark.anyio
async def test_async_connection_pool_route(socks5_proxy: Any, server: Any) -> None:
    from httpcore.aio import AsyncConnectionPool

    async with AsyncConnectionPool(proxy=Proxy(socks5_proxy.url)) as pool:
        assert (await pool.request("GET", server.url + "/")).content == HELLO
        (connection,) = pool.connections
        assert isinstance(connection, AsyncSocks5Connection)


@pytest.mark.anyio
async def test_async_handshake_timeout(silent_listener: Tuple[str, int], server: Any) -> None:
    host, port = silent_listener
    async with AsyncSOCKSProxy(f"socks5://{host}:{port}") as proxy:
        with pytest.raises(ConnectTimeout):
            await proxy.request("GET", server.url + "/", extensions={"timeout": {"connect": 0.2}})
        assert proxy.connections == []


@pytest.mark.anyio
async def test_async_socks5_concurrent_tasks(socks5_proxy: Any, server: Any) -> None:
    import anyio

    bodies: dict = {}
    async with AsyncSOCKSProxy(socks5_proxy.url, max_connections=3) as proxy:

        async def fetch(i: int) -> None:
            response = await proxy.request("GET", server.url + f"/bytes/{100 + i}")
            bodies[i] = response.content

        async with anyio.create_task_group() as group:
            for i in range(12):
                group.start_soon(fetch, i)
        # All 12 tasks enter the pool before a connection is up: 3 are opened, all kept.
        assert len(proxy.connections) == 3
    assert bodies == {i: b"x" * (100 + i) for i in range(12)}


@pytest.mark.anyio
async def test_async_cancelled_handshake(silent_listener: Tuple[str, int], server: Any) -> None:
    import anyio

    host, port = silent_listener
    async with AsyncSOCKSProxy(f"socks5://{host}:{port}") as proxy:
        with anyio.move_on_after(0.2) as scope:
            await proxy.request("GET", server.url + "/")
        assert scope.cancelled_caught
        assert proxy.connections == []
        assert repr(proxy) == (
            "<AsyncSOCKSProxy [Requests: 0 active, 0 queued | Connections: 0 active, 0 idle]>"
        )


# -- found by mutation testing (scripts/mutation) --------------------------------------------


def test_a_reset_during_the_handshake_is_a_proxy_error(raw_server: Any) -> None:
    def handler(conn: socket.socket, server: Any) -> None:
        conn.recv(16)  # the greeting
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    srv = raw_server(handler)
    port = srv.url.rsplit(":", 1)[1].rstrip("/")
    with SOCKSProxy(f"socks5://127.0.0.1:{port}") as proxy:
        with pytest.raises(ProxyError) as info:
            proxy.request("GET", "http://example.com/")
        assert proxy.connections == []
    # A read error (reset) or the closed connection, said as the handshake failing.
    assert "SOCKS handshake" in str(info.value)


def test_the_default_socks_proxy_opens_at_most_ten_connections(
    socks5_proxy: Any, raw_server: Any
) -> None:
    import concurrent.futures

    from servers import Responder

    responder = Responder(answer_after=10)
    srv = raw_server(responder)
    with SOCKSProxy(socks5_proxy.url) as proxy:

        def fetch(i: int) -> bytes:
            return proxy.request("GET", srv.url + "/").content

        with concurrent.futures.ThreadPoolExecutor(max_workers=11) as executor:
            assert list(executor.map(fetch, range(11))) == [b"ok"] * 11
        assert len(proxy.connections) == 10
    assert srv.connections == 10
    assert responder.requests == 11


def test_socks_proxy_with_http2_falls_back_to_http11_when_alpn_does_not_pick_h2(
    socks5_proxy: Any, raw_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    """`http1` defaults to True: a server that answers ALPN with http/1.1 only gets HTTP/1.1,
    not HTTP/2 with prior knowledge."""
    from servers import Responder

    srv = raw_server(Responder(), tls=True, alpn=("http/1.1",))
    url = srv.url.replace("http://", "https://")
    with SOCKSProxy(socks5_proxy.url, ssl_context=client_ssl_context, http2=True) as proxy:
        response = proxy.request("GET", url + "/")
    assert response.content == b"ok"
    assert response.extensions["http_version"] == b"HTTP/1.1"
