"""httpcore.socks: SOCKS4/4a/5/5h proxies, sync and async (asyncio and trio).

Real proxies (pproxy, from conftest) for the end-to-end paths; mock backends for each reply a
proxy can send, including the failures pproxy never produces (it answers CONNECT before
connecting, and hangs up instead of sending SOCKS error replies).
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import time
from typing import Any, Iterable, Iterator, List, Optional, Tuple

import pytest

import httpcore.socks
from httpcore.base import (
    AsyncMockBackend,
    AsyncMockStream,
    ConnectError,
    ConnectionPool,
    ConnectTimeout,
    MockBackend,
    MockStream,
    Origin,
    Proxy,
    ProxyError,
    SyncBackend,
)
from httpcore.socks import AsyncSocks5Connection, AsyncSOCKSProxy, Socks5Connection, SOCKSProxy

HELLO = b"Hello, world!"

# Replies of a SOCKS5 proxy (API.md §5.5).
NO_AUTH = b"\x05\x00"
USER_PASS = b"\x05\x02"
AUTH_OK = b"\x01\x00"
AUTH_FAILED = b"\x01\x01"
CONNECTED = b"\x05\x00\x00\x01\xff\x00\x00\x01\x00\x50"
REFUSED = b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00"
SOCKS4_GRANTED = b"\x00\x5a\x00\x50\x7f\x00\x00\x01"
HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Type: plain/text\r\nContent-Length: 13\r\n\r\nHello, world!"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


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


# -- a mock backend that records what is written ---------------------------------------------


class RecordingStream(MockStream):
    def __init__(self, buffer: List[bytes], written: List[bytes], http2: bool = False) -> None:
        super().__init__(buffer, http2=http2)
        self.written = written
        self.tls: List[Optional[str]] = []

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self.written.append(buffer)

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Any:
        self.tls.append(server_hostname)
        return self


class RecordingBackend(MockBackend):
    def __init__(self, buffer: List[bytes], http2: bool = False, failures: int = 0) -> None:
        super().__init__(buffer, http2=http2)
        self.written: List[bytes] = []
        self.connects: List[Tuple[str, int, Optional[float]]] = []
        self.streams: List[RecordingStream] = []
        self.failures = failures
        self.sleeps: List[float] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: Optional[float] = None,
        local_address: Optional[str] = None,
        socket_options: Optional[Iterable[Any]] = None,
    ) -> Any:
        self.connects.append((host, port, timeout))
        if self.failures:
            self.failures -= 1
            raise ConnectError("refused")
        stream = RecordingStream(list(self._buffer), self.written, http2=self._http2)
        self.streams.append(stream)
        return stream

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def mock_request(
    buffer: List[bytes],
    url: str = "http://example.com/",
    proxy_url: str = "socks5://localhost:1080/",
    **kwargs: Any,
) -> Tuple[RecordingBackend, Any]:
    backend = RecordingBackend(buffer)
    with SOCKSProxy(proxy_url, network_backend=backend, **kwargs) as proxy:
        response = proxy.request("GET", url)
    return backend, response


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


# -- mock backends: the bytes on the wire -------------------------------------------------------


def test_wire_socks5_no_auth_domain_name() -> None:
    backend, response = mock_request([NO_AUTH, CONNECTED, HTTP_OK], "http://example.com/")
    assert response.content == HELLO
    assert backend.connects == [("localhost", 1080, None)]
    assert backend.written[:2] == [
        b"\x05\x01\x00",
        b"\x05\x01\x00\x03\x0bexample.com\x00\x50",
    ]


def test_wire_socks5_auth() -> None:
    backend, response = mock_request(
        [USER_PASS, AUTH_OK, CONNECTED, HTTP_OK], proxy_auth=("username", "password")
    )
    assert response.status == 200
    assert backend.written[:3] == [
        b"\x05\x01\x02",
        b"\x01\x08username\x08password",
        b"\x05\x01\x00\x03\x0bexample.com\x00\x50",
    ]


@pytest.mark.parametrize(
    ("url", "command"),
    [
        ("http://127.0.0.1:8080/", b"\x05\x01\x00\x01\x7f\x00\x00\x01\x1f\x90"),
        (
            "http://[::1]:8080/",
            b"\x05\x01\x00\x04" + b"\x00" * 15 + b"\x01\x1f\x90",
        ),
        ("https://example.org/", b"\x05\x01\x00\x03\x0bexample.org\x01\xbb"),
    ],
)
def test_wire_socks5_addresses(url: str, command: bytes) -> None:
    backend, response = mock_request([NO_AUTH, CONNECTED, HTTP_OK], url)
    assert response.status == 200
    assert backend.written[1] == command


def test_wire_socks5h_sends_names() -> None:
    backend, _ = mock_request(
        [NO_AUTH, CONNECTED, HTTP_OK], "http://localhost/", proxy_url="socks5h://proxy"
    )
    assert backend.written[1] == b"\x05\x01\x00\x03\x09localhost\x00\x50"
    assert backend.connects == [("proxy", 1080, None)]


def test_wire_socks4() -> None:
    backend, response = mock_request(
        [SOCKS4_GRANTED, HTTP_OK], "http://127.0.0.1/", proxy_url="socks4://proxy"
    )
    assert response.content == HELLO
    assert backend.written[0] == b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00"
    # With credentials, the username is the USERID (SOCKS4 has no password).
    backend, _ = mock_request(
        [SOCKS4_GRANTED, HTTP_OK],
        "http://127.0.0.1/",
        proxy_url="socks4://proxy",
        proxy_auth=("alice", "unused"),
    )
    assert backend.written[0] == b"\x04\x01\x00\x50\x7f\x00\x00\x01alice\x00"


def test_wire_socks4_resolves_locally() -> None:
    backend, _ = mock_request(
        [SOCKS4_GRANTED, HTTP_OK], "http://localhost:8080/", proxy_url="socks4://proxy"
    )
    assert backend.written[0] == b"\x04\x01\x1f\x90\x7f\x00\x00\x01\x00"


def test_wire_socks4a() -> None:
    backend, _ = mock_request(
        [SOCKS4_GRANTED, HTTP_OK], "http://example.com/", proxy_url="socks4a://proxy"
    )
    assert backend.written[0] == b"\x04\x01\x00\x50\x00\x00\x00\x01\x00example.com\x00"
    backend, _ = mock_request(
        [SOCKS4_GRANTED, HTTP_OK], "http://10.0.0.1/", proxy_url="socks4a://proxy"
    )
    assert backend.written[0] == b"\x04\x01\x00\x50\x0a\x00\x00\x01\x00"


def test_socks4_ipv6_is_refused() -> None:
    with pytest.raises(ProxyError, match="IPv6"):
        mock_request([SOCKS4_GRANTED, HTTP_OK], "http://[::1]/", proxy_url="socks4a://proxy")


def test_fragmented_replies() -> None:
    buffer = [b"\x05", b"\x00\x05\x00", b"\x00\x01\x7f\x00", b"\x00\x01\x00", b"\x50", HTTP_OK]
    _, response = mock_request(buffer)
    assert response.content == HELLO


def test_reply_with_domain_name_and_ipv6_bound_address() -> None:
    domain = b"\x05\x00\x00\x03\x05proxy\x04\x38"
    _, response = mock_request([NO_AUTH, domain, HTTP_OK])
    assert response.status == 200
    ipv6 = b"\x05\x00\x00\x04" + b"\x00" * 16 + b"\x04\x38"
    _, response = mock_request([NO_AUTH, ipv6, HTTP_OK])
    assert response.status == 200


def test_tls_uses_sni_hostname_and_origin_host() -> None:
    backend = RecordingBackend([NO_AUTH, CONNECTED, HTTP_OK, HTTP_OK, NO_AUTH, CONNECTED, HTTP_OK])
    with SOCKSProxy("socks5://proxy", network_backend=backend) as proxy:
        proxy.request("GET", "https://example.com/", extensions={"sni_hostname": "sni.example"})
        proxy.request("GET", "wss://example.org/")
        proxy.request("GET", "http://example.net/")
    assert [s.tls for s in backend.streams] == [["sni.example"], ["example.org"], []]


def test_retries_connecting_to_the_proxy() -> None:
    backend = RecordingBackend([NO_AUTH, CONNECTED, HTTP_OK], failures=2)
    events: List[str] = []
    with SOCKSProxy("socks5://proxy", network_backend=backend, retries=2) as proxy:
        response = proxy.request(
            "GET", "http://example.com/", extensions={"trace": lambda n, i: events.append(n)}
        )
    assert response.status == 200
    assert len(backend.connects) == 3
    assert backend.sleeps == [0, 0.5]
    assert events[:6] == [
        "socks.connect_tcp.started",
        "socks.connect_tcp.failed",
        "socks.retry.started",
        "socks.retry.complete",
        "socks.connect_tcp.started",
        "socks.connect_tcp.failed",
    ]
    backend = RecordingBackend([NO_AUTH, CONNECTED, HTTP_OK], failures=2)
    with SOCKSProxy("socks5://proxy", network_backend=backend, retries=1) as proxy:
        with pytest.raises(ConnectError):
            proxy.request("GET", "http://example.com/")
        assert proxy.connections == []


def test_handshake_timeout_is_passed_to_reads() -> None:
    class Timed(RecordingStream):
        timeouts: List[Optional[float]] = []

        def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
            self.timeouts.append(timeout)
            return super().read(max_bytes, timeout)

    class Backend(RecordingBackend):
        def connect_tcp(self, host: str, port: int, timeout: Any = None, **kw: Any) -> Any:
            return Timed(list(self._buffer), self.written)

    with SOCKSProxy("socks5://proxy", network_backend=Backend([NO_AUTH, CONNECTED, HTTP_OK])) as p:
        p.request("GET", "http://example.com/", extensions={"timeout": {"connect": 5.0}})
    handshake_reads = Timed.timeouts[:2]
    assert all(t is not None and 0 < t <= 5.0 for t in handshake_reads)


# -- mock backends: every failure is a ProxyError -------------------------------------------------


METHOD_NAMES = [
    (b"\x00", "NO AUTHENTICATION REQUIRED"),
    (b"\x01", "GSSAPI"),
    (b"\x02", "USERNAME/PASSWORD"),
    (b"\xff", "NO ACCEPTABLE METHODS"),
    (b"\x03", "UNKNOWN"),
    (b"\x80", "UNKNOWN"),
]


@pytest.mark.parametrize(("method", "name"), [m for m in METHOD_NAMES if m[0] != b"\x00"])
def test_method_mismatch_without_auth(method: bytes, name: str) -> None:
    message = f"Requested NO AUTHENTICATION REQUIRED from proxy server, but got {name}."
    with pytest.raises(ProxyError) as info:
        mock_request([b"\x05" + method, CONNECTED, HTTP_OK])
    assert str(info.value) == message


@pytest.mark.parametrize(("method", "name"), [m for m in METHOD_NAMES if m[0] != b"\x02"])
def test_method_mismatch_with_auth(method: bytes, name: str) -> None:
    message = f"Requested USERNAME/PASSWORD from proxy server, but got {name}."
    with pytest.raises(ProxyError) as info:
        mock_request([b"\x05" + method, AUTH_OK, CONNECTED], proxy_auth=("u", "p"))
    assert str(info.value) == message


@pytest.mark.parametrize("reply", [AUTH_FAILED, b"\x01\xff", b"\x05\x01"])
def test_auth_failed(reply: bytes) -> None:
    with pytest.raises(ProxyError) as info:
        mock_request([USER_PASS, reply, CONNECTED, HTTP_OK], proxy_auth=("u", "p"))
    assert str(info.value) == "Invalid username/password"


def test_auth_credentials_too_long() -> None:
    with pytest.raises(ProxyError, match="255 bytes"):
        mock_request([USER_PASS, AUTH_OK, CONNECTED], proxy_auth=("u" * 256, "p"))


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0x01, "General SOCKS server failure"),
        (0x02, "Connection not allowed by ruleset"),
        (0x03, "Network unreachable"),
        (0x04, "Host unreachable"),
        (0x05, "Connection refused"),
        (0x06, "TTL expired"),
        (0x07, "Command not supported"),
        (0x08, "Address type not supported"),
        (0x09, "UNKNOWN"),
        (0xFF, "UNKNOWN"),
    ],
)
def test_socks5_reply_codes(code: int, name: str) -> None:
    reply = b"\x05" + bytes([code]) + b"\x00\x01\x00\x00\x00\x00\x00\x00"
    with pytest.raises(ProxyError) as info:
        mock_request([NO_AUTH, reply])
    assert str(info.value) == f"Proxy Server could not connect: {name}."


def test_refused_leaves_pool_empty() -> None:
    backend = RecordingBackend([NO_AUTH, REFUSED])
    with SOCKSProxy("socks5://localhost:8080/", network_backend=backend) as proxy:
        with pytest.raises(ProxyError) as info:
            proxy.request("GET", "https://example.com/")
        assert str(info.value) == "Proxy Server could not connect: Connection refused."
        assert proxy.connections == []
        assert backend.streams[0]._closed


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (0x5B, "Request rejected or failed"),
        (0x5C, "cannot connect to identd"),
        (0x5D, "different user-id"),
        (0x42, "UNKNOWN"),
    ],
)
def test_socks4_reply_codes(code: int, text: str) -> None:
    reply = b"\x00" + bytes([code]) + b"\x00\x50\x7f\x00\x00\x01"
    with pytest.raises(ProxyError, match=r"^Proxy Server could not connect: ") as info:
        mock_request([reply], "http://127.0.0.1/", proxy_url="socks4://proxy")
    assert text in str(info.value)


@pytest.mark.parametrize(
    ("buffer", "proxy_url"),
    [
        ([b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"], "socks5://proxy"),
        ([b"\x04\x5a"], "socks5://proxy"),
        ([NO_AUTH, b"HTTP/1.1 400 Bad Request\r\n\r\n"], "socks5://proxy"),
        ([b"HTTP/1.1 400 Bad Request\r\n\r\n"], "socks4://proxy"),
    ],
)
def test_not_a_socks_peer(buffer: List[bytes], proxy_url: str) -> None:
    with pytest.raises(ProxyError, match="did not answer in SOCKS") as info:
        mock_request(buffer, "http://127.0.0.1/", proxy_url=proxy_url)
    assert info.value.__cause__ is None or not type(info.value.__cause__).__module__.startswith(
        "socksio"
    )


@pytest.mark.parametrize(
    "buffer",
    [
        [],
        [b"\x05"],
        [NO_AUTH],
        [NO_AUTH, b"\x05\x00\x00\x01\x7f"],
    ],
)
def test_proxy_hangs_up(buffer: List[bytes]) -> None:
    with pytest.raises(ProxyError, match="closed the connection during the SOCKS handshake"):
        mock_request(buffer)


def test_malformed_replies() -> None:
    with pytest.raises(ProxyError, match="address type 0x05"):
        mock_request([NO_AUTH, b"\x05\x00\x00\x05\x00\x00\x00\x00\x00\x00"])
    with pytest.raises(ProxyError, match="unexpected data"):
        mock_request([NO_AUTH, CONNECTED + b"HTTP/1.1 200 OK\r\n", HTTP_OK])


def test_connection_state_and_failure() -> None:
    backend = RecordingBackend([NO_AUTH, REFUSED])
    connection = Socks5Connection(
        proxy_origin=Origin(b"socks5", b"proxy", 1080),
        remote_origin=Origin(b"https", b"example.com", 443),
        network_backend=backend,
    )
    assert repr(connection) == "<Socks5Connection [CONNECTING]>"
    assert not connection.is_available() and not connection.is_idle()
    assert not connection.is_closed() and not connection.has_expired()
    with pytest.raises(ProxyError):
        connection.request("GET", "https://example.com/")
    assert repr(connection) == "<Socks5Connection [CONNECTION FAILED]>"
    assert connection.is_closed() and connection.has_expired()
    connection.close()


def test_connection_http2_is_available_before_connecting() -> None:
    connection = Socks5Connection(
        proxy_origin=Origin(b"socks5", b"proxy", 1080),
        remote_origin=Origin(b"https", b"example.com", 443),
        http2=True,
        network_backend=RecordingBackend([]),
    )
    assert connection.is_available()


def test_http2_over_socks() -> None:
    http2 = pytest.importorskip("httpcore.http2")
    if not hasattr(http2, "HTTP2Connection"):
        pytest.skip("httpcore.http2 is not built yet")
    import hpack

    body = b"Hello, world!"
    frames = (
        b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # SETTINGS
        + _h2_frame(0x1, 0x4, 1, hpack.Encoder().encode([(b":status", b"200")]))
        + _h2_frame(0x0, 0x1, 1, body)
    )
    backend = RecordingBackend([NO_AUTH, CONNECTED, frames], http2=True)
    with SOCKSProxy("socks5://proxy", network_backend=backend, http2=True) as proxy:
        response = proxy.request("GET", "https://example.com/")
        assert response.extensions["http_version"] == b"HTTP/2"
        assert response.content == body
        assert "HTTP/2" in repr(proxy.connections[0])


def _h2_frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes([kind, flags])
        + stream_id.to_bytes(4, "big")
        + payload
    )


def test_trace_events_mock_http_and_failure() -> None:
    events: List[str] = []

    def trace(name: str, info: Any) -> None:
        events.append(name)

    backend = RecordingBackend([NO_AUTH, CONNECTED, HTTP_OK])
    with SOCKSProxy("socks5://proxy", network_backend=backend) as proxy:
        proxy.request("GET", "http://example.com/", extensions={"trace": trace})
    assert events == [
        "socks.connect_tcp.started",
        "socks.connect_tcp.complete",
        "socks.setup_socks5_connection.started",
        "socks.setup_socks5_connection.complete",
        "http11.send_request_headers.started",
        "http11.send_request_headers.complete",
        "http11.send_request_body.started",
        "http11.send_request_body.complete",
        "http11.receive_response_headers.started",
        "http11.receive_response_headers.complete",
        "http11.receive_response_body.started",
        "http11.receive_response_body.complete",
        "http11.response_closed.started",
        "http11.response_closed.complete",
    ]
    events.clear()
    backend = RecordingBackend([NO_AUTH, REFUSED])
    with SOCKSProxy("socks5://proxy", network_backend=backend) as proxy:
        with pytest.raises(ProxyError):
            proxy.request("GET", "https://example.com/", extensions={"trace": trace})
    assert events == [
        "socks.connect_tcp.started",
        "socks.connect_tcp.complete",
        "socks.setup_socks5_connection.started",
        "socks.setup_socks5_connection.failed",
    ]
    events.clear()
    backend = RecordingBackend([SOCKS4_GRANTED, HTTP_OK])
    with SOCKSProxy("socks4://proxy", network_backend=backend) as proxy:
        proxy.request("GET", "https://127.0.0.1/", extensions={"trace": trace})
    assert events[:6] == [
        "socks.connect_tcp.started",
        "socks.connect_tcp.complete",
        "socks.setup_socks4_connection.started",
        "socks.setup_socks4_connection.complete",
        "socks.start_tls.started",
        "socks.start_tls.complete",
    ]


def test_trace_info_and_logging(caplog: pytest.LogCaptureFixture) -> None:
    infos: List[Tuple[str, Any]] = []
    backend = RecordingBackend([USER_PASS, AUTH_OK, CONNECTED, HTTP_OK])
    caplog.set_level(logging.DEBUG, logger="httpcore.socks")
    with SOCKSProxy(
        "socks5://proxy:9050", network_backend=backend, proxy_auth=("user", "s3cret")
    ) as proxy:
        proxy.request(
            "GET",
            "https://example.com/",
            extensions={
                "trace": lambda n, i: infos.append((n, i)),
                "timeout": {"connect": 3.0},
            },
        )
    started = dict(infos)
    assert started["socks.connect_tcp.started"] == {"host": "proxy", "port": 9050, "timeout": 3.0}
    setup = started["socks.setup_socks5_connection.started"]
    assert set(setup) == {"stream", "host", "port", "auth"}
    assert (setup["host"], setup["port"]) == ("example.com", 443)
    assert setup["auth"][0] == b"user"
    assert set(started["socks.start_tls.started"]) == {"ssl_context", "server_hostname", "timeout"}
    messages = [r.getMessage() for r in caplog.records if r.name == "httpcore.socks"]
    assert messages[0] == "connect_tcp.started host='proxy' port=9050 timeout=3.0"
    assert any(m.startswith("setup_socks5_connection.started") for m in messages)
    assert not any("s3cret" in m for m in messages)


def test_socks_proxy_arguments() -> None:
    with pytest.raises(TypeError, match=r"proxy_auth must be bytes or str, but got int\."):
        SOCKSProxy("socks5://proxy", proxy_auth=(1, "p"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="proxy_auth"):
        SOCKSProxy("socks5://proxy", proxy_auth=("user", 2))  # type: ignore[arg-type]
    proxy = SOCKSProxy("socks5://proxy", network_backend=SyncBackend())
    assert isinstance(proxy, ConnectionPool)
    assert (
        repr(proxy) == "<SOCKSProxy [Requests: 0 active, 0 queued | Connections: 0 active, 0 idle]>"
    )


def test_no_async_libraries_imported() -> None:
    import subprocess
    import sys

    code = (
        "import sys, httpcore.socks; "
        "print(sorted(m for m in ('h2', 'anyio', 'trio') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"
    assert httpcore.socks.__all__ == [
        "AsyncSOCKSProxy",
        "AsyncSocks5Connection",
        "SOCKSProxy",
        "Socks5Connection",
    ]


# -- async mock backends -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_mock_success_and_reuse() -> None:
    backend = AsyncMockBackend([NO_AUTH, CONNECTED, HTTP_OK, HTTP_OK])
    async with AsyncSOCKSProxy("socks5://localhost:8080/", network_backend=backend) as proxy:
        for _ in range(2):
            response = await proxy.request("GET", "https://example.com/")
            assert response.content == HELLO
        assert [repr(c) for c in proxy.connections] == [
            "<AsyncSocks5Connection ['https://example.com:443', HTTP/1.1, IDLE, Request Count: 2]>"
        ]


@pytest.mark.anyio
async def test_async_mock_auth() -> None:
    backend = AsyncMockBackend([USER_PASS, AUTH_OK, CONNECTED, HTTP_OK])
    async with AsyncSOCKSProxy(
        "socks5://proxy", proxy_auth=("u", "p"), network_backend=backend
    ) as proxy:
        assert (await proxy.request("GET", "http://example.com/")).status == 200
    backend = AsyncMockBackend([USER_PASS, AUTH_FAILED])
    async with AsyncSOCKSProxy(
        "socks5://proxy", proxy_auth=("u", "p"), network_backend=backend
    ) as proxy:
        with pytest.raises(ProxyError, match=r"^Invalid username/password$"):
            await proxy.request("GET", "http://example.com/")
        assert proxy.connections == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("buffer", "message"),
    [
        (
            [USER_PASS],
            "Requested NO AUTHENTICATION REQUIRED from proxy server, but got USERNAME/PASSWORD.",
        ),
        ([NO_AUTH, REFUSED], "Proxy Server could not connect: Connection refused."),
        (
            [NO_AUTH, b"\x05\x2a\x00\x01\x00\x00\x00\x00\x00\x00"],
            "Proxy Server could not connect: UNKNOWN.",
        ),
    ],
)
async def test_async_mock_failures(buffer: List[bytes], message: str) -> None:
    events: List[str] = []

    async def trace(name: str, info: Any) -> None:
        events.append(name)

    async with AsyncSOCKSProxy("socks5://proxy", network_backend=AsyncMockBackend(buffer)) as proxy:
        with pytest.raises(ProxyError) as info:
            await proxy.request("GET", "https://example.com/", extensions={"trace": trace})
        assert str(info.value) == message
        assert proxy.connections == []
    assert events[-1] == "socks.setup_socks5_connection.failed"


@pytest.mark.anyio
async def test_async_mock_socks4_local_resolution() -> None:
    class Recording(AsyncMockStream):
        written: List[bytes] = []

        async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
            self.written.append(buffer)

    class Backend(AsyncMockBackend):
        async def connect_tcp(self, host: str, port: int, timeout: Any = None, **kw: Any) -> Any:
            return Recording(list(self._buffer))

    backend = Backend([SOCKS4_GRANTED, HTTP_OK])
    async with AsyncSOCKSProxy("socks4://proxy", network_backend=backend) as proxy:
        response = await proxy.request("GET", "http://localhost:8080/")
        assert response.content == HELLO
    assert Recording.written[0] == b"\x04\x01\x1f\x90\x7f\x00\x00\x01\x00"


# -- found by mutation testing (scripts/mutation) --------------------------------------------


def test_socks4_reply_version_4_is_accepted() -> None:
    # VN is 0 per the protocol; some servers answer 4, which works all the same.
    reply = b"\x04\x5a\x00\x50\x7f\x00\x00\x01"
    _, response = mock_request([reply, HTTP_OK], "http://127.0.0.1/", proxy_url="socks4://proxy")
    assert response.content == HELLO


def test_not_a_socks4_peer_names_socks4() -> None:
    with pytest.raises(ProxyError) as info:
        mock_request([b"\x05\x00" * 4], "http://127.0.0.1/", proxy_url="socks4://proxy")
    assert str(info.value).startswith(
        "The proxy server did not answer in SOCKS4: is it a SOCKS4 proxy? (received "
    )


def test_socks5_credentials_of_1_and_255_bytes_are_sent() -> None:
    backend, response = mock_request(
        [USER_PASS, AUTH_OK, CONNECTED, HTTP_OK], proxy_auth=("u" * 255, "p")
    )
    assert response.content == HELLO
    assert backend.written[1] == b"\x01\xff" + b"u" * 255 + b"\x01p"


@pytest.mark.parametrize("auth", [("user", ""), ("", "pass")], ids=["password", "username"])
def test_empty_socks5_credentials_are_refused(auth: Tuple[str, str]) -> None:
    with pytest.raises(ProxyError, match="1 to 255 bytes"):
        mock_request([USER_PASS, AUTH_OK, CONNECTED, HTTP_OK], proxy_auth=auth)


@pytest.mark.parametrize(("port", "wire"), [(1, b"\x00\x01"), (65535, b"\xff\xff")])
def test_the_lowest_and_highest_ports_go_through_socks(port: int, wire: bytes) -> None:
    url = f"http://example.com:{port}/"
    backend, response = mock_request([NO_AUTH, CONNECTED, HTTP_OK], url)
    assert response.content == HELLO
    assert backend.written[1].endswith(b"example.com" + wire)


def test_socks5_password_over_255_bytes_is_refused() -> None:
    with pytest.raises(ProxyError, match="255 bytes"):
        mock_request([USER_PASS, AUTH_OK, CONNECTED], proxy_auth=("u", "p" * 256))


def test_not_a_socks5_reply_to_connect_names_socks5() -> None:
    with pytest.raises(ProxyError) as info:
        mock_request([NO_AUTH, b"\x04\x5a\x00\x50\x7f\x00\x00\x01"])
    assert str(info.value).startswith(
        "The proxy server did not answer in SOCKS5: is it a SOCKS5 proxy? (received "
    )


def test_unexpected_data_after_the_reply_shows_its_first_16_bytes() -> None:
    with pytest.raises(ProxyError) as info:
        mock_request([NO_AUTH, CONNECTED + b"0123456789abcdefXYZ"])
    assert str(info.value).endswith("CONNECT command: b'0123456789abcdef'")


def test_socks4_local_resolution_failure_is_a_connect_error() -> None:
    # `.invalid` never resolves (RFC 6761 §6.4); the error is the resolver's, not the proxy's.
    with pytest.raises(ConnectError):
        mock_request([SOCKS4_GRANTED, HTTP_OK], "http://name.invalid/", proxy_url="socks4://p")


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


def test_a_malformed_socks5_reply_is_a_proxy_error() -> None:
    # A bound address of type "domain name" that is not text: socksio refuses the reply.
    reply = b"\x05\x00\x00\x03\x02\xff\xfe\x00\x50"
    with pytest.raises(ProxyError, match="Malformed reply from the SOCKS5 proxy"):
        mock_request([NO_AUTH, reply, HTTP_OK])


def test_a_handshake_within_its_deadline_goes_through() -> None:
    backend = RecordingBackend([NO_AUTH, CONNECTED, HTTP_OK])
    with SOCKSProxy("socks5://proxy", network_backend=backend) as proxy:
        response = proxy.request(
            "GET", "http://example.com/", extensions={"timeout": {"connect": 2.0}}
        )
    assert response.content == HELLO


def test_one_deadline_bounds_the_whole_handshake() -> None:
    """Each step is quick enough for its own timeout, but the greeting's reply arrives after
    the handshake's deadline: the handshake fails there, not later."""

    class SlowStream(RecordingStream):
        def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
            time.sleep(0.2)
            return super().read(max_bytes, timeout)

    class SlowBackend(RecordingBackend):
        def connect_tcp(self, host: str, port: int, timeout: Any = None, **kwargs: Any) -> Any:
            return SlowStream(list(self._buffer), self.written)

    backend = SlowBackend([NO_AUTH, CONNECTED, HTTP_OK])
    with SOCKSProxy("socks5://proxy", network_backend=backend) as proxy:
        with pytest.raises(ConnectTimeout, match="during the SOCKS handshake"):
            proxy.request("GET", "http://example.com/", extensions={"timeout": {"connect": 0.1}})
        assert proxy.connections == []
    # The greeting went out; the CONNECT command never did.
    assert backend.written == [b"\x05\x01\x00"]


def test_the_socks_proxy_does_not_retry_a_failed_connect_by_default() -> None:
    backend = RecordingBackend([NO_AUTH, CONNECTED, HTTP_OK], failures=1)
    with SOCKSProxy("socks5://proxy", network_backend=backend) as proxy:
        with pytest.raises(ConnectError):
            proxy.request("GET", "http://example.com/")
    assert len(backend.connects) == 1


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


def test_a_port_out_of_range_is_refused_before_the_handshake() -> None:
    # (A URL's port 0 stands for the scheme's default port: it never gets here.)
    port = 65536
    url = httpcore.URL(scheme=b"http", host=b"example.com", port=port, target=b"/")
    backend = RecordingBackend([NO_AUTH, CONNECTED, HTTP_OK])
    with SOCKSProxy("socks5://proxy", network_backend=backend) as proxy:
        with pytest.raises(ProxyError) as info:
            proxy.request("GET", url)
    assert str(info.value) == f"Cannot connect to port {port} through a SOCKS proxy."
    assert backend.written == []


def test_a_host_name_too_long_for_socks5_is_a_proxy_error() -> None:
    host = ".".join(["a" * 60] * 5)  # 304 bytes; SOCKS5 carries at most 255
    with pytest.raises(ProxyError, match="Cannot send"):
        mock_request([NO_AUTH, CONNECTED, HTTP_OK], f"http://{host}/")


def test_socks5_credentials_of_255_bytes_each_are_sent() -> None:
    backend, response = mock_request(
        [USER_PASS, AUTH_OK, CONNECTED, HTTP_OK], proxy_auth=("u" * 255, "p" * 255)
    )
    assert response.content == HELLO
    assert backend.written[1] == b"\x01\xff" + b"u" * 255 + b"\xff" + b"p" * 255


@pytest.mark.anyio
async def test_async_socks4_local_resolution_failure_is_a_connect_error() -> None:
    backend = AsyncMockBackend([SOCKS4_GRANTED, HTTP_OK])
    async with AsyncSOCKSProxy("socks4://proxy", network_backend=backend) as proxy:
        with pytest.raises(ConnectError):
            await proxy.request("GET", "http://name.invalid/")


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
