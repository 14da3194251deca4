"""Chaos of TLS under HTTPS: a server that cuts, corrupts, splits and closes TLS records its own
way (API.md §3.7, §4.3, §4.4, §6, §8), against the sync TLS stream (`base/_sync_tls.py`), the
asyncio streams (native TLS) and the trio one (`aio/_memory_tls.py`).

The server (tests/tls_chaos_server.py) runs TLS in memory over a plain socket, so each case
says exactly which records go out and how the connection ends. Each case is one pytest item
that runs the same client under the sync, asyncio and trio flavours, each against a fresh
server, TLS 1.2 and TLS 1.3 forced on the server. Per flavour:

- every request ends with the response the server sent, or with exactly the exception class
  the fault must produce (`EXPECT`), with a message that says something;
- nothing hangs (short timeouts on every request, an overall deadline under asyncio/trio);
- afterwards the pool holds no busy connection and a follow-up request gets `200 calm`;
- after `close()` no socket of ours to the server is left, and with the collector disabled,
  nothing was left to it (no ResourceWarning, no unraisable exception);
- where the server can tell, a stale connection was never used again, and a healthy idle one
  was (server connection counts).

Across flavours, the outcome of a deterministic case must be the same. The random part (where a
body is cut) comes from `random.Random` seeded by case, version and seed (`SEEDS`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import random
import re
import ssl
import sys
import sysconfig
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import anyio
import helpers
import pytest
import trustme
from servers.raw import sockets_to
from tls_chaos_server import BODY_RECORD, Conn, Script, TLSChaosServer, response

import httpcore

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="counts sockets through /proc (Linux)"
)

SEEDS = 1  # cut positions drawn per case and TLS version
FLAVOURS = helpers.FLAVOURS
VERSIONS = {"tls1.2": ssl.TLSVersion.TLSv1_2, "tls1.3": ssl.TLSVersion.TLSv1_3}
DEADLINE = 8.0  # seconds, a whole flavour run of one case
READ = 2.0  # read timeout of requests that must not time out
STALL_READ = 0.3  # read timeout of requests the server stalls
H2_REQUESTS = 4
BODY = bytes(range(256)) * 12  # 3072 bytes: six records of BODY_RECORD bytes and a head

Outcome = Union[Tuple[int, bytes], BaseException]


class AnyOf:
    """An expectation that timing may satisfy with either of `options`."""

    def __init__(self, *options: Any) -> None:
        self.options = options

    def __repr__(self) -> str:
        return f"AnyOf{self.options!r}"


def label(outcome: Outcome) -> str:
    if isinstance(outcome, BaseException):
        return type(outcome).__name__
    return f"{outcome[0]} {len(outcome[1])} B"


def short(expectation: Any) -> str:
    if isinstance(expectation, AnyOf):
        return " or ".join(short(o) for o in expectation.options)
    if isinstance(expectation, type):
        return expectation.__name__
    return f"{expectation[0]} {len(expectation[1])} B"


def says_something(exc: BaseException) -> bool:
    text = str(exc).strip()
    return bool(text) and not re.fullmatch(r"<.* at 0x[0-9a-f]+>", text)


# -- the cases ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    """What the server does (`scripts`, per connection), what the client does (`client`), and
    what each request of interest must end with (`expect`: a status and body, or an exception
    class; a tuple of them where timing may pick one)."""

    id: str
    scripts: Callable[[random.Random], List[Script]]
    expect: Callable[[random.Random], Any]
    client: str = "one"  # one | idle | h2
    read: float = READ
    new_connections: Optional[int] = None  # server connections a run must open, if known
    deterministic: bool = True  # same outcome across flavours
    versions: Tuple[str, ...] = tuple(VERSIONS)


def _fault(conn: Conn, ending: str, before: bytes = b"") -> None:
    """Send `before`, end the connection as `ending` says (in the same TCP write), then wait
    for the client to hang up."""
    if ending == "rst":
        conn.send(before)
        conn.rst()
        return
    if ending.startswith("close_notify"):
        before += conn.close_notify()
    elif ending == "alert":
        before += conn.fatal_alert()
    conn.send(before)
    if ending.endswith("fin"):
        conn.fin()
    conn.note("fault", ending)
    conn.drain()


def _cut_point(rng: random.Random, plaintext: bytes) -> int:
    """A record index to cut at: the head went out, the body did not (all of it)."""
    records = -(-len(plaintext) // BODY_RECORD)
    return rng.randrange(1, records)


def _sent_part(conn: Conn, plaintext: bytes, at: int, mid_record: bool = False) -> bytes:
    """The records of `plaintext` before record `at` (and half of record `at`): only those are
    sealed, so that what the session sends next (an alert) has the right sequence number."""
    records = conn.seal(plaintext[: at * BODY_RECORD], BODY_RECORD)
    if mid_record:
        record = conn.seal(plaintext[at * BODY_RECORD : (at + 1) * BODY_RECORD])[0]
        records.append(record[: len(record) // 2])
    return b"".join(records)


def cut_body(kind: str, mid_record: bool, ending: str) -> Case:
    plaintext = response(BODY, kind)

    def scripts(rng: random.Random) -> List[Script]:
        at = _cut_point(rng, plaintext)

        def script(conn: Conn) -> None:
            conn.send(conn.handshake())
            conn.request()
            _fault(conn, ending, _sent_part(conn, plaintext, at, mid_record))

        return [script]

    def expect(rng: random.Random) -> Any:
        at = _cut_point(rng, plaintext)
        if ending == "rst":
            return httpcore.ReadError
        if kind == "close":
            # Close-delimited: the body is what came before the end, close_notify or not
            # (what h11 and httpcore 1.0.9 do: an unauthenticated end is an end, §6 `b""`).
            head = len(response(BODY, kind, head_only=True))
            return (200, plaintext[head : at * BODY_RECORD])
        return httpcore.RemoteProtocolError

    where = "mid-record" if mid_record else "between-records"
    return Case(f"cut-{kind}-{where}-{ending}", scripts, expect)


def mid_body(fault: str) -> Case:
    """A record that cannot be read arrives in the middle of a body."""
    plaintext = response(BODY)

    def scripts(rng: random.Random) -> List[Script]:
        at = _cut_point(rng, plaintext)

        def script(conn: Conn) -> None:
            conn.send(conn.handshake())
            conn.request()
            sent = _sent_part(conn, plaintext, at)
            if fault in ("alert", "close_notify"):
                _fault(conn, fault, sent)
                return
            rest = conn.seal(plaintext[at * BODY_RECORD :], BODY_RECORD)
            bad = bytearray(rest[0])
            if fault == "corrupt":  # a flipped bit in the ciphertext: the MAC fails
                bad[len(bad) // 2] ^= 0x01
            elif fault == "bad-length":  # a record longer than TLS allows
                bad[3:5] = b"\xff\xff"
            elif fault == "bad-type":  # a content type that does not exist
                bad[0] = 0x42
            conn.send(sent + bytes(bad) + b"".join(rest[1:]))
            conn.note("fault", fault)
            conn.drain()

        return [script]

    def expect(rng: random.Random) -> Any:
        return httpcore.RemoteProtocolError if fault == "close_notify" else httpcore.ReadError

    return Case(f"mid-body-{fault}", scripts, expect)


def stall() -> Case:
    """Half a record, then nothing: the read times out."""
    plaintext = response(BODY)

    def scripts(rng: random.Random) -> List[Script]:
        at = _cut_point(rng, plaintext)

        def script(conn: Conn) -> None:
            conn.send(conn.handshake())
            conn.request()
            conn.send(_sent_part(conn, plaintext, at, mid_record=True))
            conn.drain(closed=False)

        return [script]

    return Case("stall-mid-record", scripts, lambda rng: httpcore.ReadTimeout, read=STALL_READ)


def idle(fault: str) -> Case:
    """The server ends (or, `ticket`, merely talks TLS on) a connection idle in the pool."""

    def scripts(rng: random.Random) -> List[Script]:
        def script(conn: Conn) -> None:
            conn.send(conn.handshake())
            conn.request()
            conn.send(b"".join(conn.seal(response(b"first"))))
            conn.server.signal("idle").wait(5)
            if fault == "ticket":
                conn.send(conn.new_ticket())
                conn.server.signal("faulted").set()
                while conn.request() is not None:
                    conn.send(b"".join(conn.seal(response(b"calm"))))
                return
            if fault == "rst":
                conn.rst()
                conn.server.signal("faulted").set()
                return
            if fault == "alert":
                conn.send(conn.fatal_alert())
            else:
                conn.send(conn.close_notify() if fault.startswith("close_notify") else b"")
                if fault.endswith("fin"):
                    conn.fin()
            conn.note("fault", fault)
            conn.server.signal("faulted").set()
            conn.drain()

        return [script]

    # The first connection serves "first" and, after a ticket, everything; otherwise the
    # second request (and the follow-up) go to a second connection.
    connections = 1 if fault == "ticket" else 2
    # A ticket made on demand reads CPython's `_ssl` object layout (`Conn.new_ticket`): only
    # where it is the one known (CPython 3.9-3.13, default builds).
    known = sys.implementation.name == "cpython" and not sysconfig.get_config_var("Py_GIL_DISABLED")
    versions = (("tls1.3",) if known else ()) if fault == "ticket" else tuple(VERSIONS)
    return Case(
        f"idle-{fault}",
        scripts,
        lambda rng: (200, b"calm"),
        client="idle",
        new_connections=connections,
        versions=versions,
    )


def wire(shape: str) -> Case:
    """Well-formed TLS in odd shapes: each response must come out whole, and the connection
    reused (except after unasked-for bytes)."""
    body = BODY if shape != "tiny-records" else BODY[:700]

    def scripts(rng: random.Random) -> List[Script]:
        def script(conn: Conn) -> None:
            conn.split = shape == "split-every-byte"
            conn.send(conn.handshake())
            conn.request()
            if shape == "pipelined":
                # One record: the response, then a second one nobody asked for.
                conn.send(b"".join(conn.seal(response(body) + response(b"bogus"))))
            else:
                size = 1 if shape == "tiny-records" else BODY_RECORD
                conn.send(b"".join(conn.seal(response(body), size)))
            while conn.request() is not None:
                conn.send(b"".join(conn.seal(response(b"calm"))))

        return [script]

    return Case(
        f"wire-{shape}",
        scripts,
        lambda rng: (200, body),
        new_connections=2 if shape == "pipelined" else 1,
    )


def handshake(fault: str) -> Case:
    """The handshake fails: `ConnectError` (§6.2, §6.3), and the pool is fine afterwards."""

    def script(conn: Conn) -> None:
        hello = conn.recv()
        if fault == "rst":
            conn.rst()
            return
        if fault == "garbage":
            conn.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        elif fault == "fin":
            conn.fin()
        else:  # corrupt: the server's flight with its last byte flipped
            conn.incoming.write(hello)
            with contextlib.suppress(ssl.SSLWantReadError):
                conn.tls.do_handshake()
            flight = bytearray(conn.flush())
            flight[-1] ^= 0x01
            conn.send(bytes(flight))
        conn.note("fault", fault)
        conn.drain()

    return Case(f"handshake-{fault}", lambda rng: [script], lambda rng: httpcore.ConnectError)


def h2_chaos(fault: str) -> Case:
    """HTTP/2 with concurrent requests on one TLS connection; some responses whole, then the
    rest cut short by `fault`."""

    def whole(rng: random.Random) -> int:
        return rng.randrange(0, H2_REQUESTS)

    def scripts(rng: random.Random) -> List[Script]:
        done = whole(rng)

        def script(conn: Conn) -> None:
            conn.send(conn.handshake())
            conn.h2_start()
            assert conn.h2 is not None
            streams = conn.h2_requests(H2_REQUESTS)
            plain = b""
            for n, stream_id in enumerate(streams):
                if n < done:
                    plain += conn.h2_response(stream_id, BODY)
                else:
                    conn.h2.send_headers(stream_id, [(":status", "200")])
                    conn.h2.send_data(stream_id, BODY[:100])
                    plain += conn.h2.data_to_send()
            sent = b"".join(conn.seal(plain, BODY_RECORD))
            if fault == "stall":
                # Half a record (a PING), then nothing. Silent for a whole read timeout, the
                # connection is retired: the follow-up goes to a new one (counted below), and
                # this one is closed once its requests have failed.
                conn.h2.ping(b"stalled!")
                ping = conn.seal(conn.h2.data_to_send())[0]
                conn.send(sent + ping[:6])
                conn.note("fault", fault)
                conn.drain(closed=False)
            elif fault == "corrupt":
                record = bytearray(conn.seal(b"\x00" * 9)[0])
                record[-3] ^= 0x01
                conn.send(sent + bytes(record))
                conn.note("fault", fault)
                conn.drain()
            else:
                _fault(conn, fault, sent)

        return [script]

    errors = {
        "fin": httpcore.RemoteProtocolError,
        "close_notify+fin": httpcore.RemoteProtocolError,
        "rst": httpcore.ReadError,
        "corrupt": httpcore.ReadError,
        "alert": httpcore.ReadError,
        "stall": httpcore.ReadTimeout,
    }

    def expect(rng: random.Random) -> Any:
        done = whole(rng)
        error = errors[fault]
        # The responses sent whole come out whole (with a reset, the reset may overtake them).
        ok: Any = AnyOf((200, BODY), error) if fault == "rst" else (200, BODY)
        return [ok] * done + [error] * (H2_REQUESTS - done)

    return Case(
        f"h2-{fault}",
        scripts,
        expect,
        client="h2",
        read=STALL_READ if fault == "stall" else READ,
        deterministic=fault != "rst",
        new_connections=2 if fault == "stall" else None,
    )


ENDINGS = ("close_notify", "close_notify+fin", "fin", "rst")
CASES: List[Case] = [
    *(cut_body(k, False, e) for k in ("length", "chunked", "close") for e in ENDINGS),
    *(cut_body(k, True, e) for k in ("length", "chunked", "close") for e in ("fin", "rst")),
    *(mid_body(f) for f in ("corrupt", "bad-length", "bad-type", "alert", "close_notify")),
    stall(),
    *(idle(f) for f in ("close_notify", "close_notify+fin", "fin", "rst", "alert", "ticket")),
    *(wire(s) for s in ("split-every-byte", "tiny-records", "pipelined")),
    *(handshake(f) for f in ("garbage", "fin", "rst", "corrupt")),
    *(h2_chaos(f) for f in ("fin", "close_notify+fin", "rst", "corrupt", "alert", "stall")),
]

# Library defects: case id -> why (reported; each fails today, strict).
XFAIL: Dict[str, str] = {
    "h2-corrupt": (
        "asyncio (native TLS): HTTP/2 responses that arrived whole in the same TCP read as a "
        "corrupted record are lost, every stream fails ReadError; sync and trio deliver them "
        "(asyncio's sslproto drops the data decrypted before the SSLError)"
    ),
    "h2-alert": (
        "asyncio (native TLS): HTTP/2 responses that arrived whole in the same TCP read as a "
        "fatal alert are lost, every stream fails ReadError; sync and trio deliver them"
    ),
}


# -- the client ---------------------------------------------------------------------------------


def _timeouts(read: float) -> Dict[str, Any]:
    return {"timeout": {"connect": READ, "read": read, "write": READ, "pool": READ}}


async def fetch(pool: Any, url: str, read: float) -> Outcome:
    try:
        response = await pool.request("GET", url, extensions=_timeouts(read))
    except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
        return exc
    return (response.status, response.content)


async def wait_for(api: helpers.API, event: threading.Event) -> bool:
    if api.is_async:
        return await anyio.to_thread.run_sync(event.wait, 5.0)
    return event.wait(5.0)


def judge(what: str, outcome: Outcome, allowed: Any) -> List[str]:
    choices = list(allowed.options) if isinstance(allowed, AnyOf) else [allowed]
    if isinstance(outcome, BaseException):
        if not says_something(outcome):
            return [f"{what}: {type(outcome).__name__} with no message: {outcome!r}"]
        if any(type(outcome) is c for c in choices):
            return []
        return [f"{what}: got {outcome!r}, expected {short(allowed)}"]
    if outcome in choices:
        return []
    return [f"{what}: got {label(outcome)} {outcome[1][:20]!r}, expected {short(allowed)}"]


@dataclasses.dataclass
class Run:
    outcomes: List[Outcome]
    problems: List[str]


async def client(
    api: helpers.API, case: Case, srv: TLSChaosServer, ctx: ssl.SSLContext, rng_seed: str
) -> Run:
    expect = case.expect(random.Random(rng_seed))
    problems: List[str] = []
    outcomes: List[Outcome] = []
    h2 = case.client == "h2"
    async with api.ConnectionPool(ssl_context=ctx, http2=h2, max_connections=4) as pool:
        if case.client == "one":
            outcomes.append(await fetch(pool, srv.url + "/one", case.read))
            problems += judge("request", outcomes[0], expect)
        elif case.client == "idle":
            first = await fetch(pool, srv.url + "/first", READ)
            problems += judge("first request", first, (200, b"first"))
            srv.signal("idle").set()
            if not await wait_for(api, srv.signal("faulted")):
                problems.append("the server never did its idle fault")
            outcomes.append(await fetch(pool, srv.url + "/second", READ))
            problems += judge("request after the idle fault", outcomes[0], expect)
        else:
            results: Dict[int, Outcome] = {}

            def one(n: int) -> Callable[[], Any]:
                async def run() -> None:
                    results[n] = await fetch(pool, f"{srv.url}/h2/{n}", case.read)

                return run

            await api.concurrently(*(one(n) for n in range(H2_REQUESTS)))
            # Which stream got which fate is the server's order: judge the multiset.
            got = sorted((results[n] for n in range(H2_REQUESTS)), key=label)
            outcomes += got
            problems += judge_h2(got, expect)
        busy = [c for c in pool.connections if not (c.is_idle() or c.is_closed())]
        if busy:
            problems.append(f"busy connections after the case: {busy}")
        follow = await fetch(pool, srv.url + "/follow", READ)
        problems += judge("follow-up request", follow, (200, b"calm"))
    return Run(outcomes, problems)


def judge_h2(got: List[Outcome], expect: List[Any]) -> List[str]:
    """Each outcome matched to one expectation (a bipartite match, greedy on the strictest)."""
    left = list(expect)
    problems = []
    for outcome in sorted(got, key=lambda o: isinstance(o, BaseException)):
        for allowed in sorted(left, key=lambda a: isinstance(a, AnyOf)):
            if not judge("", outcome, allowed):
                left.remove(allowed)
                break
        else:
            shown = outcome if isinstance(outcome, BaseException) else label(outcome)
            problems.append(f"h2 request: unexpected {shown!r}; left {[short(a) for a in left]}")
    return problems


# -- running one case under every flavour -----------------------------------------------------


@pytest.fixture(scope="module")
def chaos_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def frozen_heap() -> Iterator[None]:
    """Everything alive before this module goes to gc's permanent generation: the collections
    of `left_to_the_collector`, one per flavour and case, then only walk what the cases made."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(scope="module")
def server_contexts(chaos_ca: trustme.CA) -> Dict[str, ssl.SSLContext]:
    """One server context per TLS version, that version only."""
    cert = chaos_ca.issue_cert("127.0.0.1")
    contexts = {}
    for name, version in VERSIONS.items():
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        context.minimum_version = context.maximum_version = version
        context.set_alpn_protocols(["h2", "http/1.1"])
        contexts[name] = context
    return contexts


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, without the system's CAs
    ca.configure_trust(context)
    return context


def run_flavour(
    flavour: str, case: Case, server_ctx: ssl.SSLContext, ca: trustme.CA, seed: str
) -> Run:
    api = helpers.API(flavour)
    srv = TLSChaosServer(server_ctx, case.scripts(random.Random(seed)))
    left: List[Any] = []
    collected: List[str] = []
    run = Run([], [])
    try:
        with helpers.left_to_the_collector() as collected:
            if flavour == "sync":
                run = helpers.run_unsuspended(client(api, case, srv, client_context(ca), seed))
            else:

                async def bounded() -> Run:
                    with anyio.fail_after(DEADLINE):
                        return await client(api, case, srv, client_context(ca), seed)

                run = anyio.run(bounded, backend=flavour)
            left += sockets_to(srv.port)
    finally:
        srv.close()
    if left:
        run.problems.append(f"sockets left open after close(): {left}")
    run.problems += collected
    if srv.errors:
        run.problems.append(f"the test server failed: {srv.errors!r}")
    if case.new_connections is not None and srv.accepted != case.new_connections:
        run.problems.append(
            f"{srv.accepted} connections, expected {case.new_connections}: {srv.events}"
        )
    late = [(n, e) for n, evs in srv.events.items() for e in evs if e[0] == "late"]
    if late:
        run.problems.append(f"a request was sent on a connection the server had closed: {late}")
    return run


def params() -> Iterator[Any]:
    for case in CASES:
        for version in case.versions:
            for seed in range(SEEDS):
                marks = []
                if case.id in XFAIL and sys.version_info >= (3, 11):
                    # Before 3.11 the asyncio backend runs TLS in memory, as trio does.
                    marks.append(pytest.mark.xfail(strict=True, reason=XFAIL[case.id]))
                yield pytest.param(
                    case, version, seed, id=f"{case.id}-{version}-{seed}", marks=marks
                )


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("case", "version", "seed"), list(params()))
def test_tls_chaos(
    case: Case,
    version: str,
    seed: int,
    chaos_ca: trustme.CA,
    server_contexts: Dict[str, ssl.SSLContext],
    frozen_heap: None,
) -> None:
    server_ctx = server_contexts[version]
    rng_seed = f"tls-chaos-{case.id}-{version}-{seed}"
    runs = {f: run_flavour(f, case, server_ctx, chaos_ca, rng_seed) for f in FLAVOURS}
    report = [f"{f}: {p}" for f, run in runs.items() for p in run.problems]
    labels = {f: [label(o) for o in run.outcomes] for f, run in runs.items()}
    if case.deterministic and len({tuple(v) for v in labels.values()}) > 1:
        report.append(f"the flavours disagree: {labels}")
    assert not report, "\n".join(report)
