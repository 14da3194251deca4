"""HTTP/3 connections (httpcore-http3) against hypercorn serving QUIC and the small aioquic
servers of tests/servers/quic.py. Every behaviour runs with threads (sync) and with asyncio and
trio tasks (tests/helpers.py)."""

from __future__ import annotations

import re
import socket
import ssl
import time
from typing import Any, Dict, List

import anyio
import h3helpers
import helpers
import pytest

import httpcore

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api
h3_server, h3_server_shared, lossy_relay, quic_server = (
    h3helpers.h3_server,
    h3helpers.h3_server_shared,
    h3helpers.lossy_relay,
    h3helpers.quic_server,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

TIMEOUTS = {"timeout": {"connect": 5.0, "read": 10.0, "write": 10.0, "pool": 10.0}}


def h3(api: helpers.API, port: int, ssl_context: Any, **kwargs: Any) -> Any:
    return api._client("HTTP3Connection", h3helpers.origin(port), ssl_context=ssl_context, **kwargs)


async def test_get_and_post(
    api: helpers.API, h3_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    async with h3(api, h3_server.port, client_ssl_context) as conn:
        response = await conn.request("GET", h3_server.url + "/", extensions=TIMEOUTS)
        assert response.status == 200
        assert response.content == b"Hello, world!"
        assert response.extensions["http_version"] == b"HTTP/3"
        assert response.extensions["stream_id"] == 0
        response = await conn.request(
            "POST", h3_server.url + "/echo", content=b"ping" * 1000, extensions=TIMEOUTS
        )
        assert response.status == 200
        assert response.content == b"ping" * 1000
        assert response.extensions["stream_id"] == 4
        response = await conn.request("GET", h3_server.url + "/http_version")
        assert response.content == b"3"
        assert repr(conn) == (
            f"<{api.name('HTTP3Connection')} ['https://127.0.0.1:{h3_server.port}', HTTP/3, "
            "IDLE, Request Count: 3]>"
        )
        assert conn.is_idle() and conn.is_available() and not conn.has_expired()
    assert conn.is_closed()
    assert "CLOSED" in conn.info()


async def test_large_streamed_upload_and_download(
    api: helpers.API, h3_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    chunks = [bytes([i % 251]) * 65536 for i in range(24)]  # 1.5 MiB, more than SEND_BUFFER
    async with h3(api, h3_server.port, client_ssl_context) as conn:
        response = await conn.request(
            "POST", h3_server.url + "/echo", content=api.body(chunks), extensions=TIMEOUTS
        )
        assert response.status == 200
        assert response.content == b"".join(chunks)
        size = 0
        pieces = 0
        async with conn.stream(
            "GET", h3_server.url + "/stream/50/40000", extensions=TIMEOUTS
        ) as response:
            async for chunk in response.aiter_stream():
                size += len(chunk)
                pieces += 1
        assert size == 50 * 40000
        assert pieces > 1  # streamed, not collected


async def test_100_concurrent_requests_share_one_connection(
    api: helpers.API, h3_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    statuses: List[int] = []
    stream_ids: List[int] = []

    async with h3(api, h3_server.port, client_ssl_context) as conn:

        async def one() -> None:
            response = await conn.request("GET", h3_server.url + "/slow/20", extensions=TIMEOUTS)
            statuses.append(response.status)
            stream_ids.append(response.extensions["stream_id"])

        await api.concurrently(*[one for _ in range(100)])
        assert statuses == [200] * 100
        assert sorted(stream_ids) == [4 * i for i in range(100)]
        assert "Request Count: 100" in repr(conn)
        assert conn.is_idle()


async def test_trace_events(
    api: helpers.API, h3_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    events: List[str] = []

    def record(name: str, info: Dict[str, Any]) -> None:
        if not name.endswith(".started"):
            events.append(name)

    extensions = {**TIMEOUTS, "trace": api.trace(record)}
    async with h3(api, h3_server.port, client_ssl_context) as conn:
        await conn.request("POST", h3_server.url + "/echo", content=b"x", extensions=extensions)
    assert events == [
        "http3.send_connection_init.complete",
        "http3.send_request_headers.complete",
        "http3.send_request_body.complete",
        "http3.receive_response_headers.complete",
        "http3.receive_response_body.complete",
        "http3.response_closed.complete",
    ]


async def test_untrusted_certificate_is_a_connect_error(api: helpers.API, h3_server: Any) -> None:
    # The default context trusts certifi's authorities, not the test CA.
    async with h3(api, h3_server.port, None) as conn:
        with pytest.raises(httpcore.ConnectError):
            await conn.request("GET", h3_server.url + "/", extensions=TIMEOUTS)
    assert conn.is_closed()


async def test_unverified_context(api: helpers.API, h3_server: Any) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    async with h3(api, h3_server.port, context) as conn:
        response = await conn.request("GET", h3_server.url + "/", extensions=TIMEOUTS)
        assert response.status == 200


async def test_handshake_timeout(api: helpers.API, client_ssl_context: ssl.SSLContext) -> None:
    # UDP "blocked": a socket that receives the handshake and never answers.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        port = sink.getsockname()[1]
        async with h3(api, port, client_ssl_context) as conn:
            started = time.monotonic()
            with pytest.raises(httpcore.ConnectTimeout, match="timed out"):
                await conn.request(
                    "GET", f"https://127.0.0.1:{port}/", extensions={"timeout": {"connect": 0.5}}
                )
            assert time.monotonic() - started < 3
            assert not conn.is_available()
        assert conn.is_closed()


async def test_nobody_listening_is_a_connect_error(
    api: helpers.API, client_ssl_context: ssl.SSLContext
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The port is closed: the kernel answers with ICMP port unreachable.
    async with h3(api, port, client_ssl_context) as conn:
        with pytest.raises((httpcore.ConnectError, httpcore.ConnectTimeout)):
            await conn.request(
                "GET", f"https://127.0.0.1:{port}/", extensions={"timeout": {"connect": 2.0}}
            )


async def test_mock_backend_handshake_timeout(
    api: helpers.API, client_ssl_context: ssl.SSLContext
) -> None:
    backend = httpcore.AsyncMockBackend([]) if api.is_async else httpcore.MockBackend([])
    async with h3(api, 443, client_ssl_context, network_backend=backend) as conn:
        with pytest.raises(httpcore.ConnectTimeout, match="timed out"):
            await conn.request(
                "GET", "https://127.0.0.1:443/", extensions={"timeout": {"connect": 0.2}}
            )


async def test_bad_request_header_is_a_local_protocol_error(
    api: helpers.API, h3_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    """Checked as for HTTP/2 (tests/test_http2_request_validation.py), before anything is sent."""
    bad = {
        "x-bad": "a\nb",
        "x-null": "a\x00",
        "x name": "v",
        "x-colon:": "v",
        "host": "127.0.0.1\r\nevil: 1",
    }
    async with h3(api, h3_server.port, client_ssl_context) as conn:
        for name, value in bad.items():
            with pytest.raises(httpcore.LocalProtocolError, match=r"^Invalid HTTP/3 request"):
                await conn.request("GET", h3_server.url + "/", headers={name: value})
        response = await conn.request("GET", h3_server.url + "/", extensions=TIMEOUTS)
        assert response.status == 200


def _answer(server: Any, conn: Any, stream_id: int, headers: Dict[bytes, bytes], body: bytes):
    path = headers[b":path"]
    if path == b"/silent":
        return
    if path == b"/reset":
        server.reset(conn, stream_id)
        return
    if path == b"/connection-header":  # connection-specific: malformed in HTTP/3
        server.respond(conn, stream_id, body=b"x", headers=[(b"connection", b"close")])
        return
    if path == b"/short-body":
        server.respond(conn, stream_id, body=b"abc", headers=[(b"content-length", b"10")])
        return
    if path.startswith(b"/field/"):  # /field/<name>/<value>: a response with that field
        name, value = path[len(b"/field/") :].split(b"/")
        server.respond(conn, stream_id, body=b"x", headers=[(name, value)])
        return
    if path == b"/malformed-open":  # a malformed head, and the stream left open
        conn.h3.send_headers(stream_id, [(b":status", b"200"), (b"connection", b"close")])
        return
    if path == b"/goaway":
        # Requests on later streams will not be processed.
        server.goaway(conn, stream_id + 4)
        server.respond(conn, stream_id, body=b"last")
        return
    if getattr(conn, "goaway_sent", False):
        return
    server.respond(conn, stream_id, body=b"ok:" + path + b":" + body)


async def test_read_timeout_fails_only_its_request(
    api: helpers.API, quic_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    server = quic_server(_answer)
    async with h3(api, server.port, client_ssl_context) as conn:
        with pytest.raises(httpcore.ReadTimeout):
            await conn.request("GET", server.url + "/silent", extensions={"timeout": {"read": 0.3}})
        response = await conn.request("GET", server.url + "/fine", extensions=TIMEOUTS)
        assert response.content == b"ok:/fine:"
        assert conn.is_idle() and conn.is_available()


def _recorded(conn: Any, url: str, outcomes: Dict[str, Any]) -> Any:
    """`run(path)`: a task that GETs `url + path` on `conn` and puts its content (or
    exception) in `outcomes[path]`."""

    def run(path: str) -> Any:
        async def one() -> None:
            try:
                response = await conn.request("GET", url + path, extensions=TIMEOUTS)
                outcomes[path] = response.content
            except Exception as exc:
                outcomes[path] = exc

        return one

    return run


async def test_reset_stream_fails_only_its_request(
    api: helpers.API, quic_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    server = quic_server(_answer)
    outcomes: Dict[str, Any] = {}
    async with h3(api, server.port, client_ssl_context) as conn:
        await conn.request("GET", server.url + "/warm-up", extensions=TIMEOUTS)
        run = _recorded(conn, server.url, outcomes)

        await api.concurrently(run("/a"), run("/reset"), run("/b"))
        assert outcomes["/a"] == b"ok:/a:" and outcomes["/b"] == b"ok:/b:"
        assert isinstance(outcomes["/reset"], httpcore.RemoteProtocolError)
        assert conn.is_available()
        response = await conn.request("POST", server.url + "/c", content=b"1", extensions=TIMEOUTS)
        assert response.content == b"ok:/c:1"


async def test_a_malformed_response_fails_only_its_request(
    api: helpers.API, quic_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    # RFC 9114 4.1.2: a stream error (aioquic alone would close the connection).
    server = quic_server(_answer)
    outcomes: Dict[str, Any] = {}
    async with h3(api, server.port, client_ssl_context) as conn:
        await conn.request("GET", server.url + "/warm-up", extensions=TIMEOUTS)
        run = _recorded(conn, server.url, outcomes)

        await api.concurrently(run("/a"), run("/connection-header"), run("/short-body"), run("/b"))
        assert outcomes["/a"] == b"ok:/a:" and outcomes["/b"] == b"ok:/b:"
        header, body = outcomes["/connection-header"], outcomes["/short-body"]
        assert isinstance(header, httpcore.RemoteProtocolError)
        assert re.fullmatch(
            r"Malformed HTTP/3 response on stream \d+: Header b'connection' is "
            "connection-specific",
            str(header),
        )
        assert isinstance(body, httpcore.RemoteProtocolError)
        assert re.fullmatch(
            r"Malformed HTTP/3 response on stream \d+: content-length does not match data size",
            str(body),
        )
        assert conn.is_available()
        response = await conn.request("GET", server.url + "/c", extensions=TIMEOUTS)
        assert response.content == b"ok:/c:"
        assert "Request Count: 6" in repr(conn)


@pytest.mark.parametrize(
    "field",
    [
        "connection/close",
        "keep-alive/timeout=5",
        "proxy-connection/keep-alive",
        "te/trailers",
        "transfer-encoding/trailers",
        "upgrade/h2c",
    ],
)
async def test_connection_specific_fields_are_malformed_whatever_aioquic_checks(
    api: helpers.API,
    quic_server: Any,
    client_ssl_context: ssl.SSLContext,
    monkeypatch: pytest.MonkeyPatch,
    field: str,
) -> None:
    # RFC 9114 4.2. aioquic before 1.7 (all Python 3.9 and 3.10 get) checks none of these but a
    # transfer-encoding other than "trailers"; here aioquic's own check is made to say nothing.
    import aioquic.h3.connection

    monkeypatch.setattr(aioquic.h3.connection, "CONNECTION_SPECIFIC_HEADERS", frozenset(), False)
    server = quic_server(_answer)
    async with h3(api, server.port, client_ssl_context) as conn:
        with pytest.raises(httpcore.RemoteProtocolError) as info:
            await conn.request("GET", server.url + "/field/" + field, extensions=TIMEOUTS)
        name = field.split("/")[0].encode()
        assert re.fullmatch(
            rf"Malformed HTTP/3 response on stream \d+: Header {re.escape(repr(name))} is "
            "connection-specific",
            str(info.value),
        )
        response = await conn.request("GET", server.url + "/after", extensions=TIMEOUTS)
        assert response.content == b"ok:/after:"


async def test_a_malformed_response_still_open_is_stopped_with_h3_message_error(
    api: helpers.API, quic_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    # RFC 9114 4.1.2: H3_MESSAGE_ERROR (0x10e), not the code of a request given up on.
    server = quic_server(_answer)
    async with h3(api, server.port, client_ssl_context) as conn:
        with pytest.raises(httpcore.RemoteProtocolError, match="Malformed HTTP/3 response"):
            await conn.request("GET", server.url + "/malformed-open", extensions=TIMEOUTS)
        # In order after the stop, on the same connection: once answered, the stop arrived.
        response = await conn.request("GET", server.url + "/after", extensions=TIMEOUTS)
        assert response.content == b"ok:/after:"
    stream_id = next(sid for sid, headers in server.requests if headers[b":path"] != b"/after")
    assert server.stops == [(stream_id, 0x10E)]


async def test_goaway_lets_processed_requests_finish_and_refuses_the_rest(
    api: helpers.API, quic_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    def behaviour(server: Any, conn: Any, stream_id: int, headers: Any, body: bytes) -> None:
        if headers[b":path"] == b"/goaway":
            conn.goaway_sent = True
        _answer(server, conn, stream_id, headers, body)

    server = quic_server(behaviour)
    async with h3(api, server.port, client_ssl_context) as conn:
        response = await conn.request("GET", server.url + "/goaway", extensions=TIMEOUTS)
        assert response.content == b"last"
        # The GOAWAY arrived with the response: nothing new goes on this connection.
        assert not conn.is_available()
        with pytest.raises(httpcore.ConnectionNotAvailable):
            await conn.request("GET", server.url + "/after", extensions=TIMEOUTS)
    assert conn.is_closed()


@pytest.mark.parametrize("one_shot", [False, True], ids=["no-body", "one-shot-body"])
async def test_goaway_with_requests_in_flight(
    api: helpers.API, quic_server: Any, client_ssl_context: ssl.SSLContext, one_shot: bool
) -> None:
    received: List[bytes] = []

    def behaviour(server: Any, conn: Any, stream_id: int, headers: Any, body: bytes) -> None:
        received.append(headers[b":path"])
        if len(received) == 3:
            # Stream 4 (the second request) is processed, stream 8 is not.
            server.goaway(conn, 8)
            for sid, (hdrs, _) in sorted(conn.requests.items()):
                if 0 < sid < 8:
                    server.respond(conn, sid, body=hdrs[b":path"])

    server = quic_server(behaviour)
    outcomes: Dict[int, Any] = {}
    async with h3(api, server.port, client_ssl_context) as conn:
        # The handshake first, so that the three requests race on an open connection.
        with pytest.raises(httpcore.ReadTimeout):
            await conn.request("GET", server.url + "/0", extensions={"timeout": {"read": 0.1}})

        def run(i: int) -> Any:
            async def one() -> None:
                url = server.url + f"/{i}"
                try:
                    if one_shot:
                        body = api.body([b"up"])
                        response = await conn.request(
                            "POST", url, content=body, extensions=TIMEOUTS
                        )
                    else:
                        response = await conn.request("GET", url, extensions=TIMEOUTS)
                    outcomes[response.extensions["stream_id"]] = response.content
                except Exception as exc:
                    outcomes[-i] = exc

            return one

        await api.concurrently(run(1), run(2))
        answered = [value for key, value in outcomes.items() if key >= 0]
        refused = [value for key, value in outcomes.items() if key < 0]
        assert len(answered) == 1 and len(refused) == 1, outcomes
        if one_shot:  # its body is gone: not ConnectionNotAvailable, which the pool would retry
            assert type(refused[0]) is httpcore.RemoteProtocolError
            assert str(refused[0]) == (
                "GOAWAY: stream 8 not processed, and the request was not sent again: "
                "its body can be read only once"
            )
        else:
            assert isinstance(refused[0], httpcore.ConnectionNotAvailable)
    assert conn.is_closed()


@pytest.mark.parametrize("flavour", ["asyncio", "trio"])  # tasks are cancelled, not threads
async def test_cancelling_one_request_leaves_the_others_and_the_connection(
    api: helpers.API, h3_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    results: List[bytes] = []
    async with h3(api, h3_server.port, client_ssl_context) as conn:
        await conn.request("GET", h3_server.url + "/", extensions=TIMEOUTS)

        async def slow() -> None:
            response = await conn.request("GET", h3_server.url + "/slow/300", extensions=TIMEOUTS)
            results.append(response.content)

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(slow)
            with anyio.move_on_after(0.1):
                await conn.request("GET", h3_server.url + "/slow/2000", extensions=TIMEOUTS)
        assert results == [b"ok"] * 3
        assert conn.is_available()
        response = await conn.request("GET", h3_server.url + "/", extensions=TIMEOUTS)
        assert response.content == b"Hello, world!"


async def test_a_read_timeout_stops_its_stream_and_the_late_answer_is_dropped(
    api: helpers.API, h3_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    # The timed-out request's stream is stopped (STOP_SENDING) at 50 ms; hypercorn answers it
    # at 300 ms, while the next request (answered at 350 ms or later) waits on the connection.
    async with h3(api, h3_server.port, client_ssl_context) as conn:
        with pytest.raises(httpcore.ReadTimeout):
            await conn.request(
                "GET", h3_server.url + "/slow/300", extensions={"timeout": {"read": 0.05}}
            )
        response = await conn.request("GET", h3_server.url + "/slow/350", extensions=TIMEOUTS)
        assert response.content == b"ok"
        assert conn.is_idle() and conn.is_available()
    async with h3(api, h3_server.port, client_ssl_context) as conn:
        response = await conn.request("GET", h3_server.url + "/", extensions=TIMEOUTS)
        assert response.content == b"Hello, world!"


async def test_close_closes_the_socket(
    api: helpers.API, h3_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    conn = h3(api, h3_server.port, client_ssl_context)
    response = await conn.request("GET", h3_server.url + "/", extensions=TIMEOUTS)
    udp = response.extensions["network_stream"]
    assert udp.get_extra_info("client_addr")[0] == "127.0.0.1"
    await conn.aclose()
    assert conn.is_closed()
    sock = udp.get_extra_info("socket")
    assert sock is None or sock.fileno() == -1
    # The port is free again.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(udp.get_extra_info("client_addr") or ("127.0.0.1", 0))


async def test_requests_complete_over_a_lossy_path(
    api: helpers.API, h3_server: Any, lossy_relay: Any, client_ssl_context: ssl.SSLContext
) -> None:
    relay = lossy_relay(h3_server.port, drop=0.1)
    url = f"https://127.0.0.1:{relay.port}"
    started = time.monotonic()
    async with h3(api, relay.port, client_ssl_context) as conn:
        for i in range(10):
            response = await conn.request("POST", url + "/echo", content=b"%d" % i * 100)
            assert response.content == b"%d" % i * 100
        response = await conn.request("GET", url + "/bytes/200000", extensions=TIMEOUTS)
        assert len(response.content) == 200000
    assert relay.dropped > 5  # loss recovery was exercised
    assert time.monotonic() - started < 30


def test_fd_count_back_to_start(h3_server: Any, client_ssl_context: ssl.SSLContext) -> None:
    # Compared by what each descriptor points to, not counted: servers of earlier tests may
    # still be closing theirs in other threads.
    before = helpers.open_descriptors()
    for _ in range(3):
        origin = h3helpers.origin(h3_server.port)
        with httpcore.HTTP3Connection(origin, ssl_context=client_ssl_context) as c:
            assert c.request("GET", h3_server.url + "/").status == 200
    assert sorted(helpers.open_descriptors() - before) == []


async def test_idle_connection_expires_before_quics_idle_timeout(
    api: helpers.API, h3_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    async with h3(api, h3_server.port, client_ssl_context) as conn:
        await conn.request("GET", h3_server.url + "/", extensions=TIMEOUTS)
        assert not conn.has_expired()
        inner = conn.wrapped if not api.is_async else conn
        deadline = inner._quic.quic._close_at  # aioquic's idle deadline
        assert not inner._has_timed_out(deadline - inner.IDLE_MARGIN - 1)
        assert inner._has_timed_out(deadline - inner.IDLE_MARGIN + 0.5)


# -- a host with several addresses ---------------------------------------------------------


@pytest.fixture
def two_addresses(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """The name "localhost", over UDP, resolves to 127.0.0.2 first, then 127.0.0.1 (where the
    servers are): `socket.getaddrinfo` is what every UDP endpoint resolves with."""
    addresses = ["127.0.0.2", "127.0.0.1"]
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, family: int = 0, kind: int = 0, *args: Any) -> Any:
        if host == "localhost" and kind == socket.SOCK_DGRAM:
            return [
                (socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP, "", (address, port))
                for address in addresses
            ]
        return real(host, port, family, kind, *args)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return addresses


def localhost(api: helpers.API, port: int, ssl_context: Any) -> Any:
    origin = httpcore.Origin(b"https", b"localhost", port)
    return api._client("HTTP3Connection", origin, ssl_context=ssl_context)


async def test_silent_first_address_moves_on_to_the_next(
    api: helpers.API, h3_server: Any, client_ssl_context: ssl.SSLContext, two_addresses: Any
) -> None:
    # The first address swallows every datagram (UDP blocked there): its handshake times
    # out after half of the connect timeout, and the second address answers.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.2", h3_server.port))
        async with localhost(api, h3_server.port, client_ssl_context) as conn:
            started = time.monotonic()
            response = await conn.request(
                "GET",
                f"https://localhost:{h3_server.port}/",
                extensions={"timeout": {"connect": 3.0, "read": 10.0}},
            )
            elapsed = time.monotonic() - started
            assert response.status == 200
            assert response.extensions["http_version"] == b"HTTP/3"
            assert response.extensions["network_stream"].get_extra_info("server_addr") == (
                "127.0.0.1",
                h3_server.port,
            )
            assert 1.4 <= elapsed < 3.0, elapsed
        sink.settimeout(0)
        assert len(sink.recv(65536)) >= 1200  # the first address was tried: an Initial packet


async def test_refusing_first_address_moves_on_at_once(
    api: helpers.API, h3_server: Any, client_ssl_context: ssl.SSLContext, two_addresses: Any
) -> None:
    # Nothing listens on the first address: ICMP port unreachable ends that attempt early.
    async with localhost(api, h3_server.port, client_ssl_context) as conn:
        started = time.monotonic()
        response = await conn.request(
            "GET",
            f"https://localhost:{h3_server.port}/",
            extensions={"timeout": {"connect": 10.0}},
        )
        assert response.status == 200
        assert time.monotonic() - started < 4.0  # not half of the connect timeout


async def test_every_address_silent_is_a_connect_timeout_within_the_timeout(
    api: helpers.API, client_ssl_context: ssl.SSLContext, two_addresses: Any
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first:
        first.bind(("127.0.0.2", 0))
        port = first.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second:
            second.bind(("127.0.0.1", port))
            async with localhost(api, port, client_ssl_context) as conn:
                started = time.monotonic()
                with pytest.raises(httpcore.ConnectTimeout, match="timed out"):
                    await conn.request(
                        "GET",
                        f"https://localhost:{port}/",
                        extensions={"timeout": {"connect": 1.0}},
                    )
                assert time.monotonic() - started < 2.0
                assert not conn.is_available()
            assert conn.is_closed()
            for sink in (first, second):  # both were tried, in order
                sink.settimeout(0)
                assert sink.recv(65536)


# -- download backpressure -----------------------------------------------------------------


async def test_a_response_not_read_stops_the_download(
    api: helpers.API, quic_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    # The server hands 16 MiB to QUIC at once. While the caller reads none of it, other
    # requests keep reading the connection: the big stream's receive window stops growing
    # (aioquic alone would double it as data arrives, letting the whole body in). Reading
    # on opens it again, to the last byte.
    size = 16 << 20
    from httpcore.http3._quic import STREAM_WINDOW as window

    def behaviour(server: Any, conn: Any, stream_id: int, headers: Any, body: bytes) -> None:
        server.respond(conn, stream_id, body=b"x" * size if headers[b":path"] == b"/big" else b"")

    server = quic_server(behaviour)
    async with h3(api, server.port, client_ssl_context) as conn:
        async with conn.stream("GET", server.url + "/big", extensions=TIMEOUTS) as response:
            chunks = response.aiter_stream()
            received = len(await chunks.__anext__())
            stream = conn._streams[response.extensions["stream_id"]]
            before = -1
            for _ in range(200):  # until the server has sent all it may
                small = await conn.request("GET", server.url + "/small", extensions=TIMEOUTS)
                assert small.status == 200
                if stream.received == before:
                    break
                before = stream.received
            assert stream.paced
            assert window // 4 < stream.received <= 2 * window + received, stream.received
            async for chunk in chunks:
                received += len(chunk)
        assert received == size
        assert conn.is_idle()
