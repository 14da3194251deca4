"""The `trace` extension (API.md §7.2, §9) and the DEBUG log records (§10)."""

from __future__ import annotations

import logging

import helpers
import pytest

import httpcore

pytestmark = pytest.mark.anyio

# The harness fixtures (sync, asyncio and trio flavours).
anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

HELLO = [
    b"HTTP/1.1 200 OK\r\n",
    b"Content-Type: plain/text\r\n",
    b"Content-Length: 13\r\n",
    b"\r\n",
    b"Hello, world!",
]

CONNECT_AND_TLS = [
    "connection.connect_tcp.started",
    "connection.connect_tcp.complete",
    "connection.start_tls.started",
    "connection.start_tls.complete",
]
SEND = [
    "http11.send_request_headers.started",
    "http11.send_request_headers.complete",
    "http11.send_request_body.started",
    "http11.send_request_body.complete",
    "http11.receive_response_headers.started",
]
BODY = ["http11.receive_response_body.started", "http11.receive_response_body.complete"]
CLOSED = ["http11.response_closed.started", "http11.response_closed.complete"]
HTTPS_SEQUENCE = [
    *CONNECT_AND_TLS,
    *SEND,
    "http11.receive_response_headers.complete",
    *BODY,
    *CLOSED,
]


class Recorder:
    def __init__(self, api):
        self.events = []
        self.callback = api.trace(self.record)

    def record(self, name, info):
        self.events.append((name, info))

    @property
    def names(self):
        return [name for name, _ in self.events]

    def info(self, name):
        return dict(self.events)[name]

    @property
    def extensions(self):
        return {"trace": self.callback}


async def test_https_request_sequence_and_info(api):
    trace = Recorder(api)
    backend = api.cls("MockBackend")(HELLO)
    async with api.ConnectionPool(network_backend=backend) as pool:
        response = await pool.request(
            "GET",
            "https://example.com/",
            extensions={**trace.extensions, "timeout": {"connect": 5.0}},
        )
        assert response.status == 200
    assert trace.names == HTTPS_SEQUENCE

    assert trace.info("connection.connect_tcp.started") == {
        "host": "example.com",
        "port": 443,
        "local_address": None,
        "timeout": 5.0,
        "socket_options": None,
    }
    stream = trace.info("connection.connect_tcp.complete")["return_value"]
    assert repr(stream) == f"<httpcore.{api.name('MockStream')}>"
    tls = trace.info("connection.start_tls.started")
    assert set(tls) == {"ssl_context", "server_hostname", "timeout"}
    assert tls["server_hostname"] == "example.com" and tls["timeout"] == 5.0
    assert trace.info("connection.start_tls.complete") == {"return_value": stream}

    request_info = trace.info("http11.send_request_headers.started")
    assert list(request_info) == ["request"]
    assert repr(request_info["request"]) == "<Request [b'GET']>"
    for step in ("send_request_body", "receive_response_headers", "receive_response_body"):
        assert trace.info(f"http11.{step}.started") == request_info
    assert trace.info("http11.send_request_headers.complete") == {"return_value": None}
    assert trace.info("http11.receive_response_headers.complete") == {
        "return_value": (
            b"HTTP/1.1",
            200,
            b"OK",
            [(b"Content-Type", b"plain/text"), (b"Content-Length", b"13")],
        )
    }
    assert trace.info("http11.response_closed.started") == {}
    assert trace.info("http11.response_closed.complete") == {"return_value": None}


async def test_plain_http_sequence_has_no_tls(api):
    trace = Recorder(api)
    async with api.ConnectionPool(network_backend=api.cls("MockBackend")(HELLO)) as pool:
        await pool.request("GET", "http://example.com/", extensions=trace.extensions)
    assert trace.names == HTTPS_SEQUENCE[:2] + HTTPS_SEQUENCE[4:]


async def test_second_request_on_a_connection_has_no_connect_events(api):
    trace = Recorder(api)
    async with api.ConnectionPool(network_backend=api.cls("MockBackend")(HELLO * 2)) as pool:
        await pool.request("GET", "https://example.com/")
        await pool.request("GET", "https://example.com/", extensions=trace.extensions)
    assert trace.names == HTTPS_SEQUENCE[4:]


async def test_invalid_http_sequence(api):
    trace = Recorder(api)
    backend = api.cls("MockBackend")([b"Wait, this isn't valid HTTP!", b""])
    async with api.ConnectionPool(network_backend=backend) as pool:
        with pytest.raises(httpcore.RemoteProtocolError):
            await pool.request("GET", "https://example.com/", extensions=trace.extensions)
    assert trace.names == [
        *CONNECT_AND_TLS,
        *SEND,
        "http11.receive_response_headers.failed",
        *CLOSED,
    ]
    failed = trace.info("http11.receive_response_headers.failed")
    assert isinstance(failed["exception"], httpcore.RemoteProtocolError)


async def test_connect_failure_sequence(api):
    trace = Recorder(api)
    backend = api.backend(HELLO, fail_connects=1)
    async with api.ConnectionPool(network_backend=backend) as pool:
        with pytest.raises(httpcore.ConnectError):
            await pool.request("GET", "https://example.com/", extensions=trace.extensions)
    assert trace.names == ["connection.connect_tcp.started", "connection.connect_tcp.failed"]
    assert isinstance(
        trace.info("connection.connect_tcp.failed")["exception"], httpcore.ConnectError
    )


async def test_upgrade_via_stream_sequence(api):
    trace = Recorder(api)
    backend = api.cls("MockBackend")(
        [b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: custom\r\n\r\n"]
    )
    headers = {"Connection": "upgrade", "Upgrade": "custom"}
    async with api.ConnectionPool(network_backend=backend) as pool:
        async with pool.stream(
            "GET", "https://example.com/", headers=headers, extensions=trace.extensions
        ) as response:
            assert response.status == 101
            assert "network_stream" in response.extensions
    assert trace.names == [name for name in HTTPS_SEQUENCE if name not in BODY]


async def test_trace_callback_of_the_wrong_kind(api):
    if api.is_async:
        message = (
            "If you're using an asynchronous interface, the callback of the `trace` extension "
            "should be an asynchronous function rather than a normal function."
        )
    else:
        message = (
            "If you are using a synchronous interface, the callback of the `trace` extension "
            "should be a normal function instead of an asynchronous function."
        )
    extensions = {"trace": api.wrong_kind_trace()}
    async with api.ConnectionPool(network_backend=api.backend(HELLO)) as pool:
        with pytest.raises(TypeError) as exc_info:
            await pool.request("GET", "https://example.com/", extensions=extensions)
        assert str(exc_info.value) == message
        assert pool.connections == []

    # On an established pooled connection: the connection must not stay ACTIVE for good.
    async with api.ConnectionPool(network_backend=api.backend(HELLO * 2)) as pool:
        await pool.request("GET", "https://example.com/")
        with pytest.raises(TypeError) as exc_info:
            await pool.request("GET", "https://example.com/", extensions=extensions)
        assert str(exc_info.value) == message
        assert pool.connections == []

    # Directly on a connection, once connected: raised from the first http11 step.
    conn = api.HTTP11Connection(
        httpcore.Origin(b"https", b"example.com", 443), api.mock_stream(HELLO)
    )
    with pytest.raises(TypeError) as exc_info:
        await conn.request("GET", "https://example.com/", extensions=extensions)
    assert str(exc_info.value) == message
    assert conn.is_closed()


def log_lines(caplog):
    return [
        f"{r.name} {r.levelname} {r.getMessage()}"
        for r in caplog.records
        if r.name.startswith("httpcore")
    ]


async def test_debug_log_records(api, caplog):
    caplog.set_level(logging.DEBUG)
    backend = api.cls("MockBackend")(HELLO)
    async with api.ConnectionPool(network_backend=backend) as pool:
        await pool.request("GET", "http://example.com/")
    stream = f"<httpcore.{api.name('MockStream')}>"
    request = "request=<Request [b'GET']>"
    assert log_lines(caplog) == [
        "httpcore.connection DEBUG connect_tcp.started host='example.com' port=80 "
        "local_address=None timeout=None socket_options=None",
        f"httpcore.connection DEBUG connect_tcp.complete return_value={stream}",
        f"httpcore.http11 DEBUG send_request_headers.started {request}",
        "httpcore.http11 DEBUG send_request_headers.complete",
        f"httpcore.http11 DEBUG send_request_body.started {request}",
        "httpcore.http11 DEBUG send_request_body.complete",
        f"httpcore.http11 DEBUG receive_response_headers.started {request}",
        "httpcore.http11 DEBUG receive_response_headers.complete return_value="
        "(b'HTTP/1.1', 200, b'OK', [(b'Content-Type', b'plain/text'), "
        "(b'Content-Length', b'13')])",
        f"httpcore.http11 DEBUG receive_response_body.started {request}",
        "httpcore.http11 DEBUG receive_response_body.complete",
        "httpcore.http11 DEBUG response_closed.started",
        "httpcore.http11 DEBUG response_closed.complete",
        "httpcore.connection DEBUG close.started",
        "httpcore.connection DEBUG close.complete",
    ]


async def test_debug_log_failure_record(api, caplog):
    caplog.set_level(logging.DEBUG)
    async with api.ConnectionPool(network_backend=api.cls("MockBackend")([])) as pool:
        with pytest.raises(httpcore.RemoteProtocolError):
            await pool.request("GET", "http://example.com/")
    assert (
        "httpcore.http11 DEBUG receive_response_headers.failed exception="
        "RemoteProtocolError('Server disconnected without sending a response.')"
    ) in log_lines(caplog)


async def test_logging_and_tracing_together(api, caplog):
    caplog.set_level(logging.DEBUG)
    trace = Recorder(api)
    async with api.ConnectionPool(network_backend=api.cls("MockBackend")(HELLO)) as pool:
        await pool.request("GET", "https://example.com/", extensions=trace.extensions)
    assert trace.names == HTTPS_SEQUENCE
    lines = log_lines(caplog)
    # One record per trace event, plus the connection close that has no request to trace.
    assert [line.split()[2] for line in lines] == [
        name.split(".", 1)[1] for name in HTTPS_SEQUENCE
    ] + ["close.started", "close.complete"]
    assert all(record.levelno == logging.DEBUG for record in caplog.records)
    assert "connection.close.started" not in trace.names


async def test_nothing_logged_above_debug(api, caplog):
    caplog.set_level(logging.INFO)
    async with api.ConnectionPool(network_backend=api.cls("MockBackend")(HELLO)) as pool:
        await pool.request("GET", "https://example.com/")
    assert log_lines(caplog) == []
