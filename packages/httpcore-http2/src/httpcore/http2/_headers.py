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
- A request header set met before is converted from a process-wide memo (bounded; never a
  set with credentials or cookies, never one that was refused).
- A response `:status` that is not a number is a `RemoteProtocolError`; other response
  pseudo-headers are dropped.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

from hpack import NeverIndexedHeaderTuple

from httpcore.base._exceptions import LocalProtocolError
from httpcore.base._models import Request
from httpcore.base._multiplex_core import (
    DROPPED_HEADERS,
    check_request_field,
    check_request_start,
    response_head,
)

Headers = List[Tuple[bytes, bytes]]


# Never put in the HPACK dynamic table (RFC 7541 §7.1.3), as h2's normalisation would do.
SENSITIVE_HEADERS = frozenset([b"authorization", b"proxy-authorization"])


#: Request header lists met before -> their HTTP/2 fields. Clients send the same few header
#: sets again and again (httpx: Host, Accept, Accept-Encoding, Connection, User-Agent).
_FIELDS_MEMO: Dict[Tuple[Tuple[bytes, bytes], ...], Tuple[Tuple[bytes, bytes], ...]] = {}
#: How many header sets `_FIELDS_MEMO` holds before it starts again, and the largest it
#: keeps (names and values, in bytes).
FIELDS_MEMO_SIZE = 32
MAX_REMEMBERED_FIELDS = 2048


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
    given = request.headers
    try:
        key: Optional[Tuple[Tuple[bytes, bytes], ...]] = tuple(given)
        known = _FIELDS_MEMO.get(key)  # type: ignore[arg-type]
    except TypeError:  # an unhashable value (a caller's bytearray): converted every time
        key = known = None
    if known is not None:
        headers += known
        return headers
    fields, keep = request_fields(given)
    if keep and key is not None:
        # A set that is refused raises above and is never kept; nor is one with credentials
        # or cookies (`keep`), as the HTTP/1.1 head memo keeps none.
        if len(_FIELDS_MEMO) >= FIELDS_MEMO_SIZE:
            _FIELDS_MEMO.clear()
        _FIELDS_MEMO[key] = tuple(fields)
    headers += fields
    return headers


def request_fields(given: Iterable[Tuple[bytes, bytes]]) -> Tuple[Headers, bool]:
    """A request's headers as HTTP/2 fields (the rules at the top), and whether they may be
    remembered: no credentials or cookies, and small."""
    fields: Headers = []
    keep = True
    size = 0
    for name, value in given:
        name = name.lower()
        if name in DROPPED_HEADERS or (name == b"te" and value.lower() != b"trailers"):
            continue
        check_request_field(name, value, "HTTP/2")
        if value[:1] in b" \t" or value[-1:] in b" \t":
            value = value.strip(b" \t")
        size += len(name) + len(value)
        if name in SENSITIVE_HEADERS or name == b"cookie":
            keep = False
        if name in SENSITIVE_HEADERS or (name == b"cookie" and len(value) < 20):
            fields.append(NeverIndexedHeaderTuple(name, value))
        else:
            fields.append((name, value))
    return fields, keep and size <= MAX_REMEMBERED_FIELDS


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
        status, headers = response_head(key, 200)  # h2 refuses a block without :status
        if len(memo) >= HEAD_MEMO_SIZE:
            memo.clear()
        memo[key] = (status, tuple(headers))
        return status, headers
    return known[0], list(known[1])
