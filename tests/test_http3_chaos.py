"""Chaos for the HTTP/3 client: a server (tests/h3_chaos_server.py) that writes its HTTP/3
frames by hand and breaks them, scripted case by case and as a seeded random mix of QPACK
mutations. Sync, asyncio and trio.

What every case checks (RFC 9114, docs/http3.md "Errors", API.md §8):
- the outcome is the one the RFC asks for: a success, or an exception of the documented class
  (`RemoteProtocolError` for what the server got wrong, `ReadTimeout` for a server that says
  nothing), whose message says what happened;
- it comes within the timeouts the request carries (no hang);
- the pool is clean afterwards (no request or connection left active) and a request on a calm
  path of the same server succeeds on it;
- nothing leaks: no ResourceWarning, no file descriptor left open once the pool is closed.
"""

from __future__ import annotations

import gc
import random
import re
import ssl
import time
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Tuple, Type, Union

import helpers
import pylsqpack
import pytest
from aioquic.h3.connection import FrameType
from h3_chaos_server import (
    SETTINGS_FRAME,
    ChaosServer,
    Headers,
    Script,
    close_mid_body,
    data_frame,
    goaway,
    goaway_after_answer,
    goaway_unprocessed_once,
    headers_frame,
    literal_block,
    mutate,
    on_control,
    packed_block,
    raw_frame,
    reserved,
    reset_control,
    reset_mid_body,
    response,
    silent,
    writes,
)
from quic_server_base import LoopRunner

import httpcore

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(20)]  # the overall deadline of a test

#: The random mix: its seed and how many responses each flavour gets.
SEED = 9114
RANDOM_CASES = 60
#: The read timeout of a request expected to end at once (a wrong `ReadTimeout` shows here).
READ = 1.0
#: The read timeout where a `ReadTimeout` is the expected outcome.
SHORT_READ = 0.3
#: How much longer than its read timeout a failing request may take (handshake included).
SLACK = 3.0

RPE = httpcore.RemoteProtocolError
Expected = Union[None, Type[Exception], Tuple[Type[Exception], ...]]


def extensions(read: float) -> Any:
    return {"timeout": {"connect": 3.0, "read": read, "write": 3.0, "pool": 3.0}}


CLOSED = r"QUIC connection closed: error code 0x"  # a connection error
UNEXPECTED = CLOSED + r"105"  # H3_FRAME_UNEXPECTED


@dataclass(frozen=True)
class Case:
    name: str
    script: Script
    expect: Expected  # None: a success with `body`
    message: str = ""  # a regular expression the exception's message must contain
    body: bytes = b""
    status: int = 200  # of a success
    control: Optional[bytes] = None  # the first frames of the control stream
    read: float = READ
    defect: str = ""  # a library defect: the case is a strict xfail with this reason
    #: The server connections the case and the calm request after it take: 2 after a
    #: connection error (RFC 9114 §8) or a GOAWAY, 1 after a stream error (§4.1.2).
    connections: int = 0
    client_close: Optional[int] = None  # the error code the client must close with

    def __post_init__(self) -> None:
        if not self.connections:
            object.__setattr__(self, "connections", 2 if self.message.startswith(CLOSED) else 1)


def status_case(status: bytes) -> Case:
    head = headers_frame([(b":status", status), (b"content-length", b"2")])
    return Case(
        f"status-{status.decode() or 'empty'}",
        writes(head + data_frame(b"ok")),
        RPE,
        r"Malformed HTTP/3 response|status",
    )


def field_case(name: str, extra: Headers, message: str = "Malformed HTTP/3 response") -> Case:
    return Case(name, writes(response(body=b"ok", extra=extra)), RPE, message)


def head_case(name: str, head: Headers) -> Case:
    """A response whose whole header list is `head` (then a body of two bytes)."""
    return Case(name, writes(headers_frame(head) + data_frame(b"ok")), RPE, "Malformed HTTP/3")


OK_HEAD = headers_frame([(b":status", b"200"), (b"content-length", b"4")])

CASES: List[Case] = [
    # -- the HEADERS frame and its field section ---------------------------------------------
    Case(
        "headers-longer-than-the-stream",
        writes(raw_frame(FrameType.HEADERS, literal_block([(b":status", b"200")]), 60)),
        RPE,
        CLOSED + r"106",  # H3_FRAME_ERROR (RFC 9114 §7.1)
    ),
    Case("data-truncated-then-fin", writes(OK_HEAD + raw_frame(0, b"ab", 4)), RPE, CLOSED + "106"),
    Case("frame-header-truncated-then-fin", writes(OK_HEAD + b"\x00"), RPE, CLOSED + "106"),
    Case("data-before-headers", writes(data_frame(b"ab") + OK_HEAD), RPE, UNEXPECTED),
    Case(
        "second-headers-not-trailers",
        writes(OK_HEAD + data_frame(b"body"), headers_frame([(b":status", b"200")])),
        RPE,
        r"Malformed HTTP/3 response on stream \d+: .*:status",
    ),
    Case(
        "trailers",
        writes(OK_HEAD + data_frame(b"body"), headers_frame([(b"x-checksum", b"1")])),
        None,
        body=b"body",
    ),
    Case(
        "headers-after-trailers",
        writes(OK_HEAD + data_frame(b"body") + headers_frame([(b"x-t", b"1")]) * 2),
        RPE,
        UNEXPECTED,
    ),
    Case(
        "interim-then-final",
        writes(headers_frame([(b":status", b"103"), (b"link", b"</a>")]), response(body=b"ok")),
        None,
        body=b"ok",
    ),
    Case("interim-then-fin", writes(headers_frame([(b":status", b"100")])), RPE, "Malformed"),
    Case("empty-headers-frame", writes(raw_frame(FrameType.HEADERS, b"")), RPE, CLOSED + "200"),
    Case(
        "empty-headers-frame-message",
        writes(raw_frame(FrameType.HEADERS, b"")),
        RPE,
        CLOSED + r"200 \(QPACK_DECOMPRESSION_FAILED\).*; closed by the client, as the server broke",
    ),
    head_case("status-missing", [(b"content-length", b"2")]),
    *(status_case(s) for s in (b"abc", b"99", b"1000", b"", b"20 ", b"101", b"-20")),
    *(
        # Refused by aioquic 1.7 as malformed, or by the client's own check.
        Case(f"status-{s.decode()}", writes(response(s)), RPE, ":status.*" + re.escape(repr(s)))
        for s in (b"099", b"+20", b"2_0", b"000")
    ),
    Case(
        "status-600",
        writes(headers_frame([(b":status", b"600"), (b"content-length", b"2")]), data_frame(b"ok")),
        None,  # invalid, to be handled as a 5xx by the caller (RFC 9110 §15): not malformed
        body=b"ok",
        status=600,
    ),
    head_case("uppercase-name", [(b":status", b"200"), (b"Content-Type", b"text/plain")]),
    head_case("pseudo-after-regular", [(b"x-a", b"1"), (b":status", b"200")]),
    head_case("unknown-pseudo", [(b":status", b"200"), (b":foo", b"1")]),
    head_case("request-pseudo", [(b":status", b"200"), (b":path", b"/")]),
    head_case("status-twice", [(b":status", b"200"), (b":status", b"200")]),
    field_case("connection", [(b"connection", b"close")], "connection-specific"),
    field_case("transfer-encoding", [(b"transfer-encoding", b"chunked")], "connection-specific"),
    field_case("keep-alive", [(b"keep-alive", b"timeout=5")], "connection-specific"),
    field_case("space-in-name", [(b"x y", b"1")]),
    field_case("nul-in-value", [(b"x-a", b"a\x00b")]),
    field_case("lf-in-value", [(b"x-a", b"a\nb")]),
    Case(
        "non-token-name",
        writes(response(body=b"ok", extra=[(b"x(y)", b"1")])),
        RPE,
        "Malformed",
    ),
    Case(
        "oversized-headers",
        writes(response(body=b"big", extra=[(b"x-big-%d" % i, b"v" * 4000) for i in range(64)])),
        RPE,
        r"The field section is \d+ bytes, over the 65536 of SETTINGS_MAX_FIELD_SECTION_SIZE",
    ),
    Case(
        "large-headers-within-the-limit",
        writes(response(body=b"big", extra=[(b"x-big-%d" % i, b"v" * 4000) for i in range(16)])),
        None,
        body=b"big",
    ),
    # -- content-length ----------------------------------------------------------------------
    Case(
        "content-length-too-big",
        writes(
            headers_frame([(b":status", b"200"), (b"content-length", b"10")]), data_frame(b"ab")
        ),
        RPE,
        "content-length does not match",
    ),
    Case(
        "content-length-too-small",
        writes(headers_frame([(b":status", b"200"), (b"content-length", b"1")]), data_frame(b"ab")),
        RPE,
        "content-length does not match",
    ),
    head_case("content-length-not-a-number", [(b":status", b"200"), (b"content-length", b"x")]),
    Case(
        "content-length-without-data",
        writes(headers_frame([(b":status", b"200"), (b"content-length", b"5")])),
        RPE,
        "content-length does not match",
    ),
    Case(
        "content-length-over-several-frames",
        writes(OK_HEAD, data_frame(b"b"), data_frame(b""), data_frame(b"ody")),
        None,
        body=b"body",
    ),
    Case(
        "content-length-short-then-reserved-frame",
        writes(
            headers_frame([(b":status", b"200"), (b"content-length", b"10")]),
            data_frame(b"ab"),
            raw_frame(reserved(4), b""),
        ),
        RPE,
        "Malformed HTTP/3 response on stream 0: content-length does not match",
    ),
    Case(
        "malformed-response-then-reserved-frame",
        writes(
            headers_frame([(b":status", b"200"), (b"content-length", b"4"), (b"X-Up", b"1")])
            + data_frame(b"body"),
            raw_frame(reserved(9), b""),
        ),
        RPE,
        "Malformed HTTP/3 response on stream 0: Header b.X-Up. is not a valid field name",
    ),
    # -- frames to ignore, frames forbidden on a request stream ------------------------------
    Case(
        "reserved-frames-interleaved",
        writes(
            raw_frame(reserved(0), b"x"),
            OK_HEAD + raw_frame(reserved(7), b""),
            data_frame(b"bo") + raw_frame(reserved(1000), b"y" * 40),
            data_frame(b"dy"),
            raw_frame(reserved(3), b"last"),
        ),
        None,
        body=b"body",
    ),
    Case(
        "unknown-frames-interleaved",
        writes(
            raw_frame(0x0B, b"?" * 3000),
            OK_HEAD,
            raw_frame(0x2F00, b"z" * 70000),
            data_frame(b"body"),
        ),
        None,
        body=b"body",
    ),
    *(
        Case(
            f"{name}-on-request-stream",
            writes(OK_HEAD + frame + data_frame(b"body")),
            RPE,
            UNEXPECTED,
        )
        for name, frame in [
            ("settings", SETTINGS_FRAME),
            ("goaway", goaway(0)),
            ("max-push-id", raw_frame(FrameType.MAX_PUSH_ID, b"\x08")),
            ("cancel-push", raw_frame(FrameType.CANCEL_PUSH, b"\x00")),
            ("http2-priority", raw_frame(0x02, b"")),
            ("http2-window-update", raw_frame(0x08, b"\x00\x00\x00\x01")),
        ]
    ),
    # -- the server's control stream ---------------------------------------------------------
    Case("second-settings", on_control(SETTINGS_FRAME), RPE, UNEXPECTED),
    Case("data-on-control", on_control(data_frame(b"x")), RPE, UNEXPECTED),
    Case("headers-on-control", on_control(OK_HEAD), RPE, UNEXPECTED),
    Case("control-stream-closed", on_control(b"", end=True), RPE, CLOSED + "104"),
    Case("control-stream-reset", reset_control, RPE, CLOSED + "104"),
    Case(
        "control-starts-with-reserved",
        silent,
        RPE,
        CLOSED + "10a",  # H3_MISSING_SETTINGS
        control=raw_frame(reserved(2), b"") + SETTINGS_FRAME,
    ),
    Case("control-starts-with-data", silent, RPE, CLOSED + "10a", control=data_frame(b"x")),
    Case(
        "control-starts-with-data-message",
        silent,
        RPE,
        CLOSED + r"10a \(H3_MISSING_SETTINGS\).*; closed by the client, as the server broke",
        control=data_frame(b"x"),
    ),
    Case(
        "goaway-id-not-a-request-stream",
        on_control(goaway(3)),
        RPE,
        r"GOAWAY names stream 3, which is not a request stream \(H3_ID_ERROR\)",  # §5.2
        read=SHORT_READ,
        connections=2,
        client_close=0x108,
    ),
    Case(
        "goaway-id-increased",
        on_control(goaway(4) + goaway(8)),
        RPE,
        r"GOAWAY raised the last stream id from 4 to 8 \(H3_ID_ERROR\)",
        read=SHORT_READ,
        connections=2,
        client_close=0x108,
    ),
    # -- resets, closes, GOAWAY, silence -----------------------------------------------------
    *(
        Case(f"reset-mid-body-{code:#x}", reset_mid_body(code), RPE, r"reset by the server")
        for code in (0x0, 0x100, 0x102, 0x10B, 0x10C, reserved(5))
    ),
    Case("reset-before-headers", lambda reply: reply.reset(0x10C), RPE, "reset by the server"),
    Case(
        "close-mid-body",
        close_mid_body(0x102, "going away"),
        RPE,
        CLOSED + r"102 \(H3_INTERNAL_ERROR\), 'going away'$",  # the server's, not the client's
    ),
    Case("close-mid-body-no-error", close_mid_body(0x100, ""), RPE, CLOSED + "100"),
    Case("goaway-after-the-answer", goaway_after_answer, None, body=b"last", connections=2),
    Case("goaway-before-the-answer", goaway_unprocessed_once, None, body=b"retried", connections=2),
    Case("silent", silent, httpcore.ReadTimeout, read=SHORT_READ),
    Case(
        "headers-promised-never-sent",
        writes(raw_frame(FrameType.HEADERS, b"\x00\x00", 1 << 20), end=False),
        httpcore.ReadTimeout,
        read=SHORT_READ,
    ),
]


# -- the random mix: mutated QPACK blocks, reserved frames, packet boundaries ---------------

CONNECTION_SPECIFIC = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"transfer-encoding",
    b"upgrade",
}
TCHAR = set(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")
EITHER = "either"  # the RFC leaves it to the client: a success or a RemoteProtocolError


def judge(block: bytes, body: bytes) -> Tuple[Union[str, Type[Exception], None], Headers]:
    """What RFC 9114 makes of a response with header section `block`, then `body` in one DATA
    frame (none if empty), then FIN, decoded as the client's QPACK decoder decodes it (a
    dynamic table of 4096 bytes and 16 blocked streams, aioquic's): None (a success),
    `EITHER`, or the exception class."""
    try:
        _, fields = pylsqpack.Decoder(4096, 16).feed_header(0, block)
    except pylsqpack.StreamBlocked:
        return httpcore.ReadTimeout, []  # waits for encoder instructions that never come
    except pylsqpack.DecompressionFailed:
        return RPE, []  # QPACK_DECOMPRESSION_FAILED, a connection error (RFC 9204 §2.2.3)
    verdict: Union[str, None] = None
    status: Optional[bytes] = None
    regular = False
    lengths: List[bytes] = []
    for name, value in fields:
        if re.search(rb"[\x00\r\n]", value) or re.match(rb"[ \t]|.*[ \t]$", value, re.S):
            return RPE, fields  # RFC 9114 §4.1.2, §10.3; RFC 9110 §5.5
        if re.search(rb"[\x01-\x08\x0a-\x1f\x7f]", value):
            verdict = EITHER
        if name.startswith(b":"):
            if regular or name != b":status" or status is not None:
                return RPE, fields  # RFC 9114 §4.3
            status = value
            continue
        regular = True
        if re.search(rb"[\x00-\x20A-Z:\x7f-\xff]", name):
            return RPE, fields  # RFC 9114 §4.2
        if not name or any(c not in TCHAR for c in name):
            verdict = EITHER
        if name in CONNECTION_SPECIFIC:
            return RPE, fields
        if name == b"content-length":
            lengths.append(value)
    if status is None or not re.fullmatch(rb"[0-9]{3}", status) or status[:1] == b"1":
        return RPE, fields  # no final response: an interim one cannot end the stream
    if not 200 <= int(status) <= 599:
        verdict = EITHER
    for value in lengths:
        if not re.fullmatch(rb"[0-9]+", value):
            if not re.fullmatch(rb"[+-]?[0-9_]+", value):
                return RPE, fields  # RFC 9110 §8.6
            verdict = EITHER  # "+4" and the like: not the grammar, but a number to aioquic
        elif int(value) != len(body):
            return RPE, fields  # RFC 9114 §4.1.2
    return verdict, fields


@dataclass
class Mutant:
    script: Script
    expect: Union[str, Type[Exception], None]
    fields: Headers
    body: bytes


def mutant(rng: random.Random, index: int) -> Mutant:
    body = bytes(rng.randrange(97, 123) for _ in range(rng.choice((0, 3, 17, 40))))
    head: Headers = [
        (b":status", rng.choice((b"200", b"404", b"503"))),
        (b"content-type", rng.choice((b"text/plain", b"application/json"))),
        (b"x-case", b"%d" % index),
        (b"content-length", b"%d" % len(body)),
    ]
    rng.shuffle(head[1:])
    block = (packed_block if rng.random() < 0.5 else literal_block)(head)
    if rng.random() < 0.85:
        block = mutate(block, rng)
    frames = [raw_frame(FrameType.HEADERS, block)] + ([data_frame(body)] if body else [])
    for _ in range(rng.randint(0, 3)):  # reserved frames, which change nothing
        frame = raw_frame(reserved(rng.randrange(50)), bytes(rng.randrange(20)))
        frames.insert(rng.randint(0, len(frames)), frame)  # the last one too
    stream = b"".join(frames)
    cuts = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randint(0, 3))))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    expect, fields = judge(block, body)
    return Mutant(writes(*chunks), expect, fields, body)


# -- running a case ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chaos_server(background_loop: LoopRunner, server_cert_file: str) -> Iterator[ChaosServer]:
    server = ChaosServer(background_loop, server_cert_file)
    yield server
    server.close()


@pytest.fixture
def chaos(chaos_server: ChaosServer) -> Iterator[ChaosServer]:
    errors = len(chaos_server.errors)
    yield chaos_server
    assert chaos_server.errors[errors:] == []


class Watch:
    """Around one test: no ResourceWarning, no descriptor left open."""

    def __init__(self, full_gc: bool = False) -> None:
        self._catch = warnings.catch_warnings(record=True)
        self._full_gc = full_gc  # a full collection costs ~60 ms: once per random mix

    def __enter__(self) -> Watch:
        self.caught = self._catch.__enter__()
        warnings.simplefilter("always")
        self.before = helpers.open_descriptors()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        gc.collect(2 if self._full_gc else 1)
        self._catch.__exit__(*exc_info)
        if exc_info[0] is None:
            leaks = [str(w.message) for w in self.caught if issubclass(w.category, ResourceWarning)]
            assert leaks == []
            assert sorted(helpers.open_descriptors() - self.before) == []


def check_message(exc: BaseException, pattern: str) -> None:
    text = str(exc)
    # It says what happened: words, not a bare number, nor the repr of an aioquic object.
    assert re.search(r"[A-Za-z]{4,}", text), repr(exc)
    assert "aioquic" not in text and " object at 0x" not in text, repr(exc)
    if pattern:
        assert re.search(pattern, text), repr(exc)


def assert_clean(pool: Any) -> None:
    assert re.search(r"Requests: 0 active, 0 queued \| Connections: 0 active", repr(pool)), pool
    for connection in pool.connections:
        assert ", ACTIVE," not in connection.info(), pool.connections


async def outcome(pool: Any, url: str, read: float) -> Union[httpcore.Response, Exception]:
    started = time.monotonic()
    try:
        result: Union[httpcore.Response, Exception] = await pool.request(
            "GET", url, extensions=extensions(read)
        )
    except Exception as exc:
        result = exc
    elapsed = time.monotonic() - started
    assert elapsed < read + SLACK, f"{url}: {elapsed:.2f}s"
    return result


async def calm_follow_up(pool: Any, server: ChaosServer) -> None:
    """A calm request on the same pool succeeds, and leaves it clean."""
    assert_clean(pool)
    result = await outcome(pool, server.url + "/calm", READ)
    assert isinstance(result, httpcore.Response), repr(result)
    assert (result.status, result.content) == (200, b"calm")
    assert result.extensions["http_version"] == b"HTTP/3"
    assert_clean(pool)


def pool_for(api: helpers.API, context: Any) -> Any:
    return api.ConnectionPool(ssl_context=context, http1=False, http2=False, http3=True)


def case_params() -> List[Any]:
    params = []
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=case.defect)] if case.defect else []
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


@pytest.mark.parametrize("case", case_params())
async def test_scripted(
    api: helpers.API, chaos: ChaosServer, trust: ssl.SSLContext, case: Case
) -> None:
    url = chaos.add(f"/{api.flavour}/{case.name}", case.script, control=case.control)
    connections = chaos.connections
    with Watch():
        async with pool_for(api, trust) as pool:
            result = await outcome(pool, url, case.read)
            if case.expect is None:
                assert isinstance(result, httpcore.Response), repr(result)
                assert (result.status, result.content) == (case.status, case.body)
            else:
                assert isinstance(result, case.expect), repr(result)
                check_message(result, case.message)
            await calm_follow_up(pool, chaos)
        assert pool.connections == []
    assert chaos.connections - connections == case.connections
    if case.client_close is not None:
        # The server hears why (the CONNECTION_CLOSE goes out when the pool closes it).
        deadline = time.monotonic() + 5
        while case.client_close not in chaos.closes and time.monotonic() < deadline:
            time.sleep(0.01)
        assert case.client_close in chaos.closes, chaos.closes


async def test_random_mix(api: helpers.API, chaos: ChaosServer, trust: ssl.SSLContext) -> None:
    rng = random.Random(f"{SEED}")
    seen: List[str] = []
    with Watch(full_gc=True):
        for index in range(RANDOM_CASES):
            case = mutant(rng, index)
            url = chaos.add(f"/{api.flavour}/mix/{index}", case.script)
            read = SHORT_READ if case.expect is httpcore.ReadTimeout else READ
            async with pool_for(api, trust) as pool:
                result = await outcome(pool, url, read)
                where = f"case {index}: {case.fields!r}, body {case.body!r}: {result!r}"
                if case.expect is None or (case.expect == EITHER and not isinstance(result, RPE)):
                    assert isinstance(result, httpcore.Response), where
                    assert result.status == int(dict(case.fields)[b":status"]), where
                    regular = [(n, v) for n, v in case.fields if not n.startswith(b":")]
                    assert result.headers == regular, where
                    assert result.content == case.body, where
                    seen.append("success")
                else:
                    expected = RPE if case.expect == EITHER else case.expect
                    assert isinstance(expected, type)
                    assert isinstance(result, expected), where
                    check_message(result, "")
                    seen.append(type(result).__name__)
                await calm_follow_up(pool, chaos)
            assert pool.connections == []
    # The mix is the same every run (the seed): it holds every kind of outcome.
    assert set(seen) == {"success", "RemoteProtocolError", "ReadTimeout"}, seen
