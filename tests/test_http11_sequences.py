"""Keep-alive on one HTTP/1.1 connection, fuzzed as sequences of exchanges and compared with
h11 alone.

A bug the chunked-body fuzz found only showed on the *next* request: bytes that came in behind a
response stayed buffered when the connection went back to idle, and a later request was answered
with them. This fuzz looks for that class of bug (state carried from one response to the next,
whichever of the library's reading paths read each one) without knowing which path that is.

Each sequence is 2-6 exchanges on one `HTTP11Connection` over one mock stream: a request (GET,
HEAD, POST with a small body) and the bytes the server sends for it. The responses are of many
kinds (`KINDS`): Content-Length and chunked bodies, chunk extensions and trailers, HEAD, 204/304,
interim 1xx responses, `Connection: close`, HTTP/1.0, heads with bare-LF line endings, header
casing, and sometimes bytes behind a response (garbage, or a stray response). All of it is cut
into reads at random points (`SPLITS`), and each response is consumed in its own way (`MODES`):
read whole, streamed, read in part then closed, closed unread.

The reference (`reference`) is a bare `h11.Connection` fed the same reads in the same order,
with the rules of API.md §4.3 for reuse modelled on top of it (see the comments there). For each
exchange the connection must give the same head, the same body (or the same error) and be left
idle or closed as the reference says; once it is closed, a further request must raise
`ConnectionNotAvailable` (§4.3: a request on a connection neither NEW nor IDLE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Tuple

import h11
import helpers
import pytest
from http11_sequence_cases import (
    KINDS,
    MAX_INCOMPLETE_EVENT_SIZE,
    MODES,
    ORIGIN,
    PROFILES,
    SEQUENCES,
    SPLITS,
    URL,
    Case,
    Exchange,
    make_case,
)

import httpcore

pytestmark = pytest.mark.anyio

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

# -- the reference: h11 alone, and the rules of API.md §4.3 -----------------------------------

Head = Tuple[int, List[Tuple[bytes, bytes]], bytes, bytes]  # status, headers, version, reason
Outcome = Tuple[Any, ...]  # ("ok", body) | ("partial", data) | ("unread",) | ("error", cls, msg)
DISCONNECTED = ("error", "RemoteProtocolError", "Server disconnected without sending a response.")


@dataclass
class Expected:
    head: Optional[Head]  # the final response's head, if one came
    outcome: Outcome
    reusable: bool
    rule: str  # why it is (not) reusable
    request: bytes  # the request's bytes as h11 writes them


class Disconnected(Exception):
    """The stream ended while h11 waited for a response to start."""


def request_headers(exchange: Exchange) -> List[Tuple[bytes, bytes]]:
    # What the `request()`/`stream()` helpers send (API.md §3.3).
    headers = [(b"Host", b"example.com")]
    if exchange.content is not None:
        headers.append((b"Content-Length", str(len(exchange.content)).encode()))
    return headers


def next_event(conn: h11.Connection, reads: Iterator[bytes]) -> Any:
    """h11's next event, fed the next read whenever it needs data (b"" once they run out)."""
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        data = next(reads, b"")
        if not data and conn.their_state is h11.SEND_RESPONSE:
            # The library's own error, not h11's: "raised whenever EOF is read while the
            # server has not started a response" (API.md §4.3), after an interim response too.
            raise Disconnected()
        conn.receive_data(data)


def reference_exchange(
    conn: h11.Connection, reads: Iterator[bytes], exchange: Exchange
) -> Expected:
    request = h11.Request(method=exchange.method, target="/", headers=request_headers(exchange))
    sent = conn.send(request) or b""
    if exchange.content:
        sent += conn.send(h11.Data(data=exchange.content)) or b""
    sent += conn.send(h11.EndOfMessage()) or b""

    head: Optional[Head] = None
    body = b""
    first_is_data: Optional[bool] = None  # whether the body's first event was data
    try:
        while True:
            event = next_event(conn, reads)
            if type(event) is h11.Response:
                break
            # Interim 1xx responses are skipped (API.md §4.3; the generator makes no 101).
            assert type(event) is h11.InformationalResponse, event
        head = (
            event.status_code,
            list(event.headers.raw_items()),
            b"HTTP/" + event.http_version,
            event.reason,
        )
        if exchange.mode == "unread":
            # Closed before any of the body was read: h11's side is still SEND_BODY (h11 says
            # EndOfMessage only when asked for the next event, even for an empty body), so not
            # both DONE: the connection is closed (API.md §4.3, "Response close").
            return Expected(head, ("unread",), False, "closed unread", sent)
        while True:
            event = next_event(conn, reads)
            if first_is_data is None:
                first_is_data = type(event) is h11.Data
            # (In "partial" mode the reference reads on past the first piece, for the whole
            # body to compare with: harmless, the connection closes after this exchange.)
            if type(event) is h11.Data:
                body += event.data
            elif type(event) is h11.EndOfMessage:
                break
            else:  # pragma: no cover
                raise AssertionError(event)
    except h11.RemoteProtocolError as exc:
        if exchange.mode == "partial" and first_is_data:
            # The reader stopped after its first piece, before the error.
            return Expected(head, ("partial", body), False, "closed part-read", sent)
        # h11's errors become ours with h11's message (API.md §4.3 and §8); an error closes
        # the connection ("Response close": error).
        return Expected(head, ("error", "RemoteProtocolError", str(exc)), False, "error", sent)
    except Disconnected:
        return Expected(None, DISCONNECTED, False, "error", sent)

    if exchange.mode == "partial" and first_is_data:
        # Closed after its first piece: a body closed before it was read to its end closes the
        # connection (h11's side is not DONE then: it has not said EndOfMessage).
        return Expected(head, ("partial", body), False, "closed part-read", sent)
    outcome = ("ok", body)
    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
        # Reused only if both h11 sides are DONE (API.md §4.3, "Response close"): h11 says
        # MUST_CLOSE after `Connection: close`, an HTTP/1.0 response, a body delimited by the
        # end of the stream.
        return Expected(head, outcome, False, f"h11 {conn.their_state.__name__}", sent)
    if conn.trailing_data[0]:
        # Stricter than h11, deliberately: bytes already received behind the response cannot
        # belong to a later one (the server is out of step), so the connection is closed
        # rather than reused (`_http11.py`, module docstring; tests/test_http11_chunked.py).
        return Expected(head, outcome, False, "bytes behind the response", sent)
    conn.start_next_cycle()
    return Expected(head, outcome, True, "reused", sent)


def reference(case: Case) -> List[Expected]:
    """What h11 alone makes of the case, exchange by exchange, up to the first that closes the
    connection."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_INCOMPLETE_EVENT_SIZE)
    reads = iter(case.pieces)
    result = []
    for exchange in case.exchanges:
        expected = reference_exchange(conn, reads, exchange)
        result.append(expected)
        if not expected.reusable:
            break
    return result


# -- the connection -----------------------------------------------------------------------------


def head_of(response: Any) -> Head:
    extensions = response.extensions
    return (
        response.status,
        list(response.headers),
        extensions["http_version"],
        extensions["reason_phrase"],
    )


async def observe(connection: Any, exchange: Exchange) -> Tuple[Optional[Head], Outcome]:
    """What the connection makes of one exchange, consumed as `exchange.mode` says."""
    method, content = exchange.method, exchange.content
    head: Optional[Head] = None
    try:
        if exchange.mode == "read":
            response = await connection.request(method, URL, content=content)
            return head_of(response), ("ok", response.content)
        async with connection.stream(method, URL, content=content) as response:
            head = head_of(response)
            if exchange.mode == "stream":
                return head, ("ok", b"".join([chunk async for chunk in response.aiter_stream()]))
            if exchange.mode == "unread":
                return head, ("unread",)
            iterator = response.aiter_stream()
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration:
                return head, ("ok", b"")
            finally:
                await iterator.aclose()
            return head, ("partial", first)
    except Exception as exc:  # any class: the comparison names it
        return head, ("error", type(exc).__name__, str(exc))


def shown(data: Any, limit: int = 300) -> str:
    """`data`'s repr, its middle left out when long."""
    text = repr(data)
    return text if len(text) <= limit else text[: limit - 60] + " ... " + text[-60:]


def describe(case: Case, index: int, expected: List[Expected]) -> str:
    lines = [
        f"seed {case.seed} ({case.profile}: make_case({case.seed}, {case.profile!r})), "
        f"exchange {index}, split {case.split!r}",
        f"reads ({len(case.pieces)}): {[len(piece) for piece in case.pieces]}",
    ]
    if len(case.pieces) <= 12:
        lines += [f"  read {i}: {shown(piece, 200)}" for i, piece in enumerate(case.pieces)]
    for i, exchange in enumerate(case.exchanges[: len(expected)]):
        rule = expected[i].rule
        lines.append(
            f"  [{i}] {exchange.method} {exchange.kind}{' (cut short)' * exchange.truncated}, "
            f"{exchange.mode}, reference: {rule}: "
            f"{shown(exchange.response, 160)} + extra {shown(exchange.extra, 80)}"
        )
    return "\n".join(lines)


def agrees(got: Outcome, want: Outcome) -> bool:
    if want[0] == "partial":
        # The first piece read: any non-empty start of what h11 gave (reads may be cut
        # differently into pieces by different readers).
        return got[0] == "partial" and bool(got[1]) and want[1].startswith(got[1])
    return got == want


async def run_case(api: Any, case: Case) -> None:
    expected = reference(case)
    stream = api.mock_stream(case.pieces)
    connection = api.HTTP11Connection(ORIGIN, stream)
    try:
        for index, want in enumerate(expected):
            exchange = case.exchanges[index]
            head, outcome = await observe(connection, exchange)
            where = describe(case, index, expected)
            assert agrees(outcome, want.outcome), (
                f"outcome {shown(outcome)}, h11: {shown(want.outcome)}\n{where}"
            )
            # The head, unless `request()` raised before handing the response over.
            if not (exchange.mode == "read" and outcome[0] == "error"):
                assert head == want.head, f"head {head}, h11: {want.head}\n{where}"
            if want.reusable:
                assert connection.is_idle(), f"{connection!r}, h11: reusable\n{where}"
                continue
            assert connection.is_closed(), f"{connection!r}, h11: {want.rule}\n{where}"
            assert stream.closed, where
            with pytest.raises(httpcore.ConnectionNotAvailable):
                await connection.request("GET", URL)
        # The requests went out as h11 writes them, each once, nothing more.
        written = b"".join(want.request for want in expected)
        assert stream.data == written, f"wrote {shown(stream.data)}\n{describe(case, 0, expected)}"
    finally:
        await connection.aclose()


@pytest.mark.parametrize("profile", list(PROFILES))
async def test_sequences_on_one_connection_agree_with_h11(api: Any, profile: str) -> None:
    offset = list(PROFILES).index(profile) * SEQUENCES
    failures = []
    for seed in range(offset, offset + SEQUENCES):
        try:
            await run_case(api, make_case(seed, profile))
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, (
        f"{len(failures)} of {SEQUENCES} sequences disagree with h11; the first ones:\n\n"
        + "\n\n".join(failures[:3])
    )


# -- the generator is not vacuous -------------------------------------------------------------


def all_cases() -> List[Tuple[Case, List[Expected]]]:
    result = []
    for index, profile in enumerate(PROFILES):
        for seed in range(index * SEQUENCES, (index + 1) * SEQUENCES):
            case = make_case(seed, profile)
            result.append((case, reference(case)))
    return result


def test_the_sequences_hold_what_they_are_for() -> None:
    """Across the seeds (h11 decides): long runs on one connection, every response kind and
    way of consuming it, served after another exchange on the same connection, and bytes
    behind a response both in the read that ended it and in a later one."""
    cases = all_cases()
    served = [len(expected) for _, expected in cases]
    assert sum(n >= 3 for n in served) >= 20 and max(served) >= 5, served
    kinds = {case.exchanges[i].kind for case, expected in cases for i in range(len(expected))}
    assert kinds == set(KINDS)
    # Each kind read on a connection that served an earlier exchange, then reused once more.
    reused_kinds = {
        case.exchanges[i].kind
        for case, expected in cases
        for i in range(1, len(expected) - 1)
        if expected[i].reusable
    }
    # (A response of one kind may answer another's request: bytes behind an earlier one.)
    assert reused_kinds >= set(KINDS) - {"close", "http10"}, reused_kinds
    modes = {case.exchanges[i].mode for case, expected in cases for i in range(len(expected))}
    assert modes == set(MODES)
    assert {case.split for case, _ in cases} == set(SPLITS)
    rules = {want.rule for _, expected in cases for want in expected}
    assert {"reused", "bytes behind the response", "error", "closed unread"} <= rules, rules
    assert {"closed part-read", "h11 MUST_CLOSE"} <= rules, rules
    # Bytes behind a response that came in a later read: the next exchange meets them.
    met_later = [
        case.seed
        for case, expected in cases
        for i in range(len(expected) - 1)
        if case.exchanges[i].extra and expected[i].reusable
    ]
    assert len(met_later) >= 5, met_later
    outcomes = [want.outcome for _, expected in cases for want in expected]
    assert sum(outcome[0] == "error" for outcome in outcomes) >= 10
    assert DISCONNECTED in outcomes
    assert max(len(case.pieces) for case, _ in cases) >= 300
    assert sum(case.exchanges[-1].truncated for case, _ in cases) >= 10


# -- what the fuzz found, at its smallest ---------------------------------------------------------

NEXT = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"


# h11 ends a head at its first blank line, whether its lines end in CRLF or in LF alone: the
# first read holds a whole response, and h11 reads no further. The connection must not wait for
# more (on a socket, the next bytes come only after the next request) nor take the next
# response's bytes for bytes behind this one.
@pytest.mark.parametrize(
    "first",
    [
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\nhi",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\n\r\nhi",
    ],
    ids=["lf", "crlf-then-lf", "lf-then-crlf"],
)
async def test_a_head_ended_by_a_bare_lf_is_answered_from_its_own_read(
    api: Any, first: bytes
) -> None:
    stream = api.mock_stream([first, NEXT])
    connection = api.HTTP11Connection(ORIGIN, stream)
    assert (await connection.request("GET", URL)).content == b"hi"
    assert connection.is_idle(), connection
    assert (await connection.request("GET", URL)).content == b"abc"
    await connection.aclose()


# A read may bring more than was asked for (`MockStream.read` ignores `max_bytes`, API.md §6.5):
# the rest of a Content-Length body and the next response in one read. The body is its first
# five bytes, and the rest is bytes behind the response (the connection closes); they are never
# handed out as body.
@pytest.mark.parametrize("streamed", [False, True], ids=["read", "streamed"])
async def test_a_read_past_the_end_of_a_body_is_not_body(api: Any, streamed: bool) -> None:
    reads = [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", b"cde" + NEXT]
    stream = api.mock_stream(reads)
    connection = api.HTTP11Connection(ORIGIN, stream)
    if streamed:
        async with connection.stream("GET", URL) as response:
            body = b"".join([chunk async for chunk in response.aiter_stream()])
    else:
        body = (await connection.request("GET", URL)).content
    assert body == b"abcde"
    assert connection.is_closed()
    with pytest.raises(httpcore.ConnectionNotAvailable):
        await connection.request("GET", URL)


# h11 gives up at once on a response whose first byte is a control byte or a space ("illegal
# request line"; a TLS record answering plain HTTP, say), without waiting for a blank line that
# may never come. Read on to the next response's blank line, h11 would say "illegal status
# line: ..." instead.
async def test_a_response_starting_with_a_control_byte_is_refused_at_once(api: Any) -> None:
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    stream = api.mock_stream([first, b"\x15\x03\x03\x00\x02", NEXT])
    connection = api.HTTP11Connection(ORIGIN, stream)
    assert (await connection.request("GET", URL)).content == b""
    with pytest.raises(httpcore.RemoteProtocolError) as info:
        await connection.request("GET", URL)
    assert str(info.value) == "illegal request line"
    assert connection.is_closed()
