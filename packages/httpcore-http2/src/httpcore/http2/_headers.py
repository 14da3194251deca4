"""Header conversion: a request's headers into an HTTP/2 header list, a response's back.

Rules:
- Request headers go out lower-cased, after the four pseudo-headers, without the headers
  that mean nothing in HTTP/2 (RFC 9113 §8.2.2) and with leading/trailing whitespace of
  values stripped; the result is valid for HTTP/2, so h2 is told not to check or normalise
  it again (`_patches.CONFIG`).
- Credentials, and short cookies (easily guessed), are never put in the HPACK dynamic table
  (RFC 7541 §7.1.3), which h2's own normalisation would have arranged.
- A malformed request header is a `LocalProtocolError` before anything is sent: a name that
  is not a token (RFC 9110 §5.1) or starts with a colon, a value holding NUL, CR or LF (RFC
  9113 §8.2.1: a server must treat it as malformed; an intermediary turning it back into
  HTTP/1.1 would split it into more header lines). h2 checks neither (the checks are
  `_multiplex_core`'s, shared with HTTP/3).
- A response `:status` that is not a number is a `RemoteProtocolError`; other response
  pseudo-headers are dropped.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Tuple

from hpack import NeverIndexedHeaderTuple

from httpcore.base._exceptions import LocalProtocolError, RemoteProtocolError
from httpcore.base._models import Request
from httpcore.base._multiplex_core import (
    DROPPED_HEADERS,
    check_request_field,
    check_request_start,
)

Headers = List[Tuple[bytes, bytes]]


# Never put in the HPACK dynamic table (RFC 7541 §7.1.3), as h2's normalisation would do.
SENSITIVE_HEADERS = frozenset([b"authorization", b"proxy-authorization"])


def request_headers(request: Request, authority: bytes) -> Headers:
    """The header list of a request's HEADERS frame."""
    url = request.url
    headers: Headers = [
        (b":method", request.method),
        (b":authority", authority),
        (b":scheme", url.scheme),
        (b":path", url.target),
    ]
    if not url.target:
        raise LocalProtocolError("An HTTP/2 request needs a non-empty :path.")
    check_request_start(request, authority, "HTTP/2")
    for name, value in request.headers:
        name = name.lower()
        if name in DROPPED_HEADERS or (name == b"te" and value.lower() != b"trailers"):
            continue
        check_request_field(name, value, "HTTP/2")
        if value[:1] in b" \t" or value[-1:] in b" \t":
            value = value.strip(b" \t")
        if name in SENSITIVE_HEADERS or (name == b"cookie" and len(value) < 20):
            headers.append(NeverIndexedHeaderTuple(name, value))
        else:
            headers.append((name, value))
    return headers


#: A connection's memo of `response_head`: header block -> (status, headers).
HeadMemo = Dict[Tuple[Tuple[bytes, bytes], ...], Tuple[int, Tuple[Tuple[bytes, bytes], ...]]]

#: How many distinct header blocks a `HeadMemo` holds before it starts again (a server
#: answers with a handful; blocks that differ every time, e.g. with a request id, are never
#: met again, and this bounds what they keep).
HEAD_MEMO_SIZE = 16


def remembered_head(block: Iterable[Tuple[bytes, bytes]], memo: HeadMemo) -> Tuple[int, Headers]:
    """`response_head(block)`, from `memo` when this connection met the same block before.

    A server repeats its response headers; the responses then share their header pairs
    (immutable) rather than each holding copies (nginx's 8 headers: ~450 bytes per open
    stream), and the conversion is a dict lookup.
    """
    key = tuple(block)
    known = memo.get(key)
    if known is None:
        status, headers = response_head(key)
        if len(memo) >= HEAD_MEMO_SIZE:
            memo.clear()
        memo[key] = (status, tuple(headers))
        return status, headers
    return known[0], list(known[1])


def response_head(block: Iterable[Tuple[bytes, bytes]]) -> Tuple[int, Headers]:
    """The status and headers of a response's header block (pseudo-headers left out)."""
    status = 200
    headers = []
    for name, value in block:
        if name == b":status":
            try:
                status = int(value)
            except ValueError:
                raise RemoteProtocolError(f"Invalid :status {value!r}") from None
        elif not name.startswith(b":"):
            headers.append((name, value))
    return status, headers
