"""How an HTTP/1.1 request is written, fuzzed and compared with h11 alone.

The connection writes most requests without h11 (a head it builds itself, an in-memory body
joined to it or written after it) and hands the rest to h11. Which way a request goes is not
this file's business: whatever the way, the bytes on the wire must be the bytes h11 writes for
the same request, and a request h11 refuses must fail with h11's message (API.md §4.3, §8, and
§12.5 for errors raised while sending the body).

Each case is one `HTTP11Connection` over a recording mock stream, sent 2-4 requests built as
callers build them (`make_case`): through the `request()`/`stream()` helpers (which add `Host`
and the framing header, API.md §3.3) or as a `Request` handed to `handle_request` (the caller's
headers only, API.md §2.3). A request may repeat the one before it: its header set (the very
object), the whole request, or the very `Request` object, sometimes after the caller changed
the shared object in place; state kept by a connection (or a memo of the fast path) would show
only on such a repeat.

The reference (`reference`) is a bare `h11.Connection` sent the same request: the headers the
connection is given (the helper's additions modelled here from API.md §3.3, not taken from the
library), an `h11.Data` per item the body yields, `h11.EndOfMessage()`. It is then fed the
response the mock server sends, so that it also says whether the connection may be reused
(API.md §4.3: when both h11 sides are DONE). Where API.md departs from httpcore 1.0.9 the
reference follows API.md: URLs parsed with `urlsplit` (`;params` kept) and IPv6 hosts bracketed
in `Host` (§12.3); h11's errors while sending a body raised as `httpcore.LocalProtocolError`
(§12.5).

Run deeper with `REQUESTS_FUZZ_CASES=5000`. At the end of the file: the bugs the fuzz found,
each at its smallest.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlsplit

import h11
import helpers
import pytest
from request_fuzz_cases import (
    BODY_KINDS,
    BYTES,
    HOST_DEFAULT_PORTS,
    IN_MEMORY,
    OK_HEAD,
    RESPONSES,
    BytesSubclass,
    Case,
    Spec,
    make_case,
    mutate,
    no_body,
    response_bytes,
)

import httpcore

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

try:  # httpx's own request stream, when httpx is installed (it is in the test environment)
    httpx: Any = importlib.import_module("httpx")
except ImportError:  # pragma: no cover
    httpx = None

# Connections per flavour, 2-4 requests each.
DEFAULT_CASES = 500
CASES = int(os.environ.get("REQUESTS_FUZZ_CASES", DEFAULT_CASES))


# -- the reference: h11 alone, with the helpers' additions of API.md §3.3 --------------------


@dataclass
class Expected:
    """What h11 makes of one request."""

    sent: bytes  # what h11 writes (up to its error, if any)
    error: Optional[Tuple[str, str]]  # (class name, message)
    before_io: bool = False  # the error comes from argument coercion, before any I/O
    reusable: bool = False  # after the response, both h11 sides are DONE
    family: str = "ok"  # for the vacuity test


class Refused(Exception):
    """A coercion error (API.md §2.6), raised before the connection is used."""


def as_bytes(value: Any, name: str) -> bytes:
    # API.md §2.6: str is ASCII-encoded, bytes (and subclasses) kept, anything else refused.
    if isinstance(value, str):
        if not value.isascii():
            raise Refused(f"{name} strings may not include unicode characters.")
        return value.encode("ascii")
    if isinstance(value, bytes):
        return value
    raise Refused(f"{name} must be bytes or str, but got {type(value).__name__}.")


def as_header_list(headers: Any) -> List[Tuple[bytes, bytes]]:
    if headers is None:
        return []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return [(as_bytes(k, "header name"), as_bytes(v, "header value")) for k, v in pairs]


@dataclass
class ParsedURL:
    scheme: bytes
    host: bytes
    port: Optional[int]
    target: bytes


def as_url(url: Any) -> ParsedURL:
    if isinstance(url, httpcore.URL):
        return ParsedURL(url.scheme, url.host, url.port, url.target)
    raw = as_bytes(url, "url")
    # API.md §2.1 with §12.3 fixed: `urlsplit` semantics, so `;params` stay in the target.
    parts = urlsplit(raw)
    target = parts.path or b"/"
    if parts.query:
        target += b"?" + parts.query
    return ParsedURL(parts.scheme, parts.hostname or b"", parts.port, target)


def with_helper_headers(
    headers: List[Tuple[bytes, bytes]], url: ParsedURL, spec: Spec
) -> List[Tuple[bytes, bytes]]:
    """API.md §3.3: Host prepended unless present (IPv6 bracketed, §12.3); a Content-Length
    (bytes) or `Transfer-Encoding: chunked` (anything else) appended when the caller gave
    neither and there is a body."""
    names = {name.lower() for name, _ in headers}
    result = list(headers)
    if b"host" not in names:
        host = b"[" + url.host + b"]" if b":" in url.host else url.host
        if url.port is not None and url.port != HOST_DEFAULT_PORTS.get(url.scheme):
            host += b":%d" % url.port
        result.insert(0, (b"Host", host))
    if spec.body != "none" and not names & {b"content-length", b"transfer-encoding"}:
        if spec.body in BYTES:
            result.append((b"Content-Length", b"%d" % len(spec.chunks[0])))
        else:
            result.append((b"Transfer-Encoding", b"chunked"))
    return result


def content_of(spec: Spec, is_async: bool) -> Any:
    """The `content` argument, built afresh (iterators are used up by a request)."""
    kind, chunks = spec.body, spec.chunks
    if kind == "none":
        return None
    if kind in ("empty", "bytes", "large"):
        return chunks[0]
    if kind == "subclass":
        return BytesSubclass(chunks[0])
    if kind == "bytearray":
        return bytearray(chunks[0])
    if kind == "memoryview":
        return memoryview(chunks[0])
    if kind == "httpx":
        return httpx.ByteStream(chunks[0])
    if kind == "list":
        return list(chunks)
    assert kind == "iterator", kind
    if is_async:

        async def agen() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        return agen()

    def gen() -> Iterator[bytes]:
        yield from chunks

    return gen()


def body_items(spec: Spec, is_async: bool) -> Optional[List[Any]]:
    """What iterating the request's stream yields (API.md §2.3: bytes become a `ByteStream`
    yielding them once, `None` an empty one; anything else is stored unchanged and iterated:
    a `bytearray` or `memoryview` yields ints). None: a sync-only iterable given to an async
    connection (API.md §0: async bodies must be async iterables)."""
    kind, chunks = spec.body, spec.chunks
    if kind in IN_MEMORY:
        return [chunks[0]]
    if kind == "iterator":
        return list(chunks)
    if is_async:
        return None
    if kind == "list":
        return list(chunks)
    return list(bytearray(chunks[0]))


def wire_method(spec: Spec) -> bytes:
    try:
        return as_bytes(spec.method, "method")
    except Refused:
        return b""


def family_of(message: str) -> str:
    for words, family in [
        ("Illegal header name", "header name"),
        ("Illegal header value", "header value"),
        ("Host: header", "host"),
        ("Illegal method", "method"),
        ("Illegal target", "target"),
        ("data for declared Content-Length", "body length"),
        ("Content-Length", "content-length"),
        ("Transfer-Encoding", "transfer-encoding"),
        ("has no len()", "body type"),
    ]:
        if words in message:
            return family
    return "other: " + message  # pragma: no cover


@dataclass
class Simulation:
    """The reference's copies of the caller's objects, changed as the caller changes them."""

    objects: Dict[int, Any] = field(default_factory=dict)
    # The request the previous spec built for `handle_request`: (method, target, headers).
    last_request: Optional[Tuple[bytes, bytes, List[Tuple[bytes, bytes]]]] = None

    def current(self, obj: Any) -> Any:
        return self.objects.get(id(obj), obj)

    def mutate(self, spec: Spec) -> None:
        assert spec.mutation is not None
        shared = spec.url if spec.mutation[0] == "target" else spec.headers
        now = self.current(shared)
        copy: Any
        if isinstance(now, httpcore.URL):
            scheme, host, port = now.scheme, now.host, now.port
            copy = httpcore.URL(scheme=scheme, host=host, port=port, target=now.target)
        else:
            copy = type(now)(now)  # a list or a dict
        mutate(spec, copy)
        self.objects[id(shared)] = copy


def build(spec: Spec, sim: Simulation) -> Tuple[bytes, bytes, Any]:
    """The request's method, target and headers, as the connection is handed them."""
    previous, sim.last_request = sim.last_request, None
    if spec.repeat == "same Request object" and previous is not None:
        method, target, headers = previous
        headers = list(headers)
        if spec.mutation is not None:
            headers.append(spec.mutation[1])
        sim.last_request = (method, target, headers)
        return method, target, headers
    if spec.mutation is not None and spec.mutation[0] != "request-append":
        sim.mutate(spec)
    # The order of the coercions (their first error wins): method, URL, headers (API.md §3.3,
    # §2.3), then the target extension (§2.3).
    method = as_bytes(spec.method, "method")
    url = as_url(sim.current(spec.url))
    headers = as_header_list(sim.current(spec.headers))
    if spec.call != "handle":
        headers = with_helper_headers(headers, url, spec)
    if spec.target is not None:  # API.md §2.3: the extension replaces the URL's target
        url.target = as_bytes(spec.target, "target")
    if spec.call == "handle":
        sim.last_request = (method, url.target, headers)
    return method, url.target, headers


def reference_send(conn: h11.Connection, spec: Spec, is_async: bool, sim: Simulation) -> Expected:
    """What h11 writes for the request (or how it refuses it)."""
    try:
        method, target, headers = build(spec, sim)
    except Refused as exc:
        return Expected(b"", ("TypeError", str(exc)), before_io=True, family="coercion")
    items = body_items(spec, is_async)
    if items is None:
        # Refused by the connection before it writes anything (API.md §0; §2.6's wording).
        message = (
            "request body must be bytes or an async iterable of bytes on an async "
            f"connection, but got {spec.body}."
        )
        return Expected(b"", ("TypeError", message), before_io=True, family="async misuse")
    sent = b""
    try:
        sent += conn.send(h11.Request(method=method, target=target, headers=headers)) or b""
        for item in items:
            sent += conn.send(h11.Data(data=item)) or b""
        sent += conn.send(h11.EndOfMessage()) or b""
    except h11.LocalProtocolError as exc:
        message = str(exc)
        return Expected(sent, ("LocalProtocolError", message), family=family_of(message))
    except TypeError as exc:  # h11 given ints by a bytearray's iteration
        message = str(exc)
        return Expected(sent, ("TypeError", message), family=family_of(message))
    return Expected(sent, None)


def reference_receive(conn: h11.Connection, spec: Spec, method: bytes) -> bool:
    """Feed h11 the response; whether the connection may then be reused (API.md §4.3: both
    h11 sides DONE)."""
    conn.receive_data(response_bytes(spec.response, method))
    while True:
        event = conn.next_event()
        assert event is not h11.NEED_DATA, spec
        if event is h11.PAUSED:
            return False  # a CONNECT answered by a 2xx: the connection is the tunnel's now
        if type(event) is h11.EndOfMessage:
            break
    if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
        conn.start_next_cycle()
        return True
    return False


def reference(case: Case, is_async: bool) -> List[Expected]:
    """h11's answer for each request, up to the first that leaves the connection closed."""
    conn = h11.Connection(h11.CLIENT)
    sim = Simulation()
    result = []
    for spec in case.specs:
        expected = reference_send(conn, spec, is_async, sim)
        result.append(expected)
        if expected.before_io:
            continue  # nothing was sent: the connection is as it was
        if expected.error is not None:
            break
        expected.reusable = reference_receive(conn, spec, wire_method(spec))
        if not expected.reusable:
            break
    return result


# -- the connection -------------------------------------------------------------------------

Outcome = Tuple[Any, ...]  # ("ok", status, body) | ("error", exception)


@dataclass
class Caller:
    """What a caller keeps between requests: the `Request` it built last (for
    `handle_request`)."""

    last_request: Optional[httpcore.Request] = None


async def send(api: helpers.API, connection: Any, spec: Spec, caller: Caller) -> Outcome:
    previous, caller.last_request = caller.last_request, None
    try:
        if spec.repeat == "same Request object" and previous is not None:
            request = previous
            if spec.mutation is not None:
                mutate(spec, request.headers)
        else:
            if spec.mutation is not None and spec.mutation[0] != "request-append":
                mutate(spec, spec.url if spec.mutation[0] == "target" else spec.headers)
            extensions: Dict[str, Any] = {}
            if spec.target is not None:
                extensions["target"] = spec.target
            if spec.trace:
                extensions["trace"] = api.trace(lambda name, info: None)
            content = content_of(spec, api.is_async)
            arguments = (spec.method, spec.url)
            options = {"headers": spec.headers, "content": content, "extensions": extensions}
            if spec.call == "request":
                response = await connection.request(*arguments, **options)
                return ("ok", response.status, response.content)
            if spec.call == "stream":
                async with connection.stream(*arguments, **options) as response:
                    body = b"".join([chunk async for chunk in response.aiter_stream()])
                return ("ok", response.status, body)
            request = httpcore.Request(*arguments, **options)
        caller.last_request = request
        response = await connection.handle_async_request(request)
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        return ("ok", response.status, body)
    except Exception as exc:  # any class: compared with h11's below
        return ("error", exc)


def shown(data: Any, limit: int = 300) -> str:
    """`data`'s repr, its middle left out when long."""
    text = repr(data)
    return text if len(text) <= limit else text[: limit - 80] + " ... " + text[-80:]


def describe(case: Case, upto: int, is_async: bool) -> str:
    lines = [
        f"seed {case.seed} (make_case({case.seed}), {'async' if is_async else 'sync'}): "
        f"HTTP11Connection to {case.origin}"
    ]
    for index, spec in enumerate(case.specs[: upto + 1]):
        body = b"".join(spec.chunks)
        mutation = f", after {spec.mutation}" if spec.mutation else ""
        lines.append(
            f"  [{index}] {spec.repeat}{mutation}: {spec.call}({shown(spec.method)}, "
            f"{shown(spec.url)}, headers={shown(spec.headers)}, content={spec.body} "
            f"{[len(chunk) for chunk in spec.chunks]} {shown(body, 80)}, "
            f"target={spec.target!r}, trace={spec.trace}), server: {spec.response}"
        )
    return "\n".join(lines)


def first_difference(a: bytes, b: bytes) -> str:
    at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"from byte {at}: {shown(a[at : at + 120])} vs h11 {shown(b[at : at + 120])}"


def check(
    index: int, want: Expected, outcome: Outcome, written: bytes, method: bytes, where: str
) -> None:
    """The request's outcome against h11's."""
    if want.error is None:
        if outcome[0] == "error":
            exc = outcome[1]
            raise AssertionError(
                f"request {index} raised {exc!r} after writing {shown(written)}; "
                f"h11 writes {shown(want.sent)}\n{where}"
            ) from exc
        assert written == want.sent, (
            f"request {index} wrote {len(written)} bytes, h11 {len(want.sent)}: "
            f"{first_difference(written, want.sent)}\n{where}"
        )
        body = b"" if no_body(method) else b"ok"
        assert outcome == ("ok", 200, body), f"{outcome!r}\n{where}"
        return
    kind, message = want.error
    assert outcome[0] == "error", (
        f"request {index} succeeded and wrote {shown(written)}; h11: {kind}: "
        f"{message} (after {shown(want.sent)})\n{where}"
    )
    exc = outcome[1]
    got = (type(exc).__name__, str(exc))
    assert got == want.error, (
        f"request {index} raised {got} after writing {shown(written)}; h11: {want.error}\n{where}"
    )
    if kind == "LocalProtocolError":
        assert isinstance(exc, httpcore.LocalProtocolError), f"{exc!r}\n{where}"
    # Never more than h11 wrote before refusing (it may be less: a body in memory can be
    # checked before anything is written).
    assert want.sent.startswith(written), (
        f"request {index} wrote {shown(written)} before {exc!r}; h11 {shown(want.sent)}\n{where}"
    )


async def run_case(api: helpers.API, case: Case) -> None:
    expected = reference(case, api.is_async)
    served = [
        response_bytes(spec.response, wire_method(spec))
        for spec, want in zip(case.specs, expected)
        if want.error is None
    ]
    stream = api.mock_stream(served)
    connection = api.HTTP11Connection(case.origin, stream)
    caller = Caller()
    offset = 0
    try:
        for index, want in enumerate(expected):
            spec = case.specs[index]
            outcome = await send(api, connection, spec, caller)
            written, offset = stream.data[offset:], len(stream.data)
            where = describe(case, index, api.is_async)
            check(index, want, outcome, written, wire_method(spec), where)
            if want.before_io:
                # Refused while building the request: the connection was not used.
                assert not written and not connection.is_closed(), f"{connection!r}\n{where}"
            elif want.reusable:
                assert connection.is_idle(), f"{connection!r}, h11: reusable\n{where}"
            else:
                # API.md §4.3: a response h11 is not DONE with, or an exception, closes it.
                assert connection.is_closed(), f"{connection!r}, h11: closes\n{where}"
                assert stream.closed, where
                with pytest.raises(httpcore.ConnectionNotAvailable):
                    await connection.request("GET", case.plain_url)
    finally:
        await connection.aclose()


def summary(failures: List[str]) -> str:
    """The first failure of each kind (by its first line, numbers left out)."""
    kinds: Dict[str, str] = {}
    for failure in failures:
        first = re.sub(r"<[^>]*>|b'[^']*'|\d+", "", failure.splitlines()[0])[:60]
        kinds.setdefault(first, failure)
    return "\n\n".join(list(kinds.values())[:6])


@pytest.mark.anyio
async def test_requests_are_written_as_h11_writes_them(api: helpers.API) -> None:
    failures = []
    seeds = []
    for seed in range(CASES):
        try:
            await run_case(api, make_case(seed))
        except AssertionError as exc:
            failures.append(str(exc))
            seeds.append(seed)
    assert not failures, (
        f"{len(failures)} of {CASES} cases disagree with h11 (seeds {seeds}); the first of "
        f"each kind:\n\n{summary(failures)}"
    )


# -- the generator is not vacuous -----------------------------------------------------------


def test_the_request_fuzz_is_not_vacuous() -> None:
    """Across the seeds (h11 decides): successes and each family of h11's refusals, every body
    kind, call and response sent, and header sets (and whole requests) sent again on one
    connection after a request that left it reusable, the shared objects changed or not."""
    sent: List[Tuple[Spec, Expected]] = []
    repeats: Dict[str, int] = {}
    mutations: Dict[str, int] = {}
    for seed in range(DEFAULT_CASES):
        case = make_case(seed)
        for is_async in (False, True):
            expected = reference(case, is_async)
            sent += [(case.specs[i], want) for i, want in enumerate(expected)]
            for i in range(1, len(expected)):
                spec, want, before = case.specs[i], expected[i], expected[i - 1]
                if spec.repeat != "fresh" and before.reusable and not want.before_io:
                    repeats[spec.repeat] = repeats.get(spec.repeat, 0) + 1
                    if spec.mutation is not None:
                        kind = spec.mutation[0]
                        mutations[kind] = mutations.get(kind, 0) + 1
    ok = [(spec, want) for spec, want in sent if want.error is None]
    refused = [want for _, want in sent if want.error is not None]
    assert len(ok) >= 1000 and len(refused) >= 200, (len(ok), len(refused))
    families = {want.family for want in refused}
    assert families == {
        "coercion",
        "header name",
        "header value",
        "host",
        "method",
        "target",
        "content-length",
        "transfer-encoding",
        "body length",
        "body type",
        "async misuse",
    }, families
    messages = {want.error[1] for want in refused if want.error is not None}
    assert {
        "Missing mandatory Host: header",
        "Found multiple Host: headers",
        "Too much data for declared Content-Length",
        "Too little data for declared Content-Length",
        "conflicting Content-Length headers",
        "multiple Transfer-Encoding headers",
    } <= messages, messages
    assert {spec.body for spec, _ in ok} == set(BODY_KINDS)
    assert {spec.call for spec, _ in ok} == {"request", "stream", "handle"}
    assert {spec.response for spec, _ in ok} == set(RESPONSES)
    assert sum(want.reusable for _, want in ok) >= 500
    assert sum(not want.reusable for _, want in ok) >= 50
    assert sum(len(want.sent) > 64 * 1024 for _, want in ok) >= 20
    assert sum(want.sent.endswith(b"\r\n0\r\n\r\n") for _, want in ok) >= 100  # chunked
    assert sum(b"\r\nContent-Length: 0\r\n" in want.sent for _, want in ok) >= 50
    assert sum(spec.target is not None for spec, _ in ok) >= 50
    assert sum(spec.trace for spec, _ in ok) >= 50
    assert sum(isinstance(spec.headers, dict) for spec, _ in ok) >= 200
    assert sum(b"CONNECT " in want.sent[:8] for _, want in ok) >= 5
    assert sum(b"\r\nHost: [" in want.sent for _, want in ok) >= 50  # IPv6, bracketed
    assert all(n >= 30 for n in repeats.values()) and len(repeats) == 3, repeats
    assert all(n >= 15 for n in mutations.values()) and len(mutations) == 4, mutations


# -- what the fuzz found, at its smallest -----------------------------------------------------

ORIGIN = httpcore.Origin(b"http", b"example.com", 80)
URL = "http://example.com/"
OK = OK_HEAD + b"ok"


def h11_writes(method: bytes, target: bytes, headers: List[Tuple[bytes, bytes]]) -> bytes:
    conn = h11.Connection(h11.CLIENT)
    data = conn.send(h11.Request(method=method, target=target, headers=headers)) or b""
    return data + (conn.send(h11.EndOfMessage()) or b"")


# A request-target holding obs-text bytes (0x80-0xFF) is refused by h11 ("Illegal target
# characters": its request-target is VCHARs only), but the fast path's target grammar allows
# obs-text, so the request went out. (Reached through the `target` extension or a `URL` built
# from its parts, which API.md §2.1 lets hold any bytes.)
@pytest.mark.anyio
@pytest.mark.parametrize(
    ("how", "target"), [("extension", b"/caf\xe9"), ("URL parts", b"/search?q=\xff")]
)
async def test_a_target_with_obs_text_is_refused_as_h11_refuses_it(
    api: helpers.API, target: bytes, how: str
) -> None:
    with pytest.raises(h11.LocalProtocolError) as h11_error:
        h11_writes(b"GET", target, [(b"Host", b"example.com")])
    stream = api.mock_stream([OK])
    connection = api.HTTP11Connection(ORIGIN, stream)
    with pytest.raises(httpcore.LocalProtocolError) as info:
        if how == "extension":
            await connection.request("GET", URL, extensions={"target": target})
        else:
            url = httpcore.URL(scheme=b"http", host=b"example.com", target=target)
            await connection.request("POST", url, content=b"abc")
    assert str(info.value) == str(h11_error.value) == "Illegal target characters"
    assert stream.data == b""
    assert connection.is_closed()


# Keep-alive is h11's rule (API.md §4.3: reused when both h11 sides are DONE), and h11 reads
# `Connection` as a list of tokens: only the token `close` closes. Where the connection reads a
# body itself, it looked for "close" anywhere in the value, so `Connection: x-closer` (in the
# request or in the response) closed a connection h11 keeps.
@pytest.mark.anyio
@pytest.mark.parametrize(
    ("side", "value"),
    [("request", b"x-closer"), ("request", b"keep-alive, closed"), ("response", b"x-closer")],
)
async def test_close_inside_another_connection_token_keeps_the_connection(
    api: helpers.API, side: str, value: bytes
) -> None:
    headers = [(b"Connection", value)] if side == "request" else []
    response = OK if side == "request" else OK_HEAD[:-2] + b"Connection: " + value + b"\r\n\r\nok"
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=b"GET", target=b"/", headers=[(b"Host", b"x"), *headers]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(response)
    while type(conn.next_event()) is not h11.EndOfMessage:
        pass
    assert (conn.our_state, conn.their_state) == (h11.DONE, h11.DONE)  # h11 would reuse it

    stream = api.mock_stream([response, OK])
    connection = api.HTTP11Connection(ORIGIN, stream)
    assert (await connection.request("GET", URL, headers=headers)).content == b"ok"
    assert connection.is_idle(), connection
    assert (await connection.request("GET", URL)).content == b"ok"


# A request proposing an upgrade (`Connection: Upgrade` + `Upgrade: ...`) leaves h11's client
# side in MIGHT_SWITCH_PROTOCOL until h11 sees the response; a 200 refuses the upgrade and both
# sides are then DONE. When h11 wrote the request (a body iterator, a trace callback) but the
# connection read the 200 itself, h11 never saw it, and the connection was closed though h11
# would reuse it. (With a bytes body, written without h11, it was kept: one request, two
# keep-alive decisions, depending on the path.)
@pytest.mark.anyio
@pytest.mark.parametrize("body", ["bytes", "iterator", "bytes, traced"])
async def test_an_upgrade_refused_by_a_200_keeps_the_connection(
    api: helpers.API, body: str
) -> None:
    headers = [(b"Connection", b"Upgrade"), (b"Upgrade", b"h2c")]
    content: Any = api.body([b"abc"]) if body == "iterator" else b"abc"
    extensions = {"trace": api.trace(lambda name, info: None)} if "traced" in body else {}
    stream = api.mock_stream([OK, OK])
    connection = api.HTTP11Connection(ORIGIN, stream)
    response = await connection.request(
        "POST", URL, headers=headers, content=content, extensions=extensions
    )
    assert response.content == b"ok"
    assert connection.is_idle(), connection
    assert (await connection.request("GET", URL)).content == b"ok"
    assert stream.data.endswith(h11_writes(b"GET", b"/", [(b"Host", b"example.com")]))
