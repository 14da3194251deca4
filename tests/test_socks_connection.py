"""The SOCKS connection and proxy pool around the handshake, over mock backends: TLS and SNI
through the tunnel, retries and the handshake's deadline, connection state, HTTP/2, trace events
and logging, the constructor's arguments and imports; and the async (asyncio and trio) mock
cases."""

from __future__ import annotations

import logging
import time
from typing import Any, List, Optional, Tuple

import pytest
import socks_helpers
from socks_helpers import (
    AUTH_FAILED,
    AUTH_OK,
    CONNECTED,
    HELLO,
    HTTP_OK,
    NO_AUTH,
    REFUSED,
    SOCKS4_GRANTED,
    USER_PASS,
    RecordingBackend,
    RecordingStream,
)

import httpcore.socks
from httpcore.base import (
    AsyncMockBackend,
    AsyncMockStream,
    ConnectError,
    ConnectionPool,
    ConnectTimeout,
    Origin,
    ProxyError,
    SyncBackend,
)
from httpcore.socks import AsyncSOCKSProxy, Socks5Connection, SOCKSProxy

anyio_backend = socks_helpers.anyio_backend


# -- mock backends: the connection around the handshake -----------------------------------------


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


@pytest.mark.anyio
async def test_async_socks4_local_resolution_failure_is_a_connect_error() -> None:
    backend = AsyncMockBackend([SOCKS4_GRANTED, HTTP_OK])
    async with AsyncSOCKSProxy("socks4://proxy", network_backend=backend) as proxy:
        with pytest.raises(ConnectError):
            await proxy.request("GET", "http://name.invalid/")
