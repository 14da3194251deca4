"""The fast paths (response-head parser, request serializer) agree with h11.

Every case asserts: a head the fast parser accepts parses as h11 parses it, and every head, taken
or declined, gives through a real `HTTP11Connection` the response (or the error, with h11's
message) that h11 alone gives. The same for requests: the bytes the connection writes are the
bytes h11 writes, or both refuse. The random samples are deduplicated (the earlier 2,866
parametrised cases held 896 duplicates, e.g. 25 copies of each header-less head): 1,164 heads
(76 taken by the fast parser, 254 valid ones declined, 834 that h11 rejects) and 806 requests.
"""

from __future__ import annotations

import itertools
import random
from typing import Any, List, Optional, Tuple

import h11
import helpers
import pytest

import httpcore
from httpcore.base._http11 import parse_simple_head, serialize_simple_request
from httpcore.base._http11_simple import CHUNKED

STATUS_LINES = [
    b"HTTP/1.1 200 OK",
    b"HTTP/1.0 200 OK",
    b"HTTP/1.1 200",
    b"HTTP/1.1 200 ",
    b"HTTP/1.1 404 Not Found",
    b"HTTP/1.1 599 \xe9t\xe9",
    b"HTTP/1.1 100 Continue",
    b"HTTP/1.1 204 No Content",
    b"HTTP/1.1 304 Not Modified",
    b"HTTP/2.0 200 OK",
    b"HTTP/1.1 20 OK",
    b"HTTP/1.1  200 OK",
    b"http/1.1 200 OK",
    b"HTTP/1.1 200 O\x00K",
]
HEADER_LINES = [
    b"Content-Length: 5",
    b"content-length:5",
    b"Content-Length: 5 ",
    b"Content-Length: 05",
    b"Content-Length: 5, 5",
    b"Content-Length: -1",
    b"Content-Length: x",
    b"Transfer-Encoding: chunked",
    b"transfer-encoding:Chunked ",
    b"Transfer-Encoding: gzip, chunked",
    b"Transfer-Encoding: identity",
    b"Connection: close",
    b"X-Empty:",
    b"X-Spaces:   a   b  ",
    b"X-Obs: \xff\xfe",
    b"X-Bad Name: 1",
    b"X-Bad : 1",
    b" folded",
    b"NoColon",
    b"X-Ctl: a\x01b",
    b"X-Tab:\tv\t",
    b"Server: nginx/1.22.1",
]


Outcome = Tuple[Any, ...]  # ("response", version, status, reason, headers) | ("error", message)


def h11_outcome(head: bytes) -> Outcome:
    """What h11 alone makes of the head: the response, or its error message (None: the head is
    an interim response that a client skips, after which the server hung up)."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(head + b"\r\n\r\n")
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        return ("error", str(exc))
    if isinstance(event, h11.InformationalResponse) and event.status_code != 101:
        return ("error", None)
    return (
        "response",
        b"HTTP/" + event.http_version,
        event.status_code,
        event.reason,
        event.headers.raw_items(),
    )


def connection_outcome(head: bytes) -> Outcome:
    """What the public path (an `HTTP11Connection` reading it from a stream) makes of it."""
    stream = helpers.SyncRecordingStream([head + b"\r\n\r\n" + b"x" * 8])
    conn = httpcore.HTTP11Connection(origin=helpers.origin("http://x:80"), stream=stream)
    try:
        response = conn.handle_request(httpcore.Request("GET", "http://x/", headers={"Host": "x"}))
    except httpcore.RemoteProtocolError as exc:
        return ("error", str(exc))
    response.close()
    extensions = response.extensions
    return (
        "response",
        extensions["http_version"],
        response.status,
        extensions["reason_phrase"],
        response.headers,
    )


def heads() -> list[bytes]:
    rng = random.Random(1234)
    result = []
    for status in STATUS_LINES:
        for count in range(4):
            for _ in range(25):
                lines = rng.sample(HEADER_LINES, count)
                result.append(b"\r\n".join([status, *lines]))
    for status, line in itertools.product(STATUS_LINES, HEADER_LINES):
        result.append(b"\r\n".join([status, b"Content-Length: 3", line]))
    return list(dict.fromkeys(result))


def assert_connection_agrees_with_h11(head: bytes) -> Outcome:
    expected = h11_outcome(head)
    outcome = connection_outcome(head)
    if expected[1] is None:  # an interim response, then nothing: skipped, then the hang-up
        assert outcome[0] == "error", outcome
    else:
        assert outcome == expected
    return expected


@pytest.mark.parametrize("head", heads())
def test_heads_parse_as_h11_does(head: bytes) -> None:
    expected = assert_connection_agrees_with_h11(head)
    parsed = parse_simple_head(head)
    if parsed is not None:
        assert expected[0] == "response", head
        version, status, reason, headers, length = parsed
        assert (b"HTTP/" + version, status, reason, headers) == expected[1:]
        content_lengths = [v for k, v in headers if k.lower() == b"content-length"]
        codings = [v for k, v in headers if k.lower() == b"transfer-encoding"]
        if length == CHUNKED:
            assert version == b"1.1" and not content_lengths, head
            assert [v.lower() for v in codings] == [b"chunked"], head
        else:
            assert not codings, head
            assert [int(v) for v in content_lengths] == [length]


def test_the_samples_cover_both_paths() -> None:
    taken = [head for head in heads() if parse_simple_head(head) is not None]
    declined_valid = [
        head
        for head in heads()
        if parse_simple_head(head) is None and h11_outcome(head)[0] == "response"
    ]
    assert len(taken) >= 50
    assert len(declined_valid) >= 200


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (
            b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2048\r\nConnection: keep-alive",
            [(b"Server", b"nginx"), (b"Content-Length", b"2048"), (b"Connection", b"keep-alive")],
        ),
        (
            b"HTTP/1.1 200 OK\r\nServer: x\r\nTRANSFER-Encoding:  chunked \r\nX-A: b",
            [(b"Server", b"x"), (b"TRANSFER-Encoding", b"chunked"), (b"X-A", b"b")],
        ),
    ],
    ids=["content-length", "chunked"],
)
def test_the_common_heads_take_the_fast_path(head: bytes, expected: Any) -> None:
    length = CHUNKED if b"chunked" in head else 2048
    assert parse_simple_head(head) == (b"1.1", 200, b"OK", expected, length)


def test_a_chunked_coding_in_another_case_is_for_h11() -> None:
    # h11 hands the value on lower-cased, which the fast path would not.
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked"
    assert parse_simple_head(head) is None
    assert parse_simple_head(head.replace(b"Chunked", b"chunked")) is not None


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked",
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 101 Switching Protocols\r\nContent-Length: 0",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1",
        # The heads test_safety_net.py sends to exercise the h11 path.
        b"HTTP/1.1 100 Continue",
        b"HTTP/1.0 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nContent-Length: 2",
        b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nConnection: Close\r\nContent-Length: 2",
    ],
)
def test_other_heads_go_to_h11(head: bytes) -> None:
    assert parse_simple_head(head) is None
    assert_connection_agrees_with_h11(head)


# -- requests: the fast serializer writes exactly what h11 would, or leaves it to h11 --------

REQUEST_HEADERS = [
    (b"Host", b"example.com"),
    (b"host", b"example.com:8080"),
    (b"Content-Length", b"3"),
    (b"Content-Length", b"0"),
    (b"content-length", b"x"),
    (b"Transfer-Encoding", b"chunked"),
    (b"Accept", b"*/*"),
    (b"X-Empty", b""),
    (b"X-Space", b" padded "),
    (b"X-Obs", b"\xff"),
    (b"Bad Name", b"1"),
    (b"X-Nul", b"a\x00b"),
    (b"Connection", b"close"),
    (b"User-Agent", b"test/1.0 (x; y)"),
]


def h11_request_bytes(method: bytes, target: bytes, headers: list, content: bytes) -> bytes | None:
    conn = h11.Connection(h11.CLIENT)
    try:
        data = conn.send(h11.Request(method=method, target=target, headers=headers))
        if content:
            data += conn.send(h11.Data(data=content))
        data += conn.send(h11.EndOfMessage())
    except h11.LocalProtocolError:
        return None
    return data


def requests() -> list[tuple[bytes, bytes, list, bytes]]:
    rng = random.Random(4321)
    result = {}
    for method, target in [(b"GET", b"/"), (b"POST", b"/a?b=c"), (b"G T", b"/"), (b"GET", b"/a b")]:
        for count in range(5):
            for _ in range(30):
                headers = rng.sample(REQUEST_HEADERS, count)
                for content in (b"", b"abc"):
                    result[repr((method, target, headers, content))] = (
                        method,
                        target,
                        headers,
                        content,
                    )
    return list(result.values())


def written_by_connection(
    method: bytes, target: bytes, headers: List[Any], content: bytes
) -> Optional[bytes]:
    """The bytes an `HTTP11Connection` writes for the request (None: LocalProtocolError)."""
    stream = helpers.SyncRecordingStream([b"HTTP/1.1 204 No Content\r\n\r\n"])
    conn = httpcore.HTTP11Connection(origin=helpers.origin("http://h:80"), stream=stream)
    url = httpcore.URL(scheme=b"http", host=b"h", target=target)
    try:
        conn.handle_request(httpcore.Request(method, url, headers=headers, content=content))
    except httpcore.LocalProtocolError:
        return None
    return stream.data


@pytest.mark.parametrize(("method", "target", "headers", "content"), requests())
def test_simple_requests_serialize_as_h11_does(
    method: bytes, target: bytes, headers: list, content: bytes
) -> None:
    expected = h11_request_bytes(method, target, headers, content)
    assert written_by_connection(method, target, headers, content) == expected
    request = httpcore.Request(
        method, httpcore.URL(scheme=b"http", host=b"h", target=target), headers=headers
    )
    data = serialize_simple_request(request, content)
    if data is not None:
        assert data == expected


# The fast patterns are rewritten forms of the RFC-built ones (`_http11_simple.py`); they must
# accept exactly the same strings. Exhaustive over short strings of an alphabet that holds one
# byte of each class that matters (token, other VCHAR, SP, HTAB, obs-text, CTL, CR, LF, colon).
_ALPHABET = [b"a", b"/", b" ", b"\t", b"\x80", b"\x7f", b"\x00", b"\r", b"\n", b":"]


def _strings(max_length: int) -> List[bytes]:
    return [
        b"".join(letters)
        for length in range(max_length + 1)
        for letters in itertools.product(_ALPHABET, repeat=length)
    ]


def test_the_fast_field_value_pattern_accepts_what_the_rfc_form_accepts() -> None:
    import re

    from httpcore.base import _http11_simple as simple

    rfc = re.compile(simple.FIELD_VALUE)
    strings = _strings(5)
    assert len(strings) == 111_111
    for value in strings:
        fast = simple._FIELD_VALUE.fullmatch(value) is not None
        assert (rfc.fullmatch(value) is not None) == fast, value


def test_the_fast_field_lines_pattern_accepts_what_the_rfc_form_accepts() -> None:
    import re

    from httpcore.base import _http11_simple as simple

    rfc = re.compile(simple.FIELD_LINES)
    accepted = 0
    for tail in _strings(4):
        for head in (b"\r\na:" + tail, b"\r\na: x\r\nb:" + tail, b"\r\n" + tail):
            fast = simple._FIELD_LINES.fullmatch(head) is not None
            assert (rfc.fullmatch(head) is not None) == fast, head
            accepted += fast
    assert accepted > 1000  # the comparison is not vacuous


def test_header_values_are_split_as_h11_splits_them() -> None:
    """Names and values of the fast parser, with and without optional whitespace around
    values, and values holding colons, equal h11's."""
    for field in (b"X: a:b", b"X:a", b"X:  a b \t", b"X:\t", b"X: \t a", b"Y-1: v  "):
        head = b"HTTP/1.1 200 OK\r\n" + field + b"\r\nContent-Length: 0"
        parsed = parse_simple_head(head)
        assert parsed is not None, field
        outcome = h11_outcome(head)
        assert outcome[0] == "response", field
        assert parsed[3] == outcome[4], field


def test_remembered_header_names_still_decline_what_is_not_a_token() -> None:
    from httpcore.base import _http11_simple as simple

    url = httpcore.URL("http://h/")
    good = httpcore.Request(b"GET", url, headers=[(b"Host", b"h"), (b"X-Name", b"v")])
    assert simple.serialize_simple_head(good, 0) is not None
    assert b"X-Name" in simple._NAME_KINDS
    for name in (b"X Name", b"X-Name:", b"", b"X-Name\r\n"):
        bad = httpcore.Request(b"GET", url, headers=[(b"Host", b"h"), (name, b"v")])
        assert simple.serialize_simple_head(bad, 0) is None, name
        assert name not in simple._NAME_KINDS
    # Case variants of the framing names keep their meaning once remembered.
    for host in (b"HOST", b"hOsT"):
        twice = httpcore.Request(b"GET", url, headers=[(b"Host", b"h"), (host, b"h")])
        assert simple.serialize_simple_head(twice, 0) is None
    te = httpcore.Request(
        b"GET", url, headers=[(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")]
    )
    assert simple.serialize_simple_head(te, 0) is None
    assert simple.serialize_simple_head(te, 0) is None  # remembered, still declined


def test_remembered_request_header_names_are_bounded() -> None:
    from httpcore.base import _http11_simple as simple

    simple._NAME_KINDS.clear()
    url = httpcore.URL("http://h/")
    names = [b"X-Name-%d" % i for i in range(600)]
    request = httpcore.Request(b"GET", url, headers=[(b"Host", b"h")] + [(n, b"v") for n in names])
    assert simple.serialize_simple_head(request, 0) is not None
    assert len(simple._NAME_KINDS) == 512
    assert list(simple._NAME_KINDS)[:2] == [b"Host", b"X-Name-0"]
    simple._NAME_KINDS.clear()


# -- the memo of parsed heads ------------------------------------------------------------------


@pytest.fixture()
def head_memo() -> Any:
    from httpcore.base import _http11_simple as simple

    simple._HEAD_MEMO.clear()
    yield simple
    simple._HEAD_MEMO.clear()


NGINX_HEAD = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 20:17:37 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 2048\r\nConnection: keep-alive"
)


@pytest.mark.parametrize("head", [NGINX_HEAD, NGINX_HEAD.replace(b"keep-alive", b"close")])
def test_a_remembered_head_is_what_parsing_gives(head_memo: Any, head: bytes) -> None:
    """Met again, a head gives what parsing it gives (and whether it says `Connection:
    close`), with a header list of its own whose pairs (immutable) are shared."""
    expected = (*head_memo.parse_simple_head(head), head_memo.head_says_close(head, len(head)))
    first = head_memo.remembered_simple_head(head)
    assert first == expected
    first[3].append((b"X-Mine", b"1"))
    second = head_memo.remembered_simple_head(bytes(bytearray(head)))  # equal, not the same
    assert second == expected
    assert second[3] is not first[3] and second[3][0] is first[3][0]
    assert list(head_memo._HEAD_MEMO) == [head]


def test_a_declined_head_is_remembered_as_declined(head_memo: Any) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip"
    assert head_memo.remembered_simple_head(head) is None
    assert head_memo._HEAD_MEMO == {head: None}
    assert head_memo.remembered_simple_head(head) is None


@pytest.mark.parametrize(
    "field", [b"Set-Cookie: id=1", b"set-cookie:id=1", b"Authentication-Info: x=1"]
)
def test_heads_with_cookies_or_credentials_are_never_remembered(
    head_memo: Any, field: bytes
) -> None:
    head = NGINX_HEAD + b"\r\n" + field
    for _ in range(2):
        assert head_memo.remembered_simple_head(head)[3] == head_memo.parse_simple_head(head)[3]
    assert head_memo._HEAD_MEMO == {}


def test_the_head_memo_is_bounded(head_memo: Any) -> None:
    long_head = NGINX_HEAD + b"\r\nX-Long: " + b"v" * head_memo.MAX_REMEMBERED_HEAD
    assert head_memo.remembered_simple_head(long_head) is not None
    assert head_memo._HEAD_MEMO == {}  # too long to keep
    heads = [NGINX_HEAD + b"\r\nX-N: %d" % n for n in range(head_memo.HEAD_MEMO_SIZE + 1)]
    for head in heads:
        assert head_memo.remembered_simple_head(head)[3] == head_memo.parse_simple_head(head)[3]
        assert len(head_memo._HEAD_MEMO) <= head_memo.HEAD_MEMO_SIZE
    assert list(head_memo._HEAD_MEMO) == heads[-1:]  # started over when full


def test_a_remembered_connection_close_still_closes(head_memo: Any) -> None:
    """The same `Connection: close` head on two connections: the second, answered from the
    memo, is closed after its response too, and neither is kept by the pool."""
    head = NGINX_HEAD.replace(b"keep-alive", b"close").replace(b"2048", b"2")
    backend = httpcore.MockBackend([head + b"\r\n\r\nok", head + b"\r\n\r\nok"])
    with httpcore.ConnectionPool(network_backend=backend) as pool:
        for _ in range(2):
            response = pool.request("GET", "http://x/")
            assert (response.status, response.content) == (200, b"ok")
            assert response.headers[-1] == (b"Connection", b"close")
            assert pool.connections == []
    assert list(head_memo._HEAD_MEMO) == [head]
