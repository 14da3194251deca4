"""HTTPConnection / AsyncHTTPConnection over recording mock backends (API.md §4.2, §3.6)."""

from __future__ import annotations

import socket
import ssl

import helpers
import pytest
from helpers import origin

import httpcore

pytestmark = pytest.mark.anyio

# The harness fixtures (sync, asyncio and trio flavours).
anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

HELLO = [b"HTTP/1.1 200 OK\r\nContent-Type: plain/text\r\nContent-Length: 13\r\n\r\nHello, world!"]


async def test_connects_on_first_request(api):
    backend = api.backend(HELLO)
    conn = api.HTTPConnection(origin(), network_backend=backend)
    name = api.name("HTTPConnection")
    assert repr(conn) == f"<{name} [CONNECTING]>"
    assert conn.info() == "CONNECTING"
    assert not conn.is_available()
    assert not conn.has_expired() and not conn.is_idle() and not conn.is_closed()
    assert backend.connects == []

    async with conn as c:
        async with c.stream("GET", "https://example.com/") as response:
            assert repr(conn) == (
                f"<{name} ['https://example.com:443', HTTP/1.1, ACTIVE, Request Count: 1]>"
            )
            assert await response.aread() == b"Hello, world!"
        assert repr(conn) == (
            f"<{name} ['https://example.com:443', HTTP/1.1, IDLE, Request Count: 1]>"
        )
        assert conn.info() == "'https://example.com:443', HTTP/1.1, IDLE, Request Count: 1"
        assert conn.is_available() and conn.is_idle()
        assert not conn.has_expired() and not conn.is_closed()
    assert conn.is_closed()
    assert backend.streams[0].closed

    assert backend.connects == [
        {
            "host": "example.com",
            "port": 443,
            "timeout": None,
            "local_address": None,
            "socket_options": None,
        }
    ]
    [tls] = backend.streams[0].tls
    assert tls["server_hostname"] == "example.com" and tls["timeout"] is None
    assert isinstance(tls["ssl_context"], ssl.SSLContext)
    assert backend.streams[0].data == b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"


async def test_plain_http_does_not_start_tls(api):
    backend = api.backend(HELLO)
    conn = api.HTTPConnection(origin("http://example.com:80"), network_backend=backend)
    response = await conn.request("GET", "http://example.com/")
    assert response.status == 200
    assert backend.streams[0].tls == []
    assert backend.connects[0]["port"] == 80


async def test_wss_starts_tls(api):
    backend = api.backend(HELLO)
    conn = api.HTTPConnection(origin("wss://example.com:443"), network_backend=backend)
    await conn.request("GET", "wss://example.com/")
    assert len(backend.streams[0].tls) == 1


async def test_connect_options_are_forwarded(api):
    backend = api.backend(HELLO)
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    context = ssl.create_default_context()
    conn = api.HTTPConnection(
        origin(),
        ssl_context=context,
        local_address="0.0.0.0",
        socket_options=options,
        network_backend=backend,
    )
    extensions = {"timeout": {"connect": 1.5, "read": 2.0}, "sni_hostname": "sni.example.org"}
    await conn.request("GET", "https://example.com/", extensions=extensions)
    assert backend.connects == [
        {
            "host": "example.com",
            "port": 443,
            "timeout": 1.5,
            "local_address": "0.0.0.0",
            "socket_options": options,
        }
    ]
    assert backend.streams[0].tls == [
        {"ssl_context": context, "server_hostname": "sni.example.org", "timeout": 1.5}
    ]


async def test_unix_domain_socket(api):
    backend = api.backend(HELLO)
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    conn = api.HTTPConnection(
        origin("http://localhost:80"),
        uds="/tmp/does-not-matter.sock",
        socket_options=options,
        network_backend=backend,
    )
    extensions = {"timeout": {"connect": 3.0}}
    response = await conn.request("GET", "http://localhost/", extensions=extensions)
    assert response.status == 200
    assert backend.connects == [
        {"path": "/tmp/does-not-matter.sock", "timeout": 3.0, "socket_options": options}
    ]


async def test_origin_mismatch(api):
    backend = api.backend(HELLO)
    conn = api.HTTPConnection(origin(), network_backend=backend)
    with pytest.raises(RuntimeError) as exc_info:
        await conn.request("GET", "https://other.com/")
    assert str(exc_info.value) == (
        "Attempted to send request to https://other.com:443 on connection to "
        "https://example.com:443"
    )
    assert backend.connects == []
    assert conn.can_handle_request(origin())
    assert not conn.can_handle_request(origin("http://example.com:443"))


async def test_failed_connect_marks_the_connection_failed(api):
    backend = api.backend(HELLO, fail_connects=1)
    conn = api.HTTPConnection(origin(), network_backend=backend)
    with pytest.raises(httpcore.ConnectError) as exc_info:
        await conn.request("GET", "https://example.com/")
    assert str(exc_info.value) == "[Errno 111] Connection refused"
    assert conn.info() == "CONNECTION FAILED"
    assert repr(conn) == f"<{api.name('HTTPConnection')} [CONNECTION FAILED]>"
    assert conn.is_closed() and conn.has_expired() and conn.is_idle()
    assert not conn.is_available()


async def test_connect_timeout_marks_the_connection_failed(api):
    backend = api.backend(HELLO, fail_connects=1, error=httpcore.ConnectTimeout)
    conn = api.HTTPConnection(origin(), network_backend=backend)
    with pytest.raises(httpcore.ConnectTimeout):
        await conn.request("GET", "https://example.com/")
    assert conn.is_closed()


@pytest.mark.parametrize("failures", [1, 2, 3])
async def test_retries_with_backoff(api, failures):
    backend = api.backend(HELLO, fail_connects=failures)
    events = []
    conn = api.HTTPConnection(origin(), retries=3, network_backend=backend)
    extensions = {"trace": api.trace(lambda name, info: events.append(name))}
    response = await conn.request("GET", "https://example.com/", extensions=extensions)
    assert response.status == 200
    assert backend.sleeps == [0, 0.5, 1.0][:failures]
    assert len(backend.connects) == failures + 1
    expected = [
        "connection.connect_tcp.started",
        "connection.connect_tcp.failed",
        "connection.retry.started",
        "connection.retry.complete",
    ] * failures + ["connection.connect_tcp.started", "connection.connect_tcp.complete"]
    assert events[: len(expected)] == expected


async def test_retries_exhausted(api):
    backend = api.backend(HELLO, fail_connects=5)
    conn = api.HTTPConnection(origin(), retries=4, network_backend=backend)
    with pytest.raises(httpcore.ConnectError):
        await conn.request("GET", "https://example.com/")
    assert backend.sleeps == [0, 0.5, 1.0, 2.0]
    assert len(backend.connects) == 5
    assert conn.info() == "CONNECTION FAILED"


async def test_retry_event_info_is_the_connect_info(api):
    backend = api.backend(HELLO, fail_connects=1)
    events = []
    conn = api.HTTPConnection(origin(), retries=1, network_backend=backend)
    extensions = {"trace": api.trace(lambda name, info: events.append((name, info)))}
    await conn.request("GET", "https://example.com/", extensions=extensions)
    started = dict(events)["connection.connect_tcp.started"]
    assert set(started) == {"host", "port", "local_address", "timeout", "socket_options"}
    assert dict(events)["connection.retry.started"] == started
    assert dict(events)["connection.retry.complete"] == {"return_value": None}


async def test_no_retry_without_retries(api):
    backend = api.backend(HELLO, fail_connects=1)
    conn = api.HTTPConnection(origin(), network_backend=backend)
    with pytest.raises(httpcore.ConnectError):
        await conn.request("GET", "https://example.com/")
    assert backend.sleeps == [] and len(backend.connects) == 1


async def test_http2_connection_before_connecting_is_available(api):
    backend = api.backend(HELLO)
    assert api.HTTPConnection(origin(), http2=True, network_backend=backend).is_available()
    http = origin("http://example.com:80")
    assert not api.HTTPConnection(http, http2=True, network_backend=backend).is_available()
    assert api.HTTPConnection(http, http1=False, http2=True, network_backend=backend).is_available()


async def test_close_before_connecting_is_a_noop(api):
    conn = api.HTTPConnection(origin(), network_backend=api.backend(HELLO))
    await conn.aclose()
    assert conn.info() == "CONNECTING"


async def test_server_disconnect_is_a_protocol_error(api):
    backend = api.backend([])
    conn = api.HTTPConnection(origin(), network_backend=backend)
    with pytest.raises(httpcore.RemoteProtocolError):
        await conn.request("GET", "https://example.com/")
    assert conn.is_closed()
    assert repr(conn) == (
        f"<{api.name('HTTPConnection')} ['https://example.com:443', HTTP/1.1, CLOSED, "
        "Request Count: 1]>"
    )
