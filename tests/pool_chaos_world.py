"""The world of `test_pool_chaos.py`: the seeded plan of what each request and connection
meets (`make_plan`), the server that carries it out on 127.0.0.1 (`ChaosServer`, which records
every request it received), and network backends whose connects fail on cue (`FlakyConnects`).
"""

from __future__ import annotations

import dataclasses
import random
import socket
import struct
import threading
import time
from typing import (
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Tuple,
    Type,
)

from servers import RawServer
from servers.raw import reset

import httpcore
from httpcore import SOCKET_OPTION

RawFactory = Callable[..., RawServer]

SEEDS = 10
INF = 1 << 30
TIMEOUTS = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 10.0}
RUN_DEADLINE = 30.0  # the whole run of one seed; far more than it takes
CLOSE_DEADLINE = 2.0  # for every socket to close after `close()` (ms when nothing leaks)

REASONS = {
    200: b"OK",
    201: b"Created",
    404: b"Not Found",
    413: b"Payload Too Large",
    500: b"Internal Server Error",
}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
CALM = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ncalm"

RETRY_EVENT = "connection_pool.retry_request.started"

# What a request lost unanswered raises (the server closed or reset the connection as it went
# out; a failed write is swallowed and the read then sees the EOF or the reset, API.md §4.3).
STALE_ERRORS: Tuple[Type[Exception], ...] = (httpcore.RemoteProtocolError, httpcore.ReadError)
CONNECT_ERRORS: Tuple[Type[Exception], ...] = (httpcore.ConnectError, httpcore.ConnectTimeout)
# What a request whose response the server cut short raises.
DIRECTIVE_ERRORS: Dict[str, Tuple[Type[Exception], ...]] = {
    # Data then RST: the data is read first (the server waits for it to be acknowledged), then
    # the reset: ReadError.
    "reset_mid": (httpcore.ReadError,),
    # Data then FIN, the message incomplete: h11's (or the fast path's) RemoteProtocolError.
    "close_mid": (httpcore.RemoteProtocolError,),
    # Nothing more, the connection open: the client's short read timeout.
    "stall": (httpcore.ReadTimeout,),
}
# Server fates after which the client may have received nothing of a response.
UNANSWERED = ("stale",)


CANCEL_POINTS = ["ticks", "arrived", "head", "body"]

# ABANDONED_ITERATION: `Response.iter_stream()` is `yield from stream`, so abandoning it closes
# the response from inside the generator's close() (Python calls it on the subiterator), which
# the sync adapter of tests/helpers.py triggers by abandoning its loop: an exception raised
# there (by a trace callback on "http11.response_closed.*") cannot reach the caller and ends up
# unraisable. The test does not make the callback raise in that situation.


class TraceFailed(Exception):
    """Raised by a trace callback (on purpose)."""


def payload(label: str, size: int) -> bytes:
    return random.Random(label).randbytes(size)


# -- the plan ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Directive:
    """What the server does with a request once it serves it."""

    kind: str = "ok"  # ok | reset_mid | close_mid | stall | early
    status: int = 200
    version: bytes = b"1.1"
    framing: str = "length"  # length | chunked | eof
    close: bool = False  # a `Connection: close` header
    interim: bytes = b""  # 1xx responses first
    size: int = 0
    chunk_ext: bool = False
    trailers: bool = False
    cut: float = 0.5  # where reset_mid/close_mid/stall stop, as a fraction of the response
    pieces: int = 1  # the response is written in this many pieces
    dribble: bool = False  # with a short pause between them
    early_size: int = 0  # the body of the early 413


@dataclasses.dataclass(frozen=True)
class Call:
    """One request of a run and how the client handles it."""

    rid: str
    method: str
    body_kind: str  # none | bytes | iter
    body: bytes
    chunks: Tuple[bytes, ...]
    directive: Directive
    mode: str  # read | stream | abandon | cancel
    cancel_at: str  # ticks | arrived | head | body | event (the trace's, see trace_fault)
    ticks: int
    traced: bool
    checkpoint: bool  # the trace callback lets other tasks/threads run
    read_timeout: float
    close: bool  # the request says `Connection: close`
    pool_timeout: float
    trace_fault: str  # "" | raise | cancel: what the trace callback does at its event fault_at
    fault_at: int

    @property
    def replayable(self) -> bool:
        """API.md §3.7: idempotent, and a body the pool may send again."""
        return self.method in ("GET", "HEAD", "PUT") and self.body_kind != "iter"


@dataclasses.dataclass
class Plan:
    seed: int
    wild: float
    max_connections: int
    max_keepalive: Optional[int]
    keepalive_expiry: Optional[float]
    retries: int
    connect_failure: float
    workers: int
    calls: Dict[str, Call] = dataclasses.field(default_factory=dict)

    def connection(self, index: int) -> Tuple[int, str]:
        """(requests served before going stale, how it goes stale) for the index-th accepted
        connection."""
        rng = random.Random(f"pool-chaos-{self.seed}-conn-{index}")
        draw = rng.random()
        if draw < self.wild * 0.15:
            keep = 0  # stale from the start: a new connection is never retried
        elif draw < self.wild * 1.5:
            keep = rng.randint(1, 4)
        else:
            keep = INF
        return keep, rng.choice(["fin_after", "fin_on_next", "rst_on_next"])

    def describe(self) -> str:
        return (
            f"seed={self.seed} wild={self.wild} max_connections={self.max_connections} "
            f"max_keepalive={self.max_keepalive} keepalive_expiry={self.keepalive_expiry} "
            f"retries={self.retries} connect_failure={self.connect_failure} "
            f"workers={self.workers} requests={len(self.calls)}"
        )


def pick_size(rng: random.Random, large: int = 100_000) -> int:
    draw = rng.random()
    if draw < 0.15:
        return 0
    if draw < 0.6:
        return rng.randint(1, 2000)
    if draw < 0.9:
        return rng.randint(2000, 70_000)
    return rng.randint(70_000, large)


def make_directive(rng: random.Random, has_body: bool, wild: float, may_stall: bool) -> Directive:
    kind = "ok"
    if rng.random() < wild:
        kinds = ["reset_mid", "close_mid"]
        kinds += ["early", "early"] if has_body else []
        kinds += ["stall"] if may_stall else []
        kind = rng.choice(kinds)
    version = b"1.0" if rng.random() < 0.08 else b"1.1"
    if version == b"1.1":
        framing = rng.choice(["length"] * 5 + ["chunked"] * 3 + ["eof"])
    else:
        framing = rng.choice(["length"] * 3 + ["eof"])
    if kind == "close_mid" and framing == "eof":
        framing = "length"  # a cut EOF-delimited body is just a shorter body
    interim = b""
    if version == b"1.1" and rng.random() < 0.08:
        interim = rng.choice([CONTINUE, EARLY_HINTS, CONTINUE + EARLY_HINTS])
    return Directive(
        kind=kind,
        status=rng.choice([200] * 6 + [201, 404, 500]),
        version=version,
        framing=framing,
        close=rng.random() < 0.1,
        interim=interim,
        size=pick_size(rng),
        chunk_ext=rng.random() < 0.2,
        trailers=rng.random() < 0.15,
        cut=rng.random(),
        pieces=rng.randint(1, 3),
        dribble=rng.random() < 0.05,
        early_size=rng.randint(0, 300),
    )


def make_plan(seed: int, is_async: bool) -> Plan:
    rng = random.Random(f"pool-chaos-{seed}")
    max_connections = rng.randint(1, 4)
    plan = Plan(
        seed=seed,
        wild=rng.choice([0.1, 0.2, 0.35]),
        max_connections=max_connections,
        max_keepalive=rng.choice([None, None, None, rng.randint(0, max_connections)]),
        keepalive_expiry=rng.choice([None, None, None, 0.0, rng.uniform(0.002, 0.05), 30.0]),
        retries=rng.choice([0, 1]),
        connect_failure=rng.choice([0.0, 0.0, 0.1, 0.25]),
        workers=rng.choice([1, max_connections, max_connections + 2, 8, 16]),
    )
    stalls_left = rng.choice([0, 0, 1])
    for index in range(rng.randint(20, 80)):
        rid = f"s{seed}-r{index}"
        method = rng.choices(["GET", "HEAD", "POST", "PUT"], [40, 10, 30, 20])[0]
        body_kind = "none"
        if method in ("POST", "PUT"):
            body_kind = rng.choice(["bytes", "bytes", "iter"])
        body = payload(f"request-{rid}", pick_size(rng)) if body_kind != "none" else b""
        cuts = sorted(rng.randint(0, len(body)) for _ in range(rng.randint(0, 3)))
        chunks = tuple(body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)]))
        if rng.random() < 0.1:
            chunks = (b"", *chunks, b"")  # empty chunks send nothing (not the last chunk)
        directive = make_directive(rng, body_kind != "none", plan.wild, stalls_left > 0)
        read_timeout = TIMEOUTS["read"]
        if directive.kind == "stall":
            stalls_left -= 1
            read_timeout = round(rng.uniform(0.25, 0.5), 3)
        mode = rng.choices(["read", "stream", "abandon", "cancel"], [45, 20, 15, 20])[0]
        if mode == "cancel" and not is_async:
            mode = "abandon"
        traced = rng.random() < 0.4
        trace_fault, fault_at = "", 0
        if traced and rng.random() < 0.25:
            trace_fault = rng.choice(["raise", "cancel"])
            trace_fault = trace_fault if is_async else "raise"
            fault_at = rng.randint(1, 16)
            if trace_fault == "cancel":
                mode = "cancel"
        short_wait = rng.random() < 0.08
        plan.calls[rid] = Call(
            rid=rid,
            method=method,
            body_kind=body_kind,
            body=body,
            chunks=chunks,
            directive=directive,
            mode=mode,
            cancel_at="event" if trace_fault == "cancel" else rng.choice(CANCEL_POINTS),
            ticks=rng.randint(0, 40),
            traced=traced,
            checkpoint=traced and rng.random() < 0.3,
            read_timeout=read_timeout,
            close=rng.random() < 0.05,
            pool_timeout=rng.choice([0.0, 0.001, 0.01, 0.05]) if short_wait else TIMEOUTS["pool"],
            trace_fault=trace_fault,
            fault_at=fault_at,
        )
    return plan


# -- what the server sends ----------------------------------------------------------------------


def chunk_encode(body: bytes, rng: random.Random, ext: bool, trailers: bool) -> bytes:
    out: List[bytes] = []
    pos = 0
    while pos < len(body):
        size = rng.randint(1, min(len(body) - pos, rng.choice([7, 100, 4096, 40_000])))
        extension = b";chaos=1" if ext and rng.random() < 0.3 else b""
        out.append(b"%x%s\r\n%s\r\n" % (size, extension, body[pos : pos + size]))
        pos += size
    out.append(b"0\r\n" + (b"X-Trailer: done\r\n" if trailers else b"") + b"\r\n")
    return b"".join(out)


def response_bytes(d: Directive, rid: str, method: str) -> bytes:
    if d.kind == "early":
        body = payload(f"early-{rid}", d.early_size)
        return (
            b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: %d\r\n"
            b"X-Request-Id: %s\r\n\r\n%s" % (len(body), rid.encode(), body)
        )
    body = payload(f"response-{rid}", d.size)
    lines = [b"HTTP/%s %d %s" % (d.version, d.status, REASONS[d.status])]
    lines.append(b"X-Request-Id: " + rid.encode())
    if d.close:
        lines.append(b"Connection: close")
    encoded = body
    if d.framing == "length":
        lines.append(b"Content-Length: %d" % len(body))
    elif d.framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        encoded = chunk_encode(body, random.Random(f"chunks-{rid}"), d.chunk_ext, d.trailers)
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    return d.interim + head + (b"" if method == "HEAD" else encoded)


def expected_response(d: Directive, rid: str, method: str) -> Tuple[int, bytes, bytes]:
    """(status, body, http_version) the client must see for a response sent whole (the body
    also serves as the reference for the prefix read of a cut response)."""
    if d.kind == "early":
        return 413, payload(f"early-{rid}", d.early_size), b"HTTP/1.1"
    body = b"" if method == "HEAD" else payload(f"response-{rid}", d.size)
    return d.status, body, b"HTTP/" + d.version


def server_closes(call: Call) -> bool:
    """The server ends the connection after this (whole) response."""
    d = call.directive
    return call.close or d.close or d.version == b"1.0" or d.framing == "eof"


def client_must_close(call: Call) -> bool:
    """The client may not send another request on the connection after this response (a HEAD
    response has no body: "EOF-delimited" means nothing for it, the connection is reusable)."""
    d = call.directive
    eof_body = d.framing == "eof" and call.method != "HEAD"
    return call.close or d.close or d.version == b"1.0" or eof_body


# -- the server ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Arrival:
    """A request as the server received it."""

    rid: str
    connection: int
    position: int  # requests the connection had served before (0: a new connection)
    fate: str = "pending"  # stale | after_close | ok | early | reset_mid | close_mid | stall
    body_ok: Optional[bool] = None

    def __str__(self) -> str:
        body = "" if self.body_ok is None else (" body-ok" if self.body_ok else " BODY-WRONG")
        return f"{self.fate}@c{self.connection}#{self.position}{body}"


class ClientGone(Exception):
    """The client closed in the middle of a request."""


class Wire:
    """The server's reading side of one connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(262144)
        self.buffer += data
        return bool(data)

    def head(self) -> Optional[Tuple[str, str, Dict[str, str]]]:
        """(method, target, headers) of the next request; None on EOF before it."""
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            if not self._fill():
                if self.buffer:
                    raise ClientGone("EOF in a request head")
                return None
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        del self.buffer[: end + 4]
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return method, target, headers

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise ClientGone("EOF in a request body")
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise ClientGone("EOF in a chunked request body")
        end = self.buffer.index(b"\r\n")
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    def body(self, headers: Dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts: List[bytes] = []
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():  # trailer fields, up to the blank line
                        pass
                    return b"".join(parts)
                parts.append(self._exactly(size))
                if self._exactly(2) != b"\r\n":
                    raise AssertionError("a chunk not followed by CRLF")
        return self._exactly(int(headers.get("content-length", "0")))


TCP_OPEN_STATES = (1, 8)  # Linux TCP_ESTABLISHED, TCP_CLOSE_WAIT


def wait_acknowledged(sock: socket.socket, deadline: float = 2.0) -> None:
    """Wait (bounded) until the peer acknowledged everything sent: an RST then cannot discard
    it, the client reads it before it sees the reset."""
    import fcntl
    import termios

    end = time.monotonic() + deadline
    while time.monotonic() < end:
        unacked = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
        if struct.unpack("i", unacked)[0] == 0:
            return
        # tcpi_state: only an ESTABLISHED or CLOSE_WAIT peer may still acknowledge (one that
        # reset the connection, e.g. after abandoning the response, never will).
        if sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] not in TCP_OPEN_STATES:
            return
        time.sleep(0.0005)


class ChaosServer:
    """The `raw_server` handler: serves each connection as the plan says and records every
    request received."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.calm = False  # once set, new connections behave
        self.arrivals: Dict[str, List[Arrival]] = {}
        self.problems: List[str] = []
        self.accepted = 0
        self.finished = 0
        self.silent_stale = 0  # stale connections that ended without a request on them
        self._lock = threading.Lock()

    def snapshot(self) -> Dict[str, List[Arrival]]:
        with self._lock:
            return {
                rid: [dataclasses.replace(a) for a in got] for rid, got in self.arrivals.items()
            }

    def _arrive(self, rid: str, connection: int, position: int, fate: str) -> Arrival:
        arrival = Arrival(rid, connection, position, fate)
        with self._lock:
            self.arrivals.setdefault(rid, []).append(arrival)
        return arrival

    def __call__(self, conn: socket.socket, server: RawServer) -> None:
        with self._lock:
            index = self.accepted
            self.accepted += 1
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._serve(conn, index)
        except (OSError, ClientGone):
            pass  # the client hung up: part of the game
        except BaseException as exc:  # a bug of this test
            with self._lock:
                self.problems.append(f"server error on connection {index}: {exc!r}")
            raise
        finally:
            with self._lock:
                self.finished += 1

    def _send(self, conn: socket.socket, data: bytes, d: Directive, rid: str) -> None:
        rng = random.Random(f"split-{rid}")
        cuts = sorted(rng.randint(0, len(data)) for _ in range(d.pieces - 1))
        for start, end in zip([0, *cuts], [*cuts, len(data)]):
            if end > start:
                conn.sendall(data[start:end])
                if d.dribble:
                    time.sleep(0.001)

    def _drain(self, wire: Wire, connection: int, position: int, fate: str) -> None:
        """Read until the client closes; every request still sent on this connection is
        recorded with `fate` (never answered)."""
        silent = True
        while True:
            request = wire.head()
            if request is None:
                if silent and fate == "stale":
                    with self._lock:
                        self.silent_stale += 1
                return
            silent = False
            rid = request[2].get("x-request-id")
            if rid is not None:
                self._arrive(rid, connection, position, fate)
            wire.body(request[2])

    def _serve(self, conn: socket.socket, index: int) -> None:
        keep, stale = (INF, "fin_after") if self.calm else self.plan.connection(index)
        wire = Wire(conn)
        served = 0
        if keep == 0 and stale == "fin_after":
            conn.shutdown(socket.SHUT_WR)
            self._drain(wire, index, served, "stale")
            return
        while True:
            request = wire.head()
            if request is None:
                return
            method, target, headers = request
            rid = headers.get("x-request-id")
            call = None if rid is None else self.plan.calls.get(rid)
            if call is None:
                if target != "/calm":
                    raise AssertionError(f"unknown request {method} {target} {headers}")
                wire.body(headers)
                conn.sendall(CALM)
                served += 1
                continue
            arrival = self._arrive(call.rid, index, served, "pending")
            if served >= keep:
                # Stale: the head is in, nothing is answered (a FIN, or an RST when the body
                # is still unread; or an RST outright).
                arrival.fate = "stale"
                if stale == "rst_on_next":
                    reset(conn)
                else:
                    conn.shutdown(socket.SHUT_WR)
                return
            d = call.directive
            if d.kind == "early":
                # Answer before reading the body, then read it (so the client's writes go
                # through and it reads the answer), then nothing more.
                arrival.fate = "early"
                self._send(conn, response_bytes(d, call.rid, method), d, call.rid)
                conn.shutdown(socket.SHUT_WR)
                arrival.body_ok = wire.body(headers) == call.body
                self._drain(wire, index, served + 1, "after_close")
                return
            arrival.body_ok = wire.body(headers) == call.body
            arrival.fate = d.kind
            data = response_bytes(d, call.rid, method)
            if d.kind == "ok":
                self._send(conn, data, d, call.rid)
                served += 1
                if server_closes(call):
                    conn.shutdown(socket.SHUT_WR)
                    after = "after_close" if client_must_close(call) else "stale"
                    self._drain(wire, index, served, after)
                    return
                if stale == "fin_after" and served >= keep:
                    conn.shutdown(socket.SHUT_WR)
                    self._drain(wire, index, served, "stale")
                    return
                continue
            if d.kind == "stall":
                cut = int(d.cut * len(data))  # 0 .. len - 1: never the whole response
            else:
                cut = 1 + int(d.cut * (len(data) - 1))  # 1 .. len - 1
            self._send(conn, data[:cut], d, call.rid)
            if d.kind == "reset_mid":
                wait_acknowledged(conn)
                reset(conn)
                return
            if d.kind == "close_mid":
                conn.shutdown(socket.SHUT_WR)
            self._drain(wire, index, served + 1, "after_close")
            return


# -- connect failures -------------------------------------------------------------------------


class FlakyConnects:
    """Decides, from the seed, which connects fail (thread-safe)."""

    def __init__(self, seed: int, probability: float) -> None:
        self._rng = random.Random(f"pool-chaos-{seed}-connect")
        self._probability = probability
        self._lock = threading.Lock()
        self.failures = 0

    def check(self) -> None:
        with self._lock:
            if self._rng.random() >= self._probability:
                return
            self.failures += 1
            timeout = self._rng.random() < 0.3
        if timeout:
            raise httpcore.ConnectTimeout("chaos: connect timed out")
        raise httpcore.ConnectError("chaos: connection refused")


class FlakySyncBackend(httpcore.NetworkBackend):
    def __init__(self, flaky: FlakyConnects) -> None:
        self._real = httpcore.SyncBackend()
        self._flaky = flaky

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: Optional[float] = None,
        local_address: Optional[str] = None,
        socket_options: Optional[Iterable[SOCKET_OPTION]] = None,
    ) -> httpcore.NetworkStream:
        self._flaky.check()
        return self._real.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    def sleep(self, seconds: float) -> None:
        self._real.sleep(seconds)


class FlakyAsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, flaky: FlakyConnects) -> None:
        from httpcore.aio._auto import AutoBackend  # the async classes' default backend

        self._real = AutoBackend()
        self._flaky = flaky

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: Optional[float] = None,
        local_address: Optional[str] = None,
        socket_options: Optional[Iterable[SOCKET_OPTION]] = None,
    ) -> httpcore.AsyncNetworkStream:
        self._flaky.check()
        return await self._real.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)
