"""HTTP/2 request heads that would be malformed on the wire are refused before anything is sent
(RFC 9113 §8.2.1, §8.3.1), against a real HTTP/2 server (hypercorn, prior knowledge), in every
flavour. The connection stays usable: the next valid request is served on it."""

from __future__ import annotations

import json
from typing import Any, List, Tuple

import helpers
import pytest

import httpcore

pytestmark = pytest.mark.anyio

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

VALUE_ERROR = "Invalid HTTP/2 request header value for {name!r}: NUL, CR and LF are not allowed."
PSEUDO_ERROR = (
    "Invalid HTTP/2 request: NUL, CR and LF are not allowed in the method, the Host header or "
    "the target."
)


@pytest.mark.parametrize(
    "headers, message",
    [
        ([(b"X-Smuggle", b"a\r\nEvil: 1")], VALUE_ERROR.format(name=b"x-smuggle")),
        ([(b"X-Lf", b"a\nb")], VALUE_ERROR.format(name=b"x-lf")),
        ([(b"Authorization", b"Bearer s3cret\x00")], VALUE_ERROR.format(name=b"authorization")),
        ([(b"X Space", b"v")], "Invalid HTTP/2 request header name b'x space'."),
        ([(b"X-Colon:", b"v")], "Invalid HTTP/2 request header name b'x-colon:'."),
        ([(b":path", b"/other")], "Invalid HTTP/2 request header name b':path'."),
        ([(b"", b"v")], "Invalid HTTP/2 request header name b''."),
        ([(b"X-Name\r\n", b"v")], "Invalid HTTP/2 request header name b'x-name\\r\\n'."),
        ([(b"Host", b"127.0.0.1\r\nEvil: 1")], PSEUDO_ERROR),
    ],
)
async def test_malformed_request_headers_are_refused_before_sending(
    api: Any, server: Any, headers: List[Tuple[bytes, bytes]], message: str
) -> None:
    async with api.ConnectionPool(http1=False, http2=True) as pool:
        assert (await pool.request("GET", server.url + "/")).status == 200
        with pytest.raises(httpcore.LocalProtocolError) as info:
            await pool.request("GET", server.url + "/", headers=headers)
        assert str(info.value) == message
        # The refused request left the connection as it found it: idle, nothing in flight.
        assert len(pool.connections) == 1
        assert pool.connections[0].is_idle()
        # The credential of a refused value is not repeated in the message.
        assert b"s3cret" not in str(info.value).encode()
        response = await pool.request("GET", server.url + "/")
        assert response.status == 200
        assert len(pool.connections) == 1
        assert pool.connections[0].is_idle()


async def test_a_valid_name_is_still_checked_after_others_were_remembered(
    api: Any, server: Any
) -> None:
    async with api.ConnectionPool(http1=False, http2=True) as pool:
        ok = [(b"X-Known", b"1"), (b"Accept", b"*/*")]
        for _ in range(2):
            assert (await pool.request("GET", server.url + "/", headers=ok)).status == 200
        with pytest.raises(httpcore.LocalProtocolError):
            await pool.request("GET", server.url + "/", headers=[(b"X-Known", b"1\r\n")])
        with pytest.raises(httpcore.LocalProtocolError):
            await pool.request("GET", server.url + "/", headers=[(b"X-Known ", b"1")])


async def test_lowered_names_and_stripped_values_still_go_out(api: Any, server: Any) -> None:
    """Upper case in names and whitespace around values are normalised, not refused."""
    async with api.ConnectionPool(http1=False, http2=True) as pool:
        response = await pool.request(
            "GET", server.url + "/echo_headers", headers=[(b"X-UPPER", b"  padded\t")]
        )
        assert response.status == 200
        received = json.loads(response.content)["headers"]
        assert ["x-upper", "padded"] in received


def test_remembered_valid_names_are_bounded() -> None:
    """The checks remember names found valid (a dict lookup instead of a regex per header), up
    to 512 of them: a client sending ever-new names does not grow memory without end."""
    from httpcore.base import _multiplex_core as core

    core._VALID_NAMES.clear()
    core.check_request_field(b"x-first", b"v", "HTTP/2")
    assert list(core._VALID_NAMES) == [b"x-first"]
    for i in range(600):
        core.check_request_field(b"x-name-%d" % i, b"v", "HTTP/2")
    assert len(core._VALID_NAMES) == 512
    # A name past the bound is still checked, every time.
    with pytest.raises(httpcore.LocalProtocolError):
        core.check_request_field(b"x-name 600", b"v", "HTTP/2")
    core._VALID_NAMES.clear()


async def test_refused_requests_give_their_stream_slot_back(api: Any, server: Any) -> None:
    """A request refused while opening its stream (after it took one of the server's 100
    stream slots) gives the slot back: more refusals than slots, then a request still goes
    through at once."""
    async with api.ConnectionPool(http1=False, http2=True) as pool:
        assert (await pool.request("GET", server.url + "/")).status == 200
        for _ in range(101):
            with pytest.raises(httpcore.LocalProtocolError):
                await pool.request("GET", server.url + "/", headers=[(b"X-Bad", b"a\r\nb")])
        response = await pool.request(
            "GET", server.url + "/", extensions={"timeout": {"pool": 2.0}}
        )
        assert response.status == 200
        assert len(pool.connections) == 1
