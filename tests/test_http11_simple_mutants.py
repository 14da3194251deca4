"""The HTTP/1.1 fast path (`_http11_simple.py`): what mutation testing (scripts/mutation) found
untested. Which heads and requests the fast path takes (a declined case still works, through
h11, but slower), which statuses have no body, and `Connection: close` read exactly."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable, List, Optional, Tuple

import h11
import helpers
import pytest
from servers import RawServer, Responder

import httpcore
from httpcore.base._http11_simple import (
    connection_close,
    direct_body_length,
    parse_simple_head,
    serialize_simple_request,
)

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

Headers = List[Tuple[bytes, bytes]]


def h11_bytes(method: bytes, target: bytes, headers: Headers, content: bytes) -> bytes:
    conn = h11.Connection(h11.CLIENT)
    data = conn.send(h11.Request(method=method, target=target, headers=headers))
    assert data is not None
    if content:
        data += conn.send(h11.Data(data=content)) or b""
    return data + (conn.send(h11.EndOfMessage()) or b"")


@pytest.mark.parametrize(
    ("method", "headers", "content"),
    [
        (b"GET", [(b"Host", b"example.com")], b""),
        (b"GET", [(b"Accept", b"*/*"), (b"Host", b"example.com"), (b"User-Agent", b"t/1")], b""),
        (b"POST", [(b"Host", b"example.com"), (b"Content-Length", b"3")], b"abc"),
        (b"PUT", [(b"Host", b"example.com"), (b"Content-Length", b"0")], b""),
    ],
    ids=["get", "host-not-first", "post-with-length", "empty-body-with-length"],
)
def test_common_requests_take_the_fast_path(
    method: bytes, headers: Headers, content: bytes
) -> None:
    url = httpcore.URL(scheme=b"http", host=b"example.com", target=b"/a?b=c")
    request = httpcore.Request(method, url, headers=headers)
    data = serialize_simple_request(request, content)
    # Taken (not None), and written as h11 writes it (Host first).
    assert data == h11_bytes(method, b"/a?b=c", headers, content)


@pytest.mark.parametrize("status", [200, 203, 205, 299, 303, 305, 404, 599])
def test_final_statuses_with_a_content_length_take_the_fast_path(status: int) -> None:
    head = b"HTTP/1.1 %d X\r\nContent-Length: 2\r\nServer: s" % status
    assert parse_simple_head(head) == (
        b"1.1",
        status,
        b"X",
        [(b"Content-Length", b"2"), (b"Server", b"s")],
        2,
    )


@pytest.mark.parametrize("status", [100, 199, 204, 304])
def test_interim_and_bodiless_statuses_go_to_h11(status: int) -> None:
    # A 1xx is not the final response; a 204 or 304 has no body whatever its Content-Length.
    assert parse_simple_head(b"HTTP/1.1 %d X\r\nContent-Length: 2" % status) is None


def h11_event(status: int, headers: Headers) -> Any:
    """What `direct_body_length` reads of an h11 `Response` (names lower-cased by h11)."""
    return SimpleNamespace(status_code=status, headers=headers)


@pytest.mark.parametrize(
    ("method", "status", "headers", "expected"),
    [
        (b"GET", 200, [(b"server", b"s"), (b"content-length", b"5"), (b"x-a", b"1")], 5),
        (b"GET", 303, [(b"content-length", b"0")], 0),
        (b"GET", 205, [(b"content-length", b"0")], 0),
        (b"GET", 305, [(b"content-length", b"3")], 3),
        (b"GET", 203, [(b"content-length", b"3")], 3),
        (b"GET", 204, [(b"content-length", b"2")], None),
        (b"GET", 304, [(b"content-length", b"2")], None),
        (b"HEAD", 200, [(b"content-length", b"2")], None),
        (b"GET", 200, [(b"content-length", b"2"), (b"transfer-encoding", b"chunked")], None),
        (b"GET", 200, [(b"server", b"s")], None),
    ],
)
def test_direct_body_length(
    method: bytes, status: int, headers: Headers, expected: Optional[int]
) -> None:
    request = httpcore.Request(method, "http://example.com/")
    assert direct_body_length(request, h11_event(status, headers)) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"Connection", b"close")], True),
        ([(b"connection", b"Keep-Alive, Close")], True),
        ([(b"Set-Cookie", b"a=b")], False),  # a ten-letter name
        ([(b"X-Note", b"closed")], False),
        ([(b"Connection", b"keep-alive")], False),
    ],
)
def test_connection_close_is_the_connection_header_only(headers: Headers, expected: bool) -> None:
    assert connection_close(headers) is expected


@pytest.mark.anyio
async def test_a_response_mentioning_close_elsewhere_keeps_the_connection(
    api: Any, raw_server: Callable[..., RawServer]
) -> None:
    answer = b"HTTP/1.1 200 OK\r\nSet-Cookie: state=closed\r\nContent-Length: 2\r\n\r\nok"
    srv = raw_server(Responder([answer, answer]))
    async with api.ConnectionPool() as pool:
        for _ in range(2):
            assert (await pool.request("GET", srv.url + "/")).content == b"ok"
        assert len(pool.connections) == 1
    assert srv.connections == 1
