"""`retries=` covers a failed or timed-out TLS handshake like a failed TCP connect (API.md §3.6).

A real TLS server that spoils the handshake of its first connections: each retry starts again
from the TCP connect, with the same backoff and `connection.retry` events.
"""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any, Callable, Dict, List, Tuple

import helpers
import pytest
from conftest import make_server_ssl_context
from servers import RawServer

import httpcore

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

RawFactory = Callable[..., RawServer]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def spoiling_server(
    raw_server: RawFactory, certfile: str, spoiled: int, *, stall: bool = False
) -> RawServer:
    """TLS on a plain listener: the first `spoiled` connections are closed before the handshake
    (`stall`: left unanswered until the client gives up); later ones are served."""
    context = make_server_ssl_context(certfile)
    lock = threading.Lock()
    accepted = [0]

    def handler(conn: socket.socket, server: RawServer) -> None:
        with lock:
            index = accepted[0]
            accepted[0] += 1
        if index < spoiled:
            if stall:
                conn.recv(65536)  # the ClientHello; then wait for the client to hang up
                conn.recv(65536)
            conn.close()
            return
        tls = context.wrap_socket(conn, server_side=True)
        try:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                data = tls.recv(65536)
                if not data:
                    return
                head += data
            tls.sendall(OK)
        finally:
            tls.close()

    return raw_server(handler)


def names(events: List[Tuple[str, Dict[str, Any]]]) -> List[str]:
    return [name for name, _ in events]


@pytest.mark.anyio
async def test_failed_handshake_is_retried_from_the_tcp_connect(
    api: helpers.API,
    raw_server: RawFactory,
    server_cert_file: str,
    client_ssl_context: ssl.SSLContext,
) -> None:
    srv = spoiling_server(raw_server, server_cert_file, spoiled=1)
    events: List[Tuple[str, Dict[str, Any]]] = []
    url = f"https://127.0.0.1:{srv.port}/"
    async with api.ConnectionPool(ssl_context=client_ssl_context, retries=1) as pool:
        response = await pool.request(
            "GET", url, extensions={"trace": api.trace(lambda n, i: events.append((n, i)))}
        )
        assert response.status == 200
        assert response.content == b"ok"
    assert srv.connections == 2
    assert names(events)[:10] == [
        "connection.connect_tcp.started",
        "connection.connect_tcp.complete",
        "connection.start_tls.started",
        "connection.start_tls.failed",
        "connection.retry.started",
        "connection.retry.complete",
        "connection.connect_tcp.started",
        "connection.connect_tcp.complete",
        "connection.start_tls.started",
        "connection.start_tls.complete",
    ]
    failed = dict(events)["connection.start_tls.failed"]["exception"]
    assert isinstance(failed, httpcore.ConnectError)
    # The retry event carries the arguments of the step that failed: the handshake's.
    retry_info = dict(events)["connection.retry.started"]
    assert retry_info == dict(events)["connection.start_tls.started"]
    assert retry_info["server_hostname"] == "127.0.0.1"


@pytest.mark.anyio
async def test_handshake_timeout_is_retried(
    api: helpers.API,
    raw_server: RawFactory,
    server_cert_file: str,
    client_ssl_context: ssl.SSLContext,
) -> None:
    srv = spoiling_server(raw_server, server_cert_file, spoiled=1, stall=True)
    url = f"https://127.0.0.1:{srv.port}/"
    async with api.ConnectionPool(ssl_context=client_ssl_context, retries=1) as pool:
        response = await pool.request("GET", url, extensions={"timeout": {"connect": 0.5}})
        assert response.status == 200
    assert srv.connections == 2


@pytest.mark.anyio
async def test_retries_exhausted_by_handshakes_raise_the_last_error(
    api: helpers.API,
    raw_server: RawFactory,
    server_cert_file: str,
    client_ssl_context: ssl.SSLContext,
) -> None:
    srv = spoiling_server(raw_server, server_cert_file, spoiled=100)
    events: List[Tuple[str, Dict[str, Any]]] = []
    url = f"https://127.0.0.1:{srv.port}/"
    async with api.ConnectionPool(ssl_context=client_ssl_context, retries=2) as pool:
        with pytest.raises(httpcore.ConnectError):
            await pool.request(
                "GET", url, extensions={"trace": api.trace(lambda n, i: events.append((n, i)))}
            )
        assert pool.connections == []
    assert srv.connections == 3
    assert names(events).count("connection.start_tls.failed") == 3
    assert names(events).count("connection.retry.complete") == 2


@pytest.mark.anyio
async def test_handshake_backoff_delays(api: helpers.API) -> None:
    # Mock streams whose handshake fails: the delays are the TCP connect's (0, 0.5, 1.0).
    backend = api.backend([b""])
    original = backend._connect
    streams: List[Any] = []

    def connect(kwargs: Dict[str, Any]) -> Any:
        stream = original(kwargs)
        streams.append(stream)

        def fail(kwargs: Dict[str, Any]) -> Any:
            raise httpcore.ConnectError("handshake failed")

        stream._record_tls = fail
        return stream

    backend._connect = connect
    async with api.ConnectionPool(retries=3, network_backend=backend) as pool:
        with pytest.raises(httpcore.ConnectError, match="handshake failed"):
            await pool.request("GET", "https://example.com/")
    assert len(streams) == 4
    assert backend.sleeps == [0, 0.5, 1.0]
    assert all(stream.closed for stream in streams)
