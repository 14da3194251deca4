"""The requests `test_http11_requests_fuzz.py` sends, and the responses its mock server answers
with: a seeded generator of HTTP/1.1 requests as callers build them (methods, URLs, header sets
valid and not, bodies of every kind the API takes), and of the repeats that would show state a
connection keeps from one request to the next (`make_case`, `mutate`).
"""

from __future__ import annotations

import importlib
import random
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import httpcore

try:  # httpx's own request stream, when httpx is installed (it is in the test environment)
    httpx: Any = importlib.import_module("httpx")
except ImportError:  # pragma: no cover
    httpx = None


# -- what the server answers ----------------------------------------------------------------

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
# name: (the head, the body after it: see `no_body`)
RESPONSES: Dict[str, Tuple[bytes, bytes]] = {
    "simple": (OK_HEAD, b"ok"),
    # An interim response first: the connection reads it with h11, which must then know the
    # request, however it was written.
    "interim": (b"HTTP/1.1 100 Continue\r\n\r\n" + OK_HEAD, b"ok"),
    "chunked": (CHUNKED_HEAD, b"2\r\nok\r\n0\r\n\r\n"),
    # Trailers: a chunked body h11 finishes reading.
    "trailers": (CHUNKED_HEAD, b"2\r\nok\r\n0\r\nX-Trailer: 1\r\n\r\n"),
    "close": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n", b"ok"),
}
RESPONSE_WEIGHTS = {"simple": 60, "interim": 12, "chunked": 12, "trailers": 10, "close": 6}


def no_body(method: bytes) -> bool:
    # h11 (and the connection) read no body after the response to a HEAD, whatever its
    # framing, nor after a 2xx to a CONNECT (the connection is then handed over).
    return method in (b"HEAD", b"CONNECT")


def response_bytes(kind: str, method: bytes) -> bytes:
    head, body = RESPONSES[kind]
    return head if no_body(method) else head + body


# -- the generator --------------------------------------------------------------------------

# (scheme, host as written in the URL, the origin's port)
BASES = [
    ("http", "example.com", 80),
    ("http", "example.com", 8080),
    ("https", "example.org", 443),
    ("https", "www.example.org", 8443),
    ("http", "[::1]", 8080),
    ("http", "[::1]", 80),
    ("https", "[2001:db8::1]", 443),
    ("http", "127.0.0.1", 80),
    ("https", "example.com", 80),
    ("http", "EXAMPLE.com", 80),
    ("ws", "example.com", 80),
    ("wss", "example.com", 8443),
]
DEFAULT_PORTS = {b"http": 80, b"https": 443, b"ws": 80, b"wss": 443}
# Ports left out of the automatic Host header (API.md §3.3).
HOST_DEFAULT_PORTS = {b"ftp": 21, b"http": 80, b"https": 443, b"ws": 80, b"wss": 443}

PATHS = [
    "/",
    "",
    "/index.html",
    "/a/b/c",
    "/a%20b",
    "/%7Euser/%E2%98%BA",
    "/p;params",
    "/a;x=1/b;y=2",
    "/search",
    "/a/../b/./c",
    "/with:colon@at",
    "/%zz",
]
QUERIES = ["", "", "?q=1", "?a=b&c=d", "?", "?x=%41%42", "?q=a+b", "?empty=", "?a=1;b=2"]
# Request targets given as the `target` extension (API.md §2.3, §7.1), or as a `URL`'s.
TARGETS: List[Union[str, bytes]] = [
    "*",
    b"*",
    "/raw|path",
    b"/x?y=z",
    "http://example.com/absolute",
    "example.com:443",
    "/ok",
    b"/%00",
]
# h11 refuses these (its request-target is one or more VCHARs).
BAD_TARGETS: List[Union[str, bytes]] = [
    b"",
    b"/a b",
    b"/a\x7f",
    b"/\x01",
    b"/caf\xe9",  # obs-text
    b"/\x80\xff",
    b"/search?q=\xc3\xa9",
]

METHODS: List[Tuple[Union[str, bytes], int]] = [
    ("GET", 25),
    ("POST", 20),
    ("PUT", 6),
    ("DELETE", 4),
    ("OPTIONS", 4),
    ("PATCH", 4),
    ("HEAD", 6),
    ("CONNECT", 1),
    ("get", 2),
    ("post", 2),
    ("head", 1),
    ("M-SEARCH", 2),
    ("PROPFIND", 1),
    ("X_CUSTOM!", 1),
    ("GE T", 1),
    ("", 1),
    (b"GET\x00", 1),
    ("GET\r\n", 1),
    (b"G\xc9T", 1),
    ("G\u00c9T", 1),  # unicode: a TypeError before any I/O
]

ORDINARY = [
    ("Accept", "*/*"),
    ("User-Agent", "fuzz/1.0 (+https://example.com)"),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Cookie", "a=b; c=d"),
    ("Authorization", "Bearer abc.def"),
    ("Content-Type", "application/json; charset=utf-8"),
    ("Cache-Control", "no-cache"),
    ("X-Forwarded-For", "10.0.0.1, 10.0.0.2"),
    ("If-None-Match", '"etag"'),
]
GOOD_VALUES = [
    b"a  b",
    b"a\tb",
    b"caf\xe9",
    b"\x80\xff",
    b"",
    b"a\x01b",  # control bytes other than NUL, CR, LF and whitespace: h11 writes them
    b"\x7f",
    b"\x1bx",
    b"!#$%&'*+-.^_`|~",
    b'"quoted, with, commas"',
]
BAD_VALUES = [
    b" leading",
    b"trailing ",
    b"\tleading-tab",
    b"trailing-tab\t",
    b" ",
    b"a\rb",
    b"a\nb",
    b"a\r\n b",  # obs-fold: refused when sending
    b"a\x00b",
    b"\x0bv",
    b"v\x0c",
]
GOOD_NAMES = [b"X-Fuzz", b"x-fuzz", b"X_Under", b"X!#$%&'*+.^`|~", b"a", b"ACCEPT-LANGUAGE"]
BAD_NAMES = [b"X Bad", b"X:Bad", b"X\x00", b"", b"X-\xff", b"(x)", b" X", b"X\t", b"X\r\n"]
CONNECTION_VALUES = [
    "close",
    "Close",
    "keep-alive",
    "Keep-Alive",
    "keep-alive, close",
    "te, close",
    "x-closer",  # not the token "close"
]
BODY_KINDS = {
    "none": 17,
    "empty": 8,
    "bytes": 22,
    "large": 5,
    "iterator": 18,
    "list": 5,
    "bytearray": 3,
    "memoryview": 3,
    "httpx": 8,
    "subclass": 3,
}
if httpx is None:  # pragma: no cover
    del BODY_KINDS["httpx"]
# The bodies given as `bytes` (a `bytes` subclass included, API.md §3.3 and §2.3).
BYTES = ("empty", "bytes", "large", "subclass")
LOOKALIKES = [b"\r\n\r\n", b"0\r\n\r\n", b"HTTP/1.1 200 OK\r\n", b"\n\n"]


class BytesSubclass(bytes):
    """A `bytes` subclass body: `bytes` to the helpers, not to the fast path's type checks."""


@dataclass
class Spec:
    """One request, as a caller makes it."""

    call: str  # "request" | "stream" | "handle"
    method: Union[str, bytes]
    url: Any  # str | bytes | httpcore.URL
    headers: Any  # None | dict | list | tuple
    body: str  # one of BODY_KINDS
    chunks: List[bytes]  # the body's bytes (one item for an in-memory body)
    target: Optional[Union[str, bytes]]  # the `target` extension
    trace: bool  # with a `trace` extension
    response: str  # what the server answers (RESPONSES)
    repeat: str = "fresh"  # or "same request", "same headers", "same Request object"
    # Made to a caller's object shared with the request before, just before this request is
    # built: ("append", pair) / ("set", (key, value)) to its header list / dict,
    # ("target", target) to its `URL`, ("request-append", pair) to the reused `Request`'s
    # `headers` (API.md §2.3: plain, mutable attributes).
    mutation: Optional[Tuple[str, Any]] = None


@dataclass
class Case:
    seed: int
    scheme: str
    host: str  # as written in URLs
    port: int  # the origin's
    specs: List[Spec] = field(default_factory=list)

    @property
    def origin(self) -> httpcore.Origin:
        host = self.host.strip("[]").lower().encode()
        return httpcore.Origin(self.scheme.encode(), host, self.port)

    @property
    def plain_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/"


def cased(rng: random.Random, name: str) -> str:
    roll = rng.random()
    if roll < 0.55:
        return name
    if roll < 0.7:
        return name.lower()
    if roll < 0.8:
        return name.upper()
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in name)


def text_or_bytes(rng: random.Random, value: bytes) -> Union[str, bytes]:
    if value.isascii() and rng.random() < 0.5:
        return value.decode("ascii")
    return value


def some_bytes(rng: random.Random, size: int) -> bytes:
    data = bytearray(rng.randbytes(size))
    if size and rng.random() < 0.3:
        lookalike = rng.choice(LOOKALIKES)
        at = rng.randrange(size)
        data[at : at + len(lookalike)] = lookalike[: size - at]
    return bytes(data)


def make_body(rng: random.Random) -> Tuple[str, List[bytes]]:
    kind = rng.choices(list(BODY_KINDS), list(BODY_KINDS.values()))[0]
    if kind in ("none", "empty"):
        return kind, [b""]
    if kind == "large":
        return kind, [some_bytes(rng, rng.randint(64 * 1024, 200 * 1024))]
    if kind in ("iterator", "list"):
        chunks = []
        for _ in range(rng.randint(0, 5)):
            roll = rng.random()
            if roll < 0.25:
                chunks.append(b"")
            elif roll < 0.95:
                chunks.append(some_bytes(rng, rng.randint(1, 100)))
            else:
                chunks.append(some_bytes(rng, rng.randint(10_000, 70_000)))
        return kind, chunks
    size = rng.choice([0, 1, 2, 5]) if rng.random() < 0.15 else rng.randint(1, 300)
    if kind in ("bytearray", "memoryview") and rng.random() < 0.5:
        # Iterated, these give ints: a zero byte is an empty chunk to h11's chunked writer.
        return kind, [b"\x00" * rng.randint(0, 2)]
    return kind, [some_bytes(rng, size)]


def body_length(chunks: List[bytes]) -> int:
    return sum(len(chunk) for chunk in chunks)


def make_url(rng: random.Random, case: Case) -> Tuple[Any, Optional[Union[str, bytes]]]:
    """A URL of the case's origin, in one of the forms a caller passes; and a `target`
    extension, sometimes."""
    scheme, host, port = case.scheme, case.host, case.port
    written_port = f":{port}"
    if port == DEFAULT_PORTS[scheme.encode()] and rng.random() < 0.6:
        written_port = ""
    path, query = rng.choice(PATHS), rng.choice(QUERIES)
    roll = rng.random()
    if roll < 0.01:
        path = "/\u263a"  # unicode: a TypeError before any I/O
    elif roll < 0.03:
        path = "/a b"  # a space: h11 refuses the target
    userinfo = rng.choice(["", "", "", "user:pass@", "user@"])
    fragment = rng.choice(["", "", "", "#frag"])
    written_scheme = scheme.upper() if rng.random() < 0.05 else scheme  # the parser lowers it
    text = f"{written_scheme}://{userinfo}{host}{written_port}{path}{query}{fragment}"
    target = None
    roll = rng.random()
    if roll < 0.14:
        target = rng.choice(TARGETS)
    elif roll < 0.2:
        target = rng.choice(BAD_TARGETS)
    roll = rng.random()
    if roll < 0.55 or not text.isascii():
        return text, target
    if roll < 0.7:
        return text.encode(), target
    if roll < 0.85:
        return httpcore.URL(text), target
    # The keyword form: any target, kept as given; the host without brackets.
    keyword_target = (path or "/") + query
    url = httpcore.URL(
        scheme=scheme,
        host=host.strip("[]").lower(),
        port=None if not written_port else port,
        target=keyword_target,
    )
    return url, target


def make_headers(rng: random.Random, case: Case, call: str, body: str, chunks: List[bytes]) -> Any:
    """The caller's headers: ordinary ones, odd ones, and now and then a refused one."""
    pairs: List[Tuple[Any, Any]] = []
    for name, value in rng.sample(ORDINARY, rng.choice([0, 0, 1, 2, 3])):
        pairs.append(
            (text_or_bytes(rng, cased(rng, name).encode()), text_or_bytes(rng, value.encode()))
        )
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        other = rng.choice(GOOD_NAMES) if rng.random() < 0.5 else b"X-Fuzz-%d" % rng.randint(0, 9)
        if rng.random() < 0.3:
            field_value = rng.choice(GOOD_VALUES)
        elif rng.random() < 0.15:
            letters = b"abcdefghij -_/"
            size = rng.randint(1000, 20_000)
            field_value = bytes(rng.choice(letters) for _ in range(size)).strip()
        else:
            field_value = b"v%d" % rng.randint(0, 999)
        pairs.append((text_or_bytes(rng, other), text_or_bytes(rng, field_value)))

    # A refused header (h11's errors), rarely.
    roll = rng.random()
    if roll < 0.05:
        pairs.append(
            (text_or_bytes(rng, b"X-Bad-Value"), text_or_bytes(rng, rng.choice(BAD_VALUES)))
        )
    elif roll < 0.09:
        pairs.append((text_or_bytes(rng, rng.choice(BAD_NAMES)), "v"))
    elif roll < 0.105:
        # Not bytes or ASCII str: a TypeError before any I/O (API.md §2.6).
        pairs.append(rng.choice([("X-Int", 123), ("X-Text", "caf\u00e9"), ("N\u00e4me", "v")]))

    # The Host header: the helpers add it when missing; a `Request` has only the caller's.
    host_value = case.host.lower().encode()
    if case.port != DEFAULT_PORTS[case.scheme.encode()]:
        host_value += b":%d" % case.port
    explicit_host = rng.random() < (0.85 if call == "handle" else 0.2)
    if explicit_host:
        given = host_value
        roll = rng.random()
        if roll < 0.1:
            given = b"other.example:1234"
        elif roll < 0.14:
            given = b""
        elif roll < 0.17:
            given = rng.choice([b"\x00", b"a b ", b"x\r\ny"])
        pairs.insert(rng.randint(0, len(pairs)), (cased(rng, "Host"), text_or_bytes(rng, given)))
        if rng.random() < 0.04:
            pairs.append((rng.choice(["host", "HOST", b"Host"]), host_value))

    # Framing: what httpx sends for a `Request`, and what a caller sets by hand.
    length = body_length(chunks)
    framing: List[Tuple[Any, Any]] = []
    if call == "handle" and body != "none" and rng.random() < 0.8:
        if body in ("bytes", "large", "empty", "httpx", "subclass"):
            framing.append(("Content-Length", str(length)))
        else:
            framing.append(("Transfer-Encoding", "chunked"))
    roll = rng.random()
    if roll < 0.12:
        value = rng.choice(
            [
                str(length),
                str(length),
                str(length + 1),
                str(max(length - 1, 0)),
                "0",
                "abc",
                f"{length}, {length}",
                f"{length},{length + 1}",
                "-1",
                "0" + str(length),
                "1" * 21,
                "",
            ]
        )
        framing.append((cased(rng, "Content-Length"), value))
        if rng.random() < 0.15:
            framing.append(("content-length", rng.choice([value, str(length + 2)])))
    elif roll < 0.2:
        value = rng.choice(["chunked"] * 4 + ["Chunked", "gzip", "gzip, chunked", "chunked "])
        framing.append((cased(rng, "Transfer-Encoding"), value))
        if rng.random() < 0.1:
            framing.append(("Transfer-Encoding", "chunked"))
    for name, value in framing:
        pairs.insert(rng.randint(0, len(pairs)), (name, text_or_bytes(rng, value.encode())))

    roll = rng.random()
    if roll < 0.12:
        pairs.append((cased(rng, "Connection"), rng.choice(CONNECTION_VALUES)))
    elif roll < 0.17:
        # An upgrade proposed, and refused by the server's 200 (h11 is DONE after it).
        pairs.append((cased(rng, "Connection"), rng.choice(["Upgrade", "keep-alive, Upgrade"])))
        if rng.random() < 0.8:
            pairs.append((cased(rng, "Upgrade"), rng.choice(["websocket", "h2c"])))
    if rng.random() < 0.08:
        pairs.append((cased(rng, "Expect"), "100-continue"))

    roll = rng.random()
    if roll < 0.08 and call != "handle":
        return None if not pairs else pairs
    if roll < 0.4:
        return dict(pairs)  # (a repeated name keeps its last value, in its first place)
    if roll < 0.45:
        return tuple(pairs)
    return pairs


def fresh_spec(rng: random.Random, case: Case) -> Spec:
    call = rng.choices(["request", "stream", "handle"], [45, 20, 35])[0]
    method = rng.choices([m for m, _ in METHODS], [w for _, w in METHODS])[0]
    if isinstance(method, str) and method.isascii() and rng.random() < 0.3:
        method = method.encode()
    url, target = make_url(rng, case)
    body, chunks = make_body(rng)
    headers = make_headers(rng, case, call, body, chunks)
    response = rng.choices(list(RESPONSE_WEIGHTS), list(RESPONSE_WEIGHTS.values()))[0]
    trace = rng.random() < 0.1
    return Spec(call, method, url, headers, body, chunks, target, trace, response)


ADDED = [
    (b"X-Added", b"1"),
    (b"X-Added", b"2"),
    (b"Accept", b"text/html"),
    (b"Connection", b"close"),
    (b"Content-Length", b"0"),
    (b"Host", b"other.example"),
    (b"X-Added", b"bad\r\nvalue"),
]
IN_MEMORY = ("none", "empty", "bytes", "large", "subclass", "httpx")


def added(rng: random.Random) -> Tuple[bytes, bytes]:
    return ADDED[0] if rng.random() < 0.5 else rng.choice(ADDED)


def repeated_spec(rng: random.Random, case: Case) -> Spec:
    """A request sharing the previous one's objects (or all of it)."""
    previous = case.specs[-1]
    roll = rng.random()
    response = rng.choices(list(RESPONSE_WEIGHTS), list(RESPONSE_WEIGHTS.values()))[0]
    if roll < 0.45 and previous.call == "handle" and previous.body in IN_MEMORY:
        # The very `Request` object again (its in-memory body can be sent twice).
        spec = Spec(**{**previous.__dict__, "repeat": "same Request object", "mutation": None})
        if rng.random() < 0.4:
            spec.mutation = ("request-append", added(rng))
    elif roll < 0.6:
        # The same request again (a new iterator over the same chunks, when it has one), with
        # the same header and URL objects.
        spec = Spec(**{**previous.__dict__, "repeat": "same request", "mutation": None})
        if isinstance(spec.url, httpcore.URL) and spec.target is None and rng.random() < 0.4:
            spec.mutation = ("target", rng.choice([b"/changed", b"/changed?q=2", b"*"]))
    else:
        # The same header set (the very object), with another method, URL or body.
        spec = fresh_spec(rng, case)
        spec.headers, spec.repeat = previous.headers, "same headers"
        if rng.random() < 0.5:
            spec.call = previous.call
        if rng.random() < 0.5:
            spec.body, spec.chunks = previous.body, previous.chunks
        if rng.random() < 0.4 and isinstance(spec.headers, (list, dict)):
            if isinstance(spec.headers, list):
                spec.mutation = ("append", added(rng))
            else:
                keys = list(spec.headers)
                key = rng.choice(keys) if keys and rng.random() < 0.5 else b"X-Set"
                spec.mutation = ("set", (key, rng.choice([b"changed", b"", b"1"])))
    spec.response = response
    return spec


def make_case(seed: int) -> Case:
    rng = random.Random(f"requests-{seed}")
    scheme, host, port = rng.choice(BASES)
    case = Case(seed, scheme, host, port)
    for index in range(rng.randint(2, 4)):
        if index == 0 or rng.random() < 0.3:
            case.specs.append(fresh_spec(rng, case))
        else:
            case.specs.append(repeated_spec(rng, case))
    return case


def mutate(spec: Spec, shared: Any) -> None:
    """Make `spec.mutation` to `shared` (the caller's object it names)."""
    assert spec.mutation is not None
    kind, change = spec.mutation
    if kind in ("append", "request-append"):
        shared.append(change)
    elif kind == "set":
        shared[change[0]] = change[1]
    else:
        assert kind == "target", kind
        shared.target = change
