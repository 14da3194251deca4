"""Chaos test of the HTTP/2 client: many concurrent requests on one pool while a misbehaving
server, drawn from a seed, does what servers do to clients at random moments.

Each scenario (`make_scenario(seed)`, from ``random.Random(f"h2-chaos-{seed}")``) is a list of
exchanges, each a request (path ``/s{seed}/{i}``: the path tells the server which plan is
its) and the server's plan for its stream:

- answer it: a status, headers (sometimes a Content-Length, sometimes a header block large
  enough for CONTINUATION frames), a body of 0 B to ~100 KB in one or many DATA frames,
  sometimes a 103 before and trailers after, sometimes only after the server sent a number of
  frames of *other* streams (a delay counted in frames, not in time);
- reset it (RST_STREAM with one of several codes) before the response or part-way through;
- answer it as soon as its HEADERS arrive, while the request body is still coming, and
  sometimes then reset it with NO_ERROR to stop the upload (RFC 9113 §8.1: the response
  stands).

On top of that, the first connections get connection-level events at random points (counted
in frames sent and requests received): a PING, a SETTINGS frame lowering
MAX_CONCURRENT_STREAMS or changing INITIAL_WINDOW_SIZE, a graceful GOAWAY (the server then
answers the streams it accepted and closes), a GOAWAY with an error code, dropping the
connection (between frames or in the middle of one, with a FIN or a reset), garbage bytes.

Requests: GET, POST and PUT, with bodies in memory (bytes) or from an iterator (which is not
replayable), up to ~200 KB so that flow control matters; some are streamed and closed after
a few chunks; under asyncio and trio some are cancelled after a random number of
checkpoints. Sync runs each request in its own thread.

The server records what it did to each stream and connection (`ConnectionRecord`,
`StreamRecord`) and `judge()` decides from that record whether a request's outcome is one
the server's actions allow (the thread and task interleaving is not deterministic, so the
record, not the plan, is what is judged). After each scenario the pool must hold no busy
connection, a request to a well-behaved path must succeed on the same pool, and after
`close()` no client socket may be left open (the collector is off meanwhile, so a socket only
the garbage collector would close counts) and the server must have seen every connection end.

Regression tests for the bugs this found are in `test_http2_chaos_regressions.py`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gc
import os
import re
import warnings
from typing import (
    Any,
    AsyncIterator,
    Dict,
    Iterator,
    List,
    Optional,
    Tuple,
    Union,
)

import anyio
import anyio.lowlevel
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import pytest
from h2_chaos_world import (
    CALM_BODY,
    CALM_PATH,
    DRAINING_SEEDS,
    FLAVOURS,
    SCENARIO_DEADLINE,
    SEEDS,
    TIMEOUTS,
    ChaosServer,
    Exchange,
    Headers,
    Scenario,
    make_scenario,
)

import httpcore

pytestmark = pytest.mark.timeout(60)


# -- the client ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    kind: str  # "ok", "partial", "error", "cancelled", "hung"
    status: int = 0
    headers: Headers = dataclasses.field(default_factory=list)
    body: bytes = b""
    exc: Optional[BaseException] = None
    where: str = "request"  # "close": raised while closing the response

    def __repr__(self) -> str:
        if self.kind in ("ok", "partial"):
            return f"<{self.kind} {self.status}, {len(self.body)} bytes>"
        return f"<{self.kind} {self.exc!r} ({self.where})>"


def _request_args(url: str, exchange: Exchange) -> Dict[str, Any]:
    timeouts = dict(TIMEOUTS)
    if exchange.mode == "timeout":
        timeouts["read"] = exchange.cancel_after / 100_000  # up to 3 ms
    return {
        "method": exchange.method,
        "url": url + exchange.path,
        "headers": [(b"x-chaos", str(exchange.index).encode())],
        "extensions": {"timeout": timeouts},
    }


def _chunks(body: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def _achunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        await anyio.lowlevel.checkpoint()
        yield body[start : start + size]


def sync_exchange(pool: httpcore.ConnectionPool, url: str, exchange: Exchange) -> Outcome:
    args = _request_args(url, exchange)
    content: Union[bytes, Iterator[bytes], None] = exchange.body
    if exchange.body is not None and exchange.iterated:
        content = _chunks(exchange.body, exchange.chunk_size)
    where = "request"
    try:
        if exchange.mode == "partial":
            with pool.stream(content=content, **args) as response:
                got = bytearray()
                for count, chunk in enumerate(response.iter_stream(), 1):
                    got += chunk
                    if count >= exchange.chunks_to_read:
                        break
                where = "close"
            return Outcome("partial", response.status, response.headers, bytes(got))
        response = pool.request(content=content, **args)
        return Outcome("ok", response.status, response.headers, response.content)
    except Exception as exc:
        return Outcome("error", exc=exc, where=where)


async def _async_exchange(
    pool: httpcore.AsyncConnectionPool, url: str, exchange: Exchange
) -> Outcome:
    args = _request_args(url, exchange)
    content: Union[bytes, AsyncIterator[bytes], None] = exchange.body
    if exchange.body is not None and exchange.iterated:
        content = _achunks(exchange.body, exchange.chunk_size)
    where = "request"
    try:
        if exchange.mode == "partial":
            async with pool.stream(content=content, **args) as response:
                got = bytearray()
                count = 0
                chunks = response.aiter_stream()
                try:
                    async for chunk in chunks:
                        got += chunk
                        count += 1
                        if count >= exchange.chunks_to_read:
                            break
                finally:
                    # An async generator left unfinished: closed here, not by the collector.
                    await chunks.aclose()  # type: ignore[attr-defined]
                where = "close"
            return Outcome("partial", response.status, response.headers, bytes(got))
        response = await pool.request(content=content, **args)
        return Outcome("ok", response.status, response.headers, response.content)
    except Exception as exc:
        return Outcome("error", exc=exc, where=where)


async def async_exchange(
    pool: httpcore.AsyncConnectionPool, url: str, exchange: Exchange
) -> Outcome:
    if exchange.mode != "cancel":
        return await _async_exchange(pool, url, exchange)
    outcomes: List[Outcome] = []
    with anyio.CancelScope() as scope:

        async def cancel_later() -> None:
            for _ in range(exchange.cancel_after):
                await anyio.lowlevel.checkpoint()
            scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_later)
            outcomes.append(await _async_exchange(pool, url, exchange))
            tg.cancel_scope.cancel()
    return outcomes[0] if outcomes else Outcome("cancelled")


# -- judging ------------------------------------------------------------------------------------


def _header(headers: Headers, name: bytes) -> Optional[bytes]:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


# The message of a stream refused by GOAWAY whose iterator body was sent (`_reader.py`).
_REFUSED_ONE_SHOT = re.compile(
    r"<ConnectionTerminated .*last_stream_id:(\d+),.*>: the server did not process stream "
    r"(\d+), and the request was not sent again: its body can be read only once$"
)


def judge(exchange: Exchange, outcome: Outcome, server: ChaosServer) -> Optional[str]:
    """None if the outcome is one that what the server did allows, else what is wrong.

    The rules, from what the server recorded (timing decides which of the allowed outcomes
    happens, never whether an outcome is allowed):
    - the server processes each request at most once (streams it ignored after a GOAWAY do
      not count): a second time is a duplicate;
    - a response (whole, or a prefix when streamed) only if the server answered the request,
      and exactly what it sent;
    - `RemoteProtocolError(StreamReset)` only for a RST_STREAM the server sent on the
      request's stream, with that code, and not after a complete response (RFC 9113 §8.1);
    - `RemoteProtocolError(ConnectionTerminated)` for a stream up to the last stream id of
      a GOAWAY with an error code, whose response was not complete before it; or for a
      stream above it with an iterator body (the pool cannot send it again);
    - any other `RemoteProtocolError` (server disconnected, garbage), `ReadError` or
      `WriteError` only for a request on a connection the server broke (or one the server
      never processed, which may have been sent or queued on such a connection), and not for
      a response completed before a GOAWAY with an error code;
    - `ReadTimeout` only for a request with a tiny read timeout of its own; cancellation
      only for a cancelled request; nothing else (`ConnectionNotAvailable`, other timeouts,
      `LocalProtocolError`, anything undocumented) ever.
    """
    index = exchange.index
    reply = exchange.reply
    mine = [
        (connection, record)
        for connection in server.records
        for record in connection.streams.values()
        if record.index == index
    ]
    served = [(c, r) for c, r in mine if not r.ignored]
    if len(served) > 1:
        return f"the server got (and processed) this request {len(served)} times"
    connection, record = served[0] if served else (None, None)
    if outcome.kind == "hung":
        return "never finished (hang)"
    if outcome.kind == "cancelled":
        return None if exchange.mode == "cancel" else "cancelled without a cancellation"
    if outcome.where == "close":
        return f"closing the response raised {outcome.exc!r}"

    if outcome.kind in ("ok", "partial"):
        # A response: the server answered this request (on one connection), with what it
        # planned; a partial read is a prefix of the body.
        if record is None:
            return "a response though the server answered no such request"
        if outcome.status != reply.status:
            return f"status {outcome.status}, expected {reply.status}"
        if _header(outcome.headers, b"x-chaos") != str(index).encode():
            return f"headers {outcome.headers[:4]} are not this request's"
        length = _header(reply.headers, b"content-length")
        if length is not None and _header(outcome.headers, b"content-length") != length:
            return "content-length lost"
        if outcome.kind == "ok" and outcome.body != reply.body:
            return f"body of {len(outcome.body)} bytes, expected {len(reply.body)} (or different)"
        if outcome.kind == "partial" and not reply.body.startswith(outcome.body):
            return f"streamed {len(outcome.body)} bytes that are not a prefix of the body"
        if outcome.kind == "ok" and record.complete is None:
            return "a complete response the server never completed"
        return None

    exc = outcome.exc
    assert exc is not None
    if exchange.mode == "timeout" and isinstance(exc, httpcore.ReadTimeout):
        return None  # its own (tiny) read timeout; only this request is concerned (§4.4)
    if isinstance(exc, httpcore.ConnectionNotAvailable):
        # Refused streams are the pool's to send again (API.md §3.4, §4.4).
        return f"{exc!r} reached the caller"
    if not isinstance(exc, (httpcore.RemoteProtocolError, httpcore.ReadError, httpcore.WriteError)):
        # Timeouts included: nothing the server does here leaves a request waiting.
        return f"unexpected exception {exc!r}"
    event = exc.args[0] if exc.args else None

    if isinstance(event, h2.events.StreamReset):
        # RST_STREAM: only the stream's own reset, with its code (API.md §4.4); a response
        # completed before a NO_ERROR reset stands (RFC 9113 §8.1).
        code = int(event.error_code or 0)
        if record is None or record.reset is None or record.reset[1] != code:
            return f"{exc!r}, but the server sent no such RST_STREAM (record: {record})"
        if record.complete is not None:
            return f"{exc!r} discarded a complete response (RFC 9113 §8.1)"
        return None

    refused = _REFUSED_ONE_SHOT.match(str(exc))
    if refused is not None:
        # Above a GOAWAY's last stream id, with an iterator body already sent: the pool cannot
        # send it again, and the message says so after the GOAWAY's own text.
        last, stream_id = int(refused[1]), int(refused[2])
        for conn in server.records:
            if stream_id > last and any(goaway[1] == last for goaway in conn.goaways):
                if exchange.iterated and not (record is not None and connection is conn):
                    return None
        return f"{exc!r} unexplained (record: {record})"

    if isinstance(event, h2.events.ConnectionTerminated):
        # GOAWAY (API.md §4.4): with an error code, the streams up to its last stream id
        # fail, unless their response was complete before it; above it, a stream is sent
        # again elsewhere unless its body cannot be replayed (an iterator).
        code, last = int(event.error_code or 0), event.last_stream_id
        for conn in server.records:
            if not any(goaway[1:] == (last, code) for goaway in conn.goaways):
                continue
            if record is not None and connection is conn:
                # Accepted there (a stream up to `last`, or it would be ignored).
                if code and record.complete is None:
                    return None
            elif exchange.iterated:
                return None
        return f"{exc!r} unexplained (record: {record})"

    # The connection failed: "Server disconnected", a network error, a protocol error in
    # garbage. Only for a request on a connection the server broke (or one that never
    # reached the server: it may have been sent on a connection broken before the server
    # read it, or queued there), and not for a response completed before a GOAWAY
    # (frames sent before the GOAWAY are delivered; the server lingers so that none is lost).
    for conn in server.records:
        if conn.fatal is None:
            continue
        when, what = conn.fatal
        if record is None:
            return None
        if connection is conn:
            if what == "goaway-error" and record.complete is not None and record.complete < when:
                return f"{exc!r} lost a response completed before the GOAWAY"
            return None
    return f"{exc!r} without a broken connection to explain it (record: {record})"


# -- running a scenario -------------------------------------------------------------------------


def open_client_sockets(port: int) -> List[str]:
    """The TCP sockets this process holds open (has a descriptor for) whose peer is
    127.0.0.1:`port`: the client's, not the server's (whose peer is the client's port).
    Linux only (/proc); elsewhere, nothing is found."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        with open("/proc/net/tcp") as table:
            rows = table.read().splitlines()[1:]
    except OSError:  # pragma: no cover - not Linux
        return []
    peer = f"0100007F:{port:04X}"
    return [row for row in rows if row.split()[2] == peer and row.split()[9] in inodes]


def check_pool(pool: Any) -> List[str]:
    problems = []
    for connection in pool.connections:
        if not (connection.is_idle() or connection.is_closed()):
            problems.append(f"busy connection left in the pool: {connection!r}")
    if "Requests: 0 active, 0 queued" not in repr(pool):
        problems.append(f"requests left in the pool: {pool!r}")
    return problems


def fresh_failure_excused(server: ChaosServer, exc: Exception) -> bool:
    """Whether the first fresh request after a scenario may fail: when the server broke a
    connection (dropped it, or wrote garbage and closed) after the client's last read of it,
    the client finds out only by using it. An idle HTTP/2 connection is not checked for
    readability (API.md §4.4: `has_expired()` is keep-alive expiry only; §12.7 lists that as
    a limitation a better implementation should fix, see
    `test_a_connection_the_server_dropped_while_idle_is_not_reused`), and the pool sends an
    HTTP/2 request again only when refused (§3.7 is HTTP/1.1's). The second must succeed."""
    broken = ("drop", "drop-mid-frame", "garbage")
    return isinstance(exc, (httpcore.RemoteProtocolError, httpcore.NetworkError)) and any(
        record.fatal is not None and record.fatal[1] in broken for record in server.records
    )


def check_fresh(response: Any) -> List[str]:
    if response.status != 200 or response.content != CALM_BODY:
        return [f"a fresh request got {response.status} {response.content[:40]!r}"]
    return []


def run_sync(scenario: Scenario, server: ChaosServer) -> Tuple[List[Outcome], List[str]]:
    pool = httpcore.ConnectionPool(http1=False, http2=True)
    problems: List[str] = []
    try:
        executor = concurrent.futures.ThreadPoolExecutor(max_workers=len(scenario.exchanges))
        futures = [executor.submit(sync_exchange, pool, server.url, e) for e in scenario.exchanges]
        concurrent.futures.wait(futures, timeout=SCENARIO_DEADLINE)
        outcomes = [f.result() if f.done() else Outcome("hung") for f in futures]
        executor.shutdown(wait=all(f.done() for f in futures))
        if any(o.kind == "hung" for o in outcomes):
            return outcomes, problems
        server.calm = True
        problems += check_pool(pool)
        extensions = {"timeout": TIMEOUTS}
        for attempt in (1, 2):
            try:
                response = pool.request("GET", server.url + CALM_PATH, extensions=extensions)
                problems += check_fresh(response)
            except Exception as exc:
                if attempt == 1 and fresh_failure_excused(server, exc):
                    continue
                problems.append(f"a fresh request failed: {exc!r}")
            break
        problems += check_pool(pool)
    finally:
        pool.close()
    return outcomes, problems


async def run_async(scenario: Scenario, server: ChaosServer) -> Tuple[List[Outcome], List[str]]:
    pool = httpcore.AsyncConnectionPool(http1=False, http2=True)
    problems: List[str] = []
    outcomes = [Outcome("hung") for _ in scenario.exchanges]
    try:

        async def one(position: int, exchange: Exchange) -> None:
            outcomes[position] = await async_exchange(pool, server.url, exchange)

        with anyio.move_on_after(SCENARIO_DEADLINE):
            async with anyio.create_task_group() as tg:
                for position, exchange in enumerate(scenario.exchanges):
                    tg.start_soon(one, position, exchange)
        if any(o.kind == "hung" for o in outcomes):
            return outcomes, problems
        server.calm = True
        problems += check_pool(pool)
        extensions = {"timeout": TIMEOUTS}
        for attempt in (1, 2):
            try:
                response = await pool.request("GET", server.url + CALM_PATH, extensions=extensions)
                problems += check_fresh(response)
            except Exception as exc:
                if attempt == 1 and fresh_failure_excused(server, exc):
                    continue
                problems.append(f"a fresh request failed: {exc!r}")
            break
        problems += check_pool(pool)
    finally:
        with anyio.CancelScope(shield=True):
            await pool.aclose()
    return outcomes, problems


def describe(exchange: Exchange) -> str:
    reply = exchange.reply
    body = "none" if exchange.body is None else f"{len(exchange.body)} B"
    if exchange.iterated:
        body += " (iterator)"
    answer = f"{reply.status} {len(reply.body)} B in {len(reply.frames)} frames"
    if reply.reset_code is not None:
        answer = f"RST_STREAM({reply.reset_code}) after {reply.reset_after} steps of " + answer
    extras = [
        name
        for name, on in [
            ("early", reply.early),
            ("then RST(NO_ERROR)", reply.reset_after_end),
            ("trailers", reply.trailers),
            ("103", reply.informational),
            (f"delay {reply.delay}", reply.delay > 0),
        ]
        if on
    ]
    return (
        f"#{exchange.index} {exchange.method.decode()} body {body}, {exchange.mode}; "
        f"server: {answer} {' '.join(extras)}"
    )


def run_scenario(scenario: Scenario, flavour: str) -> List[str]:
    """Run it; every problem found, as text."""
    server = ChaosServer(scenario)
    problems: List[str] = []
    gc.collect()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            gc.disable()
            try:
                if flavour == "sync":
                    outcomes, problems = run_sync(scenario, server)
                else:
                    outcomes, problems = anyio.run(run_async, scenario, server, backend=flavour)
                # Closed by the pool, not by the collector (which is off).
                left = open_client_sockets(server.port)
                if left:
                    problems.append(f"client sockets left open after close(): {left}")
            finally:
                gc.enable()
            gc.collect()
        problems += [
            f"{w.category.__name__}: {w.message}"
            for w in caught
            if issubclass(w.category, ResourceWarning)
        ]
        for record in server.wait_all_ended(10.0):
            problems.append(f"the server never saw the client close connection {record.number}")
        for record in server.records:
            if record.ended_by == "lingered in vain: the client never closed":
                problems.append(f"connection {record.number}: {record.ended_by}")
        for exchange, outcome in zip(scenario.exchanges, outcomes):
            reason = judge(exchange, outcome, server)
            if reason is not None:
                problems.append(f"{describe(exchange)} -> {outcome!r}: {reason}")
        problems += [f"client sent: {error}" for error in server.client_errors]
        problems += [f"test server error: {error!r}" for error in server.errors]
        if problems:
            problems += [record.summary() for record in server.records]
    finally:
        server.close()
    return problems


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_http2_chaos(flavour: str, seed: int) -> None:
    scenario = make_scenario(seed)
    problems = run_scenario(scenario, flavour)
    assert problems == [], f"seed {seed}, {flavour}:\n" + "\n".join(problems)


@pytest.mark.parametrize("seed", DRAINING_SEEDS)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_http2_chaos_draining(flavour: str, seed: int) -> None:
    scenario = make_scenario(seed, "draining")
    problems = run_scenario(scenario, flavour)
    assert problems == [], f"draining seed {seed}, {flavour}:\n" + "\n".join(problems)
