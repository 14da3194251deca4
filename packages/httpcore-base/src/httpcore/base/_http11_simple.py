"""The HTTP/1.1 fast path: the common request and response head, without h11.

This module holds the grammar (built from the named pieces of RFC 9110 and RFC 9112), the
serializer of a simple request head, the parser of a simple response head, and the checks the
connection makes to read a body straight from the socket.

Rules it keeps:
- Every pattern accepts a *subset* of what h11 accepts, never more. Whatever falls outside
  (interim responses, other transfer codings, folded lines, odd bytes, a request h11 would
  refuse) is declined with `None`, and the connection hands it to h11, which answers with its
  own errors.
  `tests/test_simple_head.py` checks that both agree whenever the fast path accepts.
- What is accepted is written exactly as h11 would write it (the Host line first).
- No I/O, and no state but a bounded memo of response heads already parsed (a pure
  function's results): plain functions over bytes, safe from any thread.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Tuple

from ._models import ByteStream, Request

if TYPE_CHECKING:  # h11 is imported only by the modules that run it
    import h11

# -- the grammar, piece by piece -------------------------------------------------------------

# RFC 9110 §5.6.2: token = 1*tchar.
TCHAR = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]"
TOKEN = TCHAR + rb"+"
# RFC 9110 §5.5: field-vchar = VCHAR / obs-text (obs-text = %x80-FF).
FIELD_VCHAR = rb"[\x21-\x7e\x80-\xff]"
# RFC 9110 §5.5: field-value = *field-content, field-content = field-vchar
# [ 1*( SP / HTAB / field-vchar ) field-vchar ]: no whitespace at either end.
FIELD_VALUE = rb"(?:" + FIELD_VCHAR + rb"+(?:[ \t]+" + FIELD_VCHAR + rb"+)*)?"
# RFC 9110 §5.6.3: OWS = *( SP / HTAB ).
OWS = rb"[ \t]*"
# RFC 9112 §5: field-line = field-name ":" OWS field-value OWS (field-name = token).
FIELD_LINE = TOKEN + rb":" + OWS + FIELD_VALUE + OWS
# RFC 9112 §2.1: the field lines follow the start line, each after a CRLF.
FIELD_LINES = rb"(?:\r\n" + FIELD_LINE + rb")*"
# RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ], with
# HTTP-version (§2.3) limited to 1.0/1.1 and reason-phrase = *( HTAB / SP / VCHAR / obs-text ).
# As h11 does, the SP before an empty reason phrase may be missing.
STATUS_LINE = rb"HTTP/(1\.[01]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?"
# RFC 9112 §3.2: request-target, as any run of visible ASCII (h11 checks no more than that;
# obs-text, allowed in field values, is not allowed here).
REQUEST_TARGET = rb"[\x21-\x7e]+"
# RFC 9110 §8.6: Content-Length = 1*DIGIT (at most 18 here: the value fits a machine word).
CONTENT_LENGTH = rb"[0-9]{1,18}"

# `OWS field-value OWS` is, as a set of strings, exactly any run of field-vchar, SP and HTAB
# (the whitespace before the first and after the last field-vchar is the OWS), so the field
# lines are matched by one character class each, without backtracking (~3x faster on a
# typical head). `tests/test_simple_head.py` checks that both forms agree.
FIELD_LINE_RUN = TOKEN + rb":[\t\x20-\x7e\x80-\xff]*"
FIELD_LINES_RUN = rb"(?:\r\n" + FIELD_LINE_RUN + rb")*"

_STATUS_LINE = re.compile(STATUS_LINE)
_FIELD_LINES = re.compile(FIELD_LINES_RUN)
# In a head whose field lines are valid: each name and its value after the leading OWS (the
# trailing OWS is removed afterwards, only when the head has any).
# (Narrow classes on purpose: after validation a name runs to the first colon and a value to
# the CR; a one-byte negated class is the fastest the regex engine scans.)
_FIELD_PAIR = re.compile(rb"\r\n([^:]+):[ \t]*([^\r]*)")
_TOKEN = re.compile(TOKEN)
# FIELD_VALUE as one run of its characters that neither starts nor ends with whitespace: the
# same strings, matched without nested repetition (~40% faster per header value).
_FIELD_VALUE = re.compile(rb"(?![ \t])[\t\x20-\x7e\x80-\xff]*(?<![ \t])")
_TARGET = re.compile(REQUEST_TARGET)
_DIGITS = re.compile(CONTENT_LENGTH)
# In a head whose field lines are valid, lower-cased: each field line starts after a CRLF and
# its name runs up to the colon, so these find exactly the framing fields (and their values).
_CONTENT_LENGTH_NAME = b"\r\ncontent-length:"
_TRANSFER_ENCODING_NAME = b"\r\ntransfer-encoding:"
_CONTENT_LENGTH_FIELD = re.compile(
    _CONTENT_LENGTH_NAME + OWS + rb"(" + CONTENT_LENGTH + rb")" + OWS + rb"(?=\r\n|\Z)"
)
# RFC 9112 §6.1: the one transfer coding h11 reads, alone. (Searched for in the lower-cased
# head; the value must be lower-case in the head itself too, since h11 hands it on lowered.)
_CHUNKED_FIELD = re.compile(_TRANSFER_ENCODING_NAME + OWS + rb"(chunked)" + OWS + rb"(?=\r\n|\Z)")

#: The "content length" of a simple head whose body is chunked (HTTP/1.1 only).
CHUNKED = -1

# A longer response head goes to h11 (which enforces its own limit).
MAX_SIMPLE_HEAD = 65536

SimpleHead = Tuple[bytes, int, bytes, List[Tuple[bytes, bytes]], int]

# -- responses -------------------------------------------------------------------------------


def parse_simple_head(head: bytes) -> Optional[SimpleHead]:
    """(version, status, reason, headers, content_length) of a simple head, else None.

    Simple: a final status other than 204/304, and a body framed by exactly one
    Content-Length (no Transfer-Encoding), or, in HTTP/1.1, by one `Transfer-Encoding:
    chunked` (no Content-Length; the length is then `CHUNKED`). `head` ends before the blank
    line.
    """
    status_end = head.find(b"\r\n")
    if status_end < 0:
        status_end = len(head)
    match = _STATUS_LINE.fullmatch(head, 0, status_end)
    if match is None:
        return None
    status = int(match.group(2))
    if status < 200 or status in (204, 304):
        return None
    # One pass validates every field line.
    if _FIELD_LINES.fullmatch(head, status_end) is None:
        return None
    # The framing fields, found in C rather than by a test on each line: exactly one
    # Content-Length with a valid value and no Transfer-Encoding, or the reverse.
    lowered = head.lower()
    if _TRANSFER_ENCODING_NAME in lowered:
        if (
            match.group(1) != b"1.1"
            or _CONTENT_LENGTH_NAME in lowered
            or lowered.count(_TRANSFER_ENCODING_NAME) != 1
        ):
            return None
        coding = _CHUNKED_FIELD.search(lowered, status_end)
        if coding is None or head[coding.start(1) : coding.end(1)] != b"chunked":
            return None
        content_length = CHUNKED
    else:
        if lowered.count(_CONTENT_LENGTH_NAME) != 1:
            return None
        length = _CONTENT_LENGTH_FIELD.search(lowered, status_end)
        if length is None:
            return None
        content_length = int(length.group(1))
    headers: List[Tuple[bytes, bytes]] = _FIELD_PAIR.findall(head, status_end)
    if b" \r\n" in head or b"\t\r\n" in head or head.endswith((b" ", b"\t")):
        headers = [(name, value.rstrip(b" \t")) for name, value in headers]
    return match.group(1), status, match.group(3) or b"", headers, content_length


# A Connection field with a "close" token, found as `connection_close` finds it, in a head
# whose field lines are valid (each starts after a CRLF, its name ends at the colon): at the
# start of the value or after a comma, then whitespace up to a comma or the line's end.
_CONNECTION_CLOSE_FIELD = re.compile(
    rb"\r\nconnection:(?:[^\r\n]*,)?[ \t]*close[ \t]*(?=,|\r\n|\Z)", re.IGNORECASE
)


#: A simple head's parts as `remembered_simple_head` returns them: `parse_simple_head`'s,
#: then whether its fields say `Connection: close` (`head_says_close`).
KnownHead = Tuple[bytes, int, bytes, List[Tuple[bytes, bytes]], int, bool]
_Kept = Optional[Tuple[bytes, int, bytes, Tuple[Tuple[bytes, bytes], ...], int, bool]]

# Servers repeat their response heads byte for byte (nginx's change when its Date ticks over,
# once a second): a head met again is looked up (~0.3 us) instead of parsed (~6 us), and its
# responses share the header pairs (immutable). Bounded in count and in head size; heads
# carrying cookies or authentication data are never kept.
_HEAD_MEMO: Dict[bytes, _Kept] = {}
HEAD_MEMO_SIZE = 32
MAX_REMEMBERED_HEAD = 2048
_NEVER_REMEMBERED = (
    b"\r\nset-cookie:",
    b"\r\nauthentication-info:",
    b"\r\nproxy-authentication-info:",
)
_MISSING = object()


def remembered_simple_head(head: bytes) -> Optional[KnownHead]:
    """`parse_simple_head(head)` and `head_says_close` of it, from memory when this process
    parsed the same head before (None: not a simple head). The header list is a new one."""
    known: Any = _HEAD_MEMO.get(head, _MISSING)
    if known is None:
        return None
    if known is not _MISSING:
        version, status, reason, pairs, length, close = known
        return version, status, reason, list(pairs), length, close
    parsed = parse_simple_head(head)
    result: Optional[KnownHead] = None
    kept: _Kept = None
    if parsed is not None:
        version, status, reason, headers, length = parsed
        close = head_says_close(head, len(head))
        result = (version, status, reason, headers, length, close)
        kept = (version, status, reason, tuple(headers), length, close)
    if len(head) <= MAX_REMEMBERED_HEAD:
        lowered = head.lower()
        if not any(name in lowered for name in _NEVER_REMEMBERED):
            if len(_HEAD_MEMO) >= HEAD_MEMO_SIZE:
                _HEAD_MEMO.clear()
            _HEAD_MEMO[head] = kept
    return result


def head_says_close(buffer: bytes, end: int) -> bool:
    """`connection_close` of the fields of the simple head `buffer[:end]` (one that
    `parse_simple_head` accepted), in one scan of its bytes."""
    return _CONNECTION_CLOSE_FIELD.search(buffer, 0, end) is not None


def connection_close(headers: Iterable[Tuple[bytes, bytes]]) -> bool:
    """Whether `headers` (names in any case) hold `Connection: close`: a `close` among the
    comma-separated tokens of a Connection field, as h11 reads them (`x-closer` is not)."""
    for name, value in headers:
        if len(name) == 10 and name.lower() == b"connection":
            lowered = value.lower()
            if b"close" in lowered and any(t.strip() == b"close" for t in lowered.split(b",")):
                return True
    return False


def direct_body_length(request: Request, response: h11.Response) -> Optional[int]:
    """The Content-Length of a response body (an h11 event) we can read directly, else None."""
    status = response.status_code
    if status in (204, 304) or request.method in (b"HEAD", b"CONNECT"):
        return None
    length = None
    for name, value in response.headers:
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            return None
    return length


# -- requests --------------------------------------------------------------------------------

# The in-memory request bodies of other libraries, by exact type (a subclass may iterate
# differently): the attribute holding the bytes. Found by name, never imported. httpx's
# `ByteStream` iterates exactly its `_stream`, each time; httpx renames the module of its
# public classes to `httpx`.
_FOREIGN_IN_MEMORY: Dict[Tuple[str, str], str] = {
    ("httpx", "ByteStream"): "_stream",
    ("httpx._content", "ByteStream"): "_stream",
}
_IN_MEMORY: Dict[type, Optional[str]] = {ByteStream: "_content"}


def in_memory_body(stream: object) -> Optional[bytes]:
    """The whole body when `stream` holds it in memory (nothing to iterate), else None."""
    if type(stream) is bytes:
        return stream
    cls = type(stream)
    try:
        attribute = _IN_MEMORY[cls]
    except KeyError:
        attribute = _FOREIGN_IN_MEMORY.get((cls.__module__, cls.__qualname__))
        _IN_MEMORY[cls] = attribute
    if attribute is None:
        return None
    content = getattr(stream, attribute, None)
    return content if type(content) is bytes else None


# What a request header name means to the serializer; names seen valid are remembered (most
# requests repeat a handful of names), up to a bound.
_OTHER, _HOST, _CONTENT_LENGTH, _TRANSFER_ENCODING = range(4)
_SPECIAL_NAMES = {b"host": _HOST, b"content-length": _CONTENT_LENGTH}
_SPECIAL_NAMES[b"transfer-encoding"] = _TRANSFER_ENCODING
_NAME_KINDS: Dict[bytes, int] = {}
_MAX_NAME_KINDS = 512


def _name_kind(name: bytes) -> Optional[int]:
    """The kind of a header name (None: not a token), remembered for next time."""
    if _TOKEN.fullmatch(name) is None:
        return None
    kind = _SPECIAL_NAMES.get(name.lower(), _OTHER)
    if len(_NAME_KINDS) < _MAX_NAME_KINDS:
        _NAME_KINDS[bytes(name)] = kind
    return kind


def serialize_simple_head(request: Request, length: int) -> Optional[bytes]:
    """The request head h11 would write for a body of `length` bytes, or None for h11.

    Simple: a Host header, no Transfer-Encoding, a Content-Length (if any) equal to `length`
    (no Content-Length for an empty body), and every token and value within the grammar.
    """
    method, target = request.method, request.url.target
    if _TOKEN.fullmatch(method) is None or _TARGET.fullmatch(target) is None:
        return None
    host = b""
    declared = -1
    lines = [method, b" ", target, b" HTTP/1.1\r\n", b""]  # [4]: the Host line, first
    for name, value in request.headers:
        kind = _NAME_KINDS.get(name)
        if kind is None:
            kind = _name_kind(name)
            if kind is None:
                return None
        if _FIELD_VALUE.fullmatch(value) is None:
            return None
        if kind:
            if kind == _HOST:
                if host:
                    return None
                host = b"%s: %s\r\n" % (name, value)
                continue
            if kind == _TRANSFER_ENCODING or declared >= 0 or _DIGITS.fullmatch(value) is None:
                return None
            declared = int(value)
        lines.append(b"%s: %s\r\n" % (name, value))
    if not host or (declared if declared >= 0 else 0) != length:
        return None
    lines[4] = host
    lines.append(b"\r\n")
    return b"".join(lines)


def serialize_simple_request(request: Request, content: bytes) -> Optional[bytes]:
    """The bytes h11 would write for `request` with the in-memory body `content`, or None."""
    head = serialize_simple_head(request, len(content))
    return None if head is None else head + content
