"""The fast path reads `Connection: close` from the response head's bytes (`head_says_close`);
it must decide exactly as `connection_close` does over the parsed fields."""

from __future__ import annotations

import itertools

import pytest

from httpcore.base._http11_simple import connection_close, head_says_close, parse_simple_head

FIELDS = [
    b"Connection: close",
    b"connection: CLOSE",
    b"Connection: keep-alive",
    b"Connection: keep-alive, close",
    b"Connection:close",
    b"Connection:   Upgrade,  Close  ",
    b"Connection: closed",
    b"X-Connection: close",
    b"Connections: close",
    b"Via: close",
    b"X-A: connection: close",
    b"Server: nginx",
]


@pytest.mark.parametrize("fields", list(itertools.combinations(FIELDS, 2)) + [(f,) for f in FIELDS])
def test_head_says_close_agrees_with_the_parsed_fields(fields: tuple) -> None:
    head = b"\r\n".join([b"HTTP/1.1 200 OK", *fields, b"Content-Length: 0"])
    parsed = parse_simple_head(head)
    assert parsed is not None
    buffer = head + b"\r\n\r\nbody bytes: \r\nconnection: close"
    assert head_says_close(buffer, len(head)) == connection_close(parsed[3])
