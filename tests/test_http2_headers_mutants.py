"""HTTP/2 behaviours that mutation testing (scripts/mutation) found untested in `_headers` and
`_patches`: the request headers sent, the response headers read, and the memo of decoded header
blocks; see scripts/mutation/SURVIVORS.md. Byte-exact cases run over the recording mock backends
(`helpers.api.backend`) with server bytes made by `test_http2.FakeServer`, under sync, asyncio
and trio."""

from __future__ import annotations

import random
from typing import Any, Dict, List, Tuple

import h2.config
import h2.connection
import h2.events
import helpers
import hpack
import hyperframe.frame
import pytest
from h2parts_helpers import URL
from hpack import NeverIndexedHeaderTuple
from test_http2 import FakeServer, of_type

import httpcore

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api


# -- _headers.py -----------------------------------------------------------------------------


async def sent_headers(api: Any, headers: List[Tuple[bytes, bytes]]) -> List[Any]:
    """The header list the server receives for a GET with `headers` (besides Host)."""
    backend = api.backend(FakeServer().respond(1).chunks, http2=True)
    async with api.ConnectionPool(network_backend=backend, http2=True) as pool:
        response = await pool.request("GET", URL, headers=headers)
        assert response.status == 200
    [stream] = backend.streams
    # Decoded as sent: h2's inbound checks would join and re-wrap cookies.
    config = h2.config.H2Configuration(
        client_side=False,
        header_encoding=None,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
    )
    server = h2.connection.H2Connection(config)
    server.initiate_connection()
    [request] = of_type(server.receive_data(stream.data), h2.events.RequestReceived)
    return list(request.headers)


async def test_te_is_sent_only_as_te_trailers(api: Any) -> None:
    """RFC 9113 §8.2.2: TE may be sent, with no other value than "trailers"."""
    assert (b"te", b"trailers") in await sent_headers(api, [(b"TE", b"trailers")])
    assert (b"te", b"Trailers") in await sent_headers(api, [(b"TE", b"Trailers")])
    sent = await sent_headers(api, [(b"TE", b"gzip"), (b"X-After", b"1")])
    assert [name for name, _ in sent if name in (b"te", b"x-after")] == [b"x-after"]


@pytest.mark.parametrize("name", [b":path", b":x", b""])
async def test_a_pseudo_or_empty_request_header_name_is_refused(api: Any, name: bytes) -> None:
    backend = api.backend(FakeServer().respond(1).chunks, http2=True)
    async with api.ConnectionPool(network_backend=backend, http2=True) as pool:
        with pytest.raises(httpcore.LocalProtocolError, match="Invalid HTTP/2 request header"):
            await pool.request("GET", URL, headers=[(name, b"value")])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b" lead", b"lead"),
        (b"trail\t", b"trail"),
        (b"\t both  ", b"both"),
        (b"in side", b"in side"),
    ],
)
async def test_request_header_values_lose_surrounding_whitespace(
    api: Any, value: bytes, expected: bytes
) -> None:
    sent = await sent_headers(api, [(b"X-Value", value)])
    assert (b"x-value", expected) in sent


def never_indexed(headers: List[Any]) -> List[Tuple[bytes, bytes]]:
    return [tuple(header) for header in headers if isinstance(header, NeverIndexedHeaderTuple)]


async def test_credentials_and_short_cookies_are_never_indexed(api: Any) -> None:
    """RFC 7541 §7.1.3: never in the HPACK dynamic table (a "never indexed" literal)."""
    credentials = b"Basic dXNlcjpwYXNz"
    sent = await sent_headers(
        api,
        [
            (b"Authorization", credentials),
            (b"Proxy-Authorization", credentials),
            (b"Cookie", b"c" * 19),
            (b"X-Other", b"c" * 19),
        ],
    )
    assert never_indexed(sent) == [
        (b"authorization", credentials),
        (b"proxy-authorization", credentials),
        (b"cookie", b"c" * 19),
    ]
    # A cookie of 20 bytes or more is not easily guessed: indexed like any other header.
    sent = await sent_headers(api, [(b"Cookie", b"c" * 20)])
    assert (b"cookie", b"c" * 20) in sent and never_indexed(sent) == []


def raw_response(headers: List[Tuple[bytes, bytes]]) -> List[bytes]:
    """Server chunks answering stream 1 with a header block h2 would refuse to send (encoded
    by hand: the only header block on the connection, so the HPACK tables agree)."""
    server = FakeServer()
    server.expect(1)
    block = hpack.Encoder().encode(headers)
    frame = hyperframe.frame.HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"])
    return server.raw(frame.serialize()).chunks


async def response_to(api: Any, chunks: List[bytes]) -> Any:
    backend = api.backend(chunks, http2=True)
    async with api.ConnectionPool(network_backend=backend, http2=True) as pool:
        return await pool.request("GET", URL)


async def test_a_response_without_status_is_a_200(api: Any) -> None:
    """API.md: the status comes from `:status`, 200 if there is none (as httpcore 1.0)."""
    response = await response_to(api, raw_response([(b"x-only", b"1")]))
    assert (response.status, response.headers) == (200, [(b"x-only", b"1")])


async def test_response_pseudo_headers_are_left_out(api: Any) -> None:
    headers = [(b":status", b"204"), (b":other", b"x"), (b"x-kept", b"1")]
    response = await response_to(api, raw_response(headers))
    assert (response.status, response.headers) == (204, [(b"x-kept", b"1")])


async def test_a_status_that_is_not_a_number_is_a_remote_protocol_error(api: Any) -> None:
    with pytest.raises(httpcore.RemoteProtocolError, match="Invalid :status b'OK'"):
        await response_to(api, raw_response([(b":status", b"OK")]))


@pytest.mark.parametrize(
    "status", [b" 200", b"2_00", b"099", b"20", b"2000", b"+20", b"\xd9\xa0\xd9\xa0"]
)
async def test_a_status_int_would_take_is_a_remote_protocol_error(api: Any, status: bytes) -> None:
    """RFC 9110 §15: three digits, 100 to 999 (int() took " 200", "2_00" and "099")."""
    with pytest.raises(httpcore.RemoteProtocolError, match="Invalid :status"):
        await response_to(api, raw_response([(b":status", status)]))


async def test_repeated_response_headers_are_shared_not_copied(api: Any) -> None:
    """Responses on one connection with the same header block share its header pairs
    (immutable) rather than each holding copies; each still has a list of its own, of
    plain tuples."""
    chunks = FakeServer().respond(1).respond(3).respond(5, status=404).chunks
    backend = api.backend(chunks, http2=True)
    async with api.ConnectionPool(network_backend=backend, http2=True) as pool:
        first = await pool.request("GET", URL)
        first.headers.append((b"x-mine", b"1"))
        second = await pool.request("GET", URL)
        third = await pool.request("GET", URL)
    assert second.headers == [(b"content-type", b"plain/text")]
    assert second.headers[0] is first.headers[0]
    assert first.headers == [(b"content-type", b"plain/text"), (b"x-mine", b"1")]
    assert (third.status, third.headers) == (404, second.headers)
    assert {type(pair) for pair in first.headers + second.headers} == {tuple}


def test_the_response_head_memo_keeps_up_to_its_size() -> None:
    """`remembered_head` remembers up to `HEAD_MEMO_SIZE` blocks, then starts over; a block
    it refuses is never remembered, so it is refused every time."""
    from httpcore.http2._headers import HEAD_MEMO_SIZE, HeadMemo, remembered_head

    memo: HeadMemo = {}
    blocks = [[(b":status", b"200"), (b"x-n", b"%d" % n)] for n in range(HEAD_MEMO_SIZE + 1)]
    for block in blocks:
        assert remembered_head(block, memo) == (200, block[1:])
        assert len(memo) <= HEAD_MEMO_SIZE
    assert len(memo) == 1  # started over at the last block
    for _ in range(2):
        with pytest.raises(httpcore.RemoteProtocolError, match="Invalid :status b'OK'"):
            remembered_head([(b":status", b"OK")], memo)
    assert len(memo) == 1


# The request header memo (`request_headers`).

FIELD_SETS: List[List[Tuple[bytes, bytes]]] = [
    [(b"Host", b"example.com"), (b"Accept", b"*/*"), (b"User-Agent", b"python-httpx/0.28.1")],
    [(b"Host", b"example.com"), (b"Connection", b"keep-alive"), (b"TE", b"gzip")],
    [(b"HOST", b"example.com"), (b"X-Pad", b"  padded\t"), (b"TE", b"Trailers")],
    [(b"Host", b"example.com"), (b"Authorization", b"Basic dXNlcjpwYXNz")],
    [(b"Host", b"example.com"), (b"Cookie", b"short")],
    [(b"Host", b"example.com"), (b"Cookie", b"c" * 40)],
    [(b"Host", b"example.com"), (b"X-Big", b"v" * 3000)],
    [(b"Host", b"example.com"), (b"Bad Name", b"1")],
    [(b"Host", b"example.com"), (b"X-Bad", b"a\r\nb")],
]


@pytest.fixture
def fields_memo(monkeypatch: pytest.MonkeyPatch) -> Dict[Any, Any]:
    """The process-wide memo of request header sets, empty for this test."""
    from httpcore.http2 import _headers

    memo: Dict[Any, Any] = {}
    monkeypatch.setattr(_headers, "_FIELDS_MEMO", memo)
    return memo


def converted(headers: List[Tuple[bytes, bytes]]) -> Any:
    from httpcore.http2._headers import request_headers

    request = httpcore.Request("GET", "https://example.com/path", headers=headers)
    try:
        result = request_headers(request, b"example.com")
    except httpcore.LocalProtocolError as exc:
        return ("refused", str(exc))
    return [(type(pair), tuple(pair)) for pair in result]


@pytest.mark.parametrize("seed", range(4))
def test_a_remembered_header_set_converts_as_a_fresh_one(
    fields_memo: Dict[Any, Any], seed: int
) -> None:
    """Through the memo, each set gives what converting it afresh gives: the same fields, the
    same never-indexed credentials, the same refusals."""
    from httpcore.http2 import _headers

    rnd = random.Random(seed)
    for _ in range(60):
        headers = rnd.choice(FIELD_SETS)
        through_memo = converted(headers)
        _headers._FIELDS_MEMO = {}
        try:
            assert converted(headers) == through_memo
        finally:
            _headers._FIELDS_MEMO = fields_memo
    assert len(fields_memo) == 3  # the sets it may keep


def test_the_fields_memo_keeps_no_credentials_cookies_or_refusals(
    fields_memo: Dict[Any, Any],
) -> None:
    for headers in FIELD_SETS:
        for _ in range(2):
            converted(headers)
    kept = [dict((name.lower(), value) for name, value in key) for key in fields_memo]
    assert {b"user-agent", b"connection", b"x-pad"} <= {name for fields in kept for name in fields}
    for fields in kept:
        assert not {b"authorization", b"cookie", b"bad name", b"x-bad", b"x-big"} & set(fields)
    assert all(type(pair) is tuple for fields in fields_memo.values() for pair in fields)


def test_the_fields_memo_keeps_up_to_its_size(fields_memo: Dict[Any, Any]) -> None:
    from httpcore.http2._headers import FIELDS_MEMO_SIZE

    for n in range(FIELDS_MEMO_SIZE + 1):
        assert converted([(b"Host", b"example.com"), (b"X-N", b"%d" % n)])[-1] == (
            tuple,
            (b"x-n", b"%d" % n),
        )
        assert len(fields_memo) <= FIELDS_MEMO_SIZE
    assert len(fields_memo) == 1  # started over at the last set


def test_a_remembered_set_gives_a_list_of_its_own(fields_memo: Dict[Any, Any]) -> None:
    from httpcore.http2._headers import request_headers

    request = httpcore.Request("GET", "https://example.com/", headers=FIELD_SETS[0])
    first = request_headers(request, b"example.com")
    first.append((b"x-mine", b"1"))
    second = request_headers(request, b"example.com")
    assert second is not first and (b"x-mine", b"1") not in second
    assert second[4:] == [(b"accept", b"*/*"), (b"user-agent", b"python-httpx/0.28.1")]


def test_a_header_value_that_cannot_be_hashed_is_converted(fields_memo: Dict[Any, Any]) -> None:
    from httpcore.http2._headers import request_headers

    request = httpcore.Request("GET", "https://example.com/", headers=FIELD_SETS[0])
    request.headers.append((b"X-Buffer", bytearray(b" held ")))  # type: ignore[arg-type]
    for _ in range(2):
        assert request_headers(request, b"example.com")[-1] == (b"x-buffer", b"held")
    assert not fields_memo


# -- _patches.py -----------------------------------------------------------------------------


def test_the_header_memo_keeps_up_to_memo_size_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """`RepeatDecoder` remembers up to `MEMO_SIZE` distinct blocks (literals that leave the
    table alone): a cycle of that many is decoded once each; one more block starts it over
    (so it never grows past that size)."""
    from httpcore.http2._patches import RepeatDecoder

    size = RepeatDecoder.MEMO_SIZE
    encoder = hpack.Encoder()
    blocks = [
        encoder.encode([(b":status", b"200"), NeverIndexedHeaderTuple(b"x-n", b"%d" % n)])
        for n in range(size + 1)
    ]
    decodes: List[bytes] = []
    real_decode = hpack.Decoder.decode

    def counted_decode(self: Any, data: bytes, raw: bool = False) -> Any:
        decodes.append(data)
        return real_decode(self, data, raw)

    monkeypatch.setattr(hpack.Decoder, "decode", counted_decode)
    decoder = RepeatDecoder()
    for block in blocks[:size] * 2:
        decoder.decode(block, raw=True)
    assert len(decodes) == size
    decoder.decode(blocks[size], raw=True)
    assert len(decoder._memo) <= size
    assert decoder.decode(blocks[0], raw=True) == [(b":status", b"200"), (b"x-n", b"0")]
    assert len(decodes) == size + 2  # forgotten when the memo was full


def test_a_block_that_resizes_the_table_is_decoded_every_time() -> None:
    """A header block carrying a table size update changes the decoder's state even when it
    adds nothing: it is never answered from the memo, so the update always takes effect and
    the table stays what the server's encoder thinks it is (nginx shrinks it to 0)."""
    from httpcore.http2._patches import RepeatDecoder

    encoder = hpack.Encoder()
    status = [(b":status", b"200")]
    encoder.header_table_size = 0
    shrink = encoder.encode(status)  # size update to 0, then a static index
    encoder.header_table_size = 4096
    grow = encoder.encode(status)  # size update back to 4096: the same state as before
    blocks = [shrink, grow, shrink]
    encoder.header_table_size = 0
    encoder.encode(status)  # the encoder's side of the third block
    blocks.append(encoder.encode([(b"x-indexed", b"1")]))  # "with indexing": fits nothing
    plain, memo = hpack.Decoder(), RepeatDecoder()
    for block in blocks:
        assert memo.decode(block, raw=True) == plain.decode(block, raw=True)
        assert memo.header_table.maxsize == plain.header_table.maxsize
        assert list(memo.header_table.dynamic_entries) == list(plain.header_table.dynamic_entries)
