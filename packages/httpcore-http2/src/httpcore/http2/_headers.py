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
  HTTP/1.1 would split it into more header lines). h2 checks neither.
- A response `:status` that is not a number is a `RemoteProtocolError`; other response
  pseudo-headers are dropped.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Tuple

from hpack import NeverIndexedHeaderTuple

from httpcore.base._exceptions import LocalProtocolError, RemoteProtocolError
from httpcore.base._models import Request
from httpcore.base._multiplex_core import DROPPED_HEADERS

Headers = List[Tuple[bytes, bytes]]


# Never put in the HPACK dynamic table (RFC 7541 §7.1.3), as h2's normalisation would do.
SENSITIVE_HEADERS = frozenset([b"authorization", b"proxy-authorization"])

# A lower-cased field name: a token (RFC 9110 §5.1, §5.6.2); upper case was lowered before.
_NAME = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-z]+")
# RFC 9113 §8.2.1: a field value must not hold NUL, CR or LF.
_FORBIDDEN_IN_VALUE = re.compile(rb"[\x00\r\n]")
# Names already found valid (most requests repeat a handful), up to a bound.
_VALID_NAMES: Dict[bytes, None] = {}
_MAX_VALID_NAMES = 512


def _check_name(name: bytes) -> None:
    if _NAME.fullmatch(name) is None:
        raise LocalProtocolError(f"Invalid HTTP/2 request header name {name!r}.")
    if len(_VALID_NAMES) < _MAX_VALID_NAMES:
        _VALID_NAMES[bytes(name)] = None


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
    if _FORBIDDEN_IN_VALUE.search(b"".join((request.method, authority, url.target))):
        raise LocalProtocolError(
            "Invalid HTTP/2 request: NUL, CR and LF are not allowed in the method, the Host "
            "header or the target."
        )
    for name, value in request.headers:
        name = name.lower()
        if name in DROPPED_HEADERS or (name == b"te" and value.lower() != b"trailers"):
            continue
        if name not in _VALID_NAMES:
            _check_name(name)
        if _FORBIDDEN_IN_VALUE.search(value) is not None:
            # The value is left out of the message: it may be a credential.
            raise LocalProtocolError(
                f"Invalid HTTP/2 request header value for {name!r}: NUL, CR and LF are not allowed."
            )
        if value[:1] in b" \t" or value[-1:] in b" \t":
            value = value.strip(b" \t")
        if name in SENSITIVE_HEADERS or (name == b"cookie" and len(value) < 20):
            headers.append(NeverIndexedHeaderTuple(name, value))
        else:
            headers.append((name, value))
    return headers


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
