"""A seeded chaos test of the HTTP/1.1 connection pool under concurrency (API.md §3, §3.6, §3.7,
§4.3, §8, §9).

One seed = one run: a pool with a few connections (`max_connections` 1-4), 20-80 requests from
several threads (sync) or tasks (asyncio, trio), against a raw server on 127.0.0.1 that
misbehaves at random. Everything random is drawn from `random.Random(f"pool-chaos-{seed}...")`:

- per request (looked up by the server through the request id header): the method (GET/HEAD
  idempotent, PUT idempotent, POST not), the body (none, bytes = replayable, an iterator = not
  replayable), how the client reads (whole, streamed, abandoned after one chunk, cancelled at a
  random point under asyncio/trio), its trace callback (none; recording; letting other
  tasks/threads run; raising, or under asyncio/trio cancelling, at its k-th event), a short
  pool timeout, a `Connection: close` of its own, and what the server does once it serves it:
  a whole response (Content-Length, chunked with extensions/trailers, or EOF-delimited;
  0 B-100 KB; sometimes HTTP/1.0, `Connection: close`, 1xx first, written in pieces), a reset
  (RST) after part of it, a close (FIN) after part of it, a stall (only with a short read
  timeout), or a 413 before reading the request body;
- per accepted connection (in accept order): how many requests it serves before it goes stale,
  and how: a FIN right after the last response (the client may still send on it), or a FIN or
  an RST when the next request's head arrives, unanswered. That is the keep-alive race the
  pool's retry of API.md §3.7 exists for;
- per connect (sometimes): an injected `ConnectError`/`ConnectTimeout`, retried per §3.6.

The server records every request it *received* (connection, position on it, what it did). The
checks, per request: it ended with exactly the response the server sent for it, or with the
exception class that what the server did must produce; a non-replayable request reached the
server at most once, a replayable one at most twice, and twice only when the first arrival was
lost unanswered on a reused connection; such a loss of a replayable request was retried; a
connection the client had to close (HTTP/1.0, `Connection: close`, EOF body, an error) was never
used again. Per run: nothing hangs; afterwards the pool holds only idle connections; after
`close()` no client socket is open and every server connection saw its end; nothing was left to
the garbage collector (collector disabled during the run, `ResourceWarning`s recorded); a fresh
pool then gets a well-behaved answer.

Timing (thread and task interleaving) is not deterministic, so each check accepts what timing
may change and nothing else; the comments at `check_call` say what that is.

Focused, deterministic regression tests for the library bugs the chaos found are in
`test_pool_chaos_regressions.py`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from typing import (
    Any,
    Callable,
    Coroutine,
    Dict,
    Iterator,
    List,
    Optional,
    Tuple,
    Type,
)

import anyio
import helpers
import pytest
from pool_chaos_world import (
    CLOSE_DEADLINE,
    CONNECT_ERRORS,
    DIRECTIVE_ERRORS,
    RETRY_EVENT,
    RUN_DEADLINE,
    SEEDS,
    STALE_ERRORS,
    TIMEOUTS,
    UNANSWERED,
    Arrival,
    Call,
    ChaosServer,
    FlakyAsyncBackend,
    FlakyConnects,
    FlakySyncBackend,
    Plan,
    TraceFailed,
    expected_response,
    make_plan,
)
from servers import RawServer
from servers.raw import sockets_to

import httpcore

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api
left_to_the_collector = helpers.left_to_the_collector

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd") or not sys.platform.startswith("linux"),
    reason="counts sockets through /proc and waits for ACKs with SIOCOUTQ (Linux)",
)

RawFactory = Callable[..., RawServer]


# -- the client ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    kind: str = "pending"  # ok | abandoned | error | cancelled | pending
    status: int = 0
    body: bytes = b""
    version: bytes = b""
    error: Optional[BaseException] = None
    events: List[str] = dataclasses.field(default_factory=list)
    retry_reasons: List[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        if self.kind == "error":
            return f"error {type(self.error).__name__}({self.error})"
        if self.kind in ("ok", "abandoned"):
            return f"{self.kind} {self.status} {self.version.decode()} {len(self.body)} B"
        return self.kind


async def perform(
    api: helpers.API,
    pool: Any,
    url: str,
    call: Call,
    out: Outcome,
    scope: Optional[anyio.CancelScope],
) -> None:
    timeouts = {**TIMEOUTS, "read": call.read_timeout, "pool": call.pool_timeout}
    abandoned_by_generator = call.mode == "abandon" and not api.is_async
    extensions: Dict[str, Any] = {"timeout": timeouts}

    def on_event(name: str, info: Dict[str, Any]) -> None:
        out.events.append(name)
        if name == RETRY_EVENT:
            out.retry_reasons.append(str(info.get("reason")))
        if call.trace_fault and len(out.events) == call.fault_at:
            if call.trace_fault == "raise":
                if abandoned_by_generator and name.startswith("http11.response_closed"):
                    # Closed by the finalisation of `iter_stream()`'s generator (see
                    # ABANDONED_ITERATION): an exception could only be unraisable.
                    return
                raise TraceFailed(name)
            if scope is not None:
                scope.cancel()

    if call.traced:
        extensions["trace"] = api.trace(on_event, checkpoint=call.checkpoint)
    content: Any = None
    if call.body_kind == "bytes":
        content = call.body
    elif call.body_kind == "iter":
        content = api.body(call.chunks)
    headers = [("X-Request-Id", call.rid)] + ([("Connection", "close")] if call.close else [])
    kwargs = {"headers": headers, "content": content}
    target = f"{url}/chaos/{call.rid}"
    try:
        if call.mode == "read":
            response = await pool.request(call.method, target, extensions=extensions, **kwargs)
            out.status, out.version = response.status, response.extensions["http_version"]
            out.body, out.kind = response.content, "ok"
            return
        async with pool.stream(call.method, target, extensions=extensions, **kwargs) as response:
            out.status, out.version = response.status, response.extensions["http_version"]
            if scope is not None and call.cancel_at == "head":
                scope.cancel()
            chunks: List[bytes] = []
            # Iterated by hand, and closed: a generator left suspended would be finalised
            # later, by the event loop.
            iterator = response.aiter_stream()
            kind = "ok"
            try:
                while True:
                    try:
                        chunk = await iterator.__anext__()
                    except StopAsyncIteration:
                        break
                    chunks.append(chunk)
                    if call.mode == "abandon":
                        kind = "abandoned"
                        break
                    if scope is not None and call.cancel_at == "body":
                        scope.cancel()
            finally:
                await iterator.aclose()
            out.body, out.kind = b"".join(chunks), kind
    except Exception as exc:  # checked against what the server did
        out.error, out.kind = exc, "error"


async def cancel_when(scope: anyio.CancelScope, call: Call, server: ChaosServer) -> None:
    if call.cancel_at == "ticks":
        for _ in range(call.ticks):
            await anyio.sleep(0)
    else:  # "arrived": bounded by the request itself, which cancels this when it ends
        while call.rid not in server.arrivals:
            await anyio.sleep(0.001)
    scope.cancel()


async def run_call(
    api: helpers.API, pool: Any, url: str, call: Call, out: Outcome, server: ChaosServer
) -> None:
    if call.mode != "cancel":
        await perform(api, pool, url, call, out, None)
        return
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            if call.cancel_at in ("ticks", "arrived"):
                tg.start_soon(cancel_when, scope, call, server)
            try:
                await perform(api, pool, url, call, out, scope)
            finally:
                tg.cancel_scope.cancel()
    if out.kind == "pending" and scope.cancelled_caught:
        out.kind = "cancelled"


async def run_all(
    api: helpers.API,
    calls: List[Call],
    workers: int,
    run_one: Callable[[Call], Coroutine[Any, Any, None]],
) -> bool:
    """Run the calls on `workers` threads (sync) or tasks (async); False if they did not all
    finish within RUN_DEADLINE."""
    lock = threading.Lock()
    pending: Iterator[Call] = iter(calls)

    def next_call() -> Optional[Call]:
        with lock:
            return next(pending, None)

    async def worker() -> None:
        call = next_call()
        while call is not None:
            await run_one(call)
            call = next_call()

    if api.is_async:
        with anyio.move_on_after(RUN_DEADLINE) as scope:
            async with anyio.create_task_group() as tg:
                for _ in range(workers):
                    tg.start_soon(worker)
        return not scope.cancelled_caught
    errors: List[BaseException] = []

    def thread_main() -> None:
        try:
            helpers.run_unsuspended(worker())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=thread_main, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    end = time.monotonic() + RUN_DEADLINE
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    if errors:
        raise errors[0]
    return not any(thread.is_alive() for thread in threads)


# -- the checks -------------------------------------------------------------------------------


def connect_failure_runs(events: List[str]) -> Tuple[List[int], int]:
    """Runs of consecutive failed connects in a trace: (those that ended in a connect, the
    one still open at the end)."""
    ended: List[int] = []
    run = 0
    for name in events:
        if name == "connection.connect_tcp.failed":
            run += 1
        elif name == "connection.connect_tcp.complete":
            ended.append(run)
            run = 0
    return ended, run


def check_call(
    plan: Plan, call: Call, out: Outcome, arrivals: List[Arrival]
) -> Tuple[List[str], bool]:
    """What is wrong with how `call` ended, given what the server received (empty: nothing),
    and whether the call counts as a loss the server did not see (see below).

    What timing may change, and is accepted:
    - whether a stale connection is seen closed before a request is sent on it (then the
      request goes elsewhere), lost on it (then a replayable request lost on a reused
      connection is retried once, anything else fails with what the loss raises), or lost
      *unseen*: the asyncio backend does not write on a connection whose FIN it has read, so
      the server never sees a request lost that way (nor a retry lost that way). Such unseen
      losses are counted against the stale connections that ended without a request
      (`chaos_run`); a traced request must show the retry in its trace;
    - the order in which the server records the two arrivals of a retried request (one thread
      per connection: the retry may be recorded before the loss);
    - which connection a request lands on, so which part of a connection's plan it meets;
    - where a cancellation lands (anywhere: a cancelled request is held to the counting rules
      only);
    - whether an injected connect failure hits a given request.
    What it may not change: the class of an error, given what the server did; the bytes of a
    response; how many times a request is sent, and why.
    """
    problems: List[str] = []
    d = call.directive
    fates = [str(a) for a in arrivals]

    # How many times it was received (API.md §3.7: once more at most, only when lost
    # unanswered on a reused connection, only when idempotent and replayable).
    if len(arrivals) > (2 if call.replayable else 1):
        problems.append(f"received {len(arrivals)} times")
    last = arrivals[-1] if arrivals else None
    if len(arrivals) == 2:
        lost = [a for a in arrivals if a.fate in UNANSWERED and a.position > 0]
        if not lost:
            problems.append("sent twice, but not after a loss on a reused connection")
        else:
            last = arrivals[1] if arrivals[0] is lost[0] else arrivals[0]
    for arrival in arrivals:
        if arrival.fate == "after_close":
            problems.append(f"sent on a connection the client had to close ({arrival})")
        if arrival.body_ok is False:
            problems.append(f"the server received a wrong request body ({arrival})")
    retried_in_trace = RETRY_EVENT in out.events
    unseen = False

    if out.kind == "cancelled":
        return problems, unseen
    if out.kind == "pending":
        return [*problems, "never finished"], unseen

    if out.kind in ("ok", "abandoned"):
        answered = ("ok", "early") if out.kind == "ok" else ("ok", "early", *DIRECTIVE_ERRORS)
        if last is None or last.fate not in answered:
            problems.append(f"{out.kind} without the server answering it ({fates})")
            return problems, unseen
        status, body, version = expected_response(d, call.rid, call.method)
        if (out.status, out.version) != (status, version):
            problems.append(f"got {out.status} {out.version!r}, sent {status} {version!r}")
        if out.kind == "ok" and out.body != body:
            problems.append(f"wrong body: {len(out.body)} B, sent {len(body)} B")
        if out.kind == "abandoned" and not body.startswith(out.body):
            problems.append(f"the {len(out.body)} B read are not the start of the body")
    else:
        error = out.error
        name = type(error).__name__
        allowed: Tuple[Type[Exception], ...]
        if isinstance(error, TraceFailed):
            # Our trace callback raised: it must have been its turn, and the request ends with
            # it wherever that was (only the counting rules above apply).
            allowed = (TraceFailed,) if call.trace_fault == "raise" else ()
            if str(error) not in out.events[call.fault_at - 1 : call.fault_at]:
                problems.append(f"the trace raised at event {call.fault_at}, seen {out.events}")
        elif isinstance(error, httpcore.PoolTimeout) and (last is None or last.fate in UNANSWERED):
            # Waiting for a connection (first, or for the retry) longer than its pool timeout.
            allowed = (httpcore.PoolTimeout,) if call.pool_timeout < 1 else ()
        elif last is None:
            # Never reached the server: a failed connect, or a loss unseen.
            allowed = STALE_ERRORS + (CONNECT_ERRORS if plan.connect_failure else ())
            unseen = isinstance(error, STALE_ERRORS)
        elif last.fate in UNANSWERED:
            allowed = STALE_ERRORS
            eligible = call.replayable and last.position > 0
            # The retry of a replayable request lost on a reused connection may fail to
            # connect.
            if eligible and plan.connect_failure:
                allowed += CONNECT_ERRORS
            if len(arrivals) == 1 and eligible and isinstance(error, STALE_ERRORS):
                if call.traced and not retried_in_trace:
                    problems.append(f"lost on a reused connection and not retried ({name})")
                unseen = True  # (or its retry was lost unseen)
        else:
            allowed = DIRECTIVE_ERRORS.get(last.fate, ())
        if type(error) not in allowed:
            expected = " or ".join(e.__name__ for e in allowed) or "success"
            problems.append(f"raised {name}({error}) where {expected} was due ({fates})")
        if isinstance(error, CONNECT_ERRORS) and call.traced:
            _, open_run = connect_failure_runs(out.events)
            if open_run != plan.retries + 1:
                problems.append(f"gave up after {open_run} failed connects")
    if call.traced:
        ended, _ = connect_failure_runs(out.events)
        if any(run > plan.retries for run in ended):
            problems.append(f"connected after more failed connects than retries: {ended}")
        if len(arrivals) == 2 and not retried_in_trace:
            problems.append("received twice without a traced retry")
        if retried_in_trace and not call.replayable:
            problems.append("a non-replayable request was retried")
    return problems, unseen


def describe(call: Call, out: Outcome, arrivals: List[Arrival]) -> str:
    d = call.directive
    how = f"{d.kind} {d.status} HTTP/{d.version.decode()} {d.framing} {d.size} B"
    how += " close" if d.close else ""
    how += " (request: close)" if call.close else ""
    how += " interim" if d.interim else ""
    body = f" {call.body_kind} {len(call.body)} B" if call.body_kind != "none" else ""
    cancel = f"@{call.cancel_at}" if call.mode == "cancel" else ""
    cancel += f" trace-{call.trace_fault}@{call.fault_at}" if call.trace_fault else ""
    cancel += f" pool-timeout={call.pool_timeout}" if call.pool_timeout < 1 else ""
    received = ", ".join(str(a) for a in arrivals) or "never received"
    traced = f" trace={[e for e in out.events if 'retry' in e or 'connect_tcp' in e]}"
    traced += f" retried for {out.retry_reasons}" if out.retry_reasons else ""
    return (
        f"{call.rid} {call.method}{body} mode={call.mode}{cancel} server=[{how}] "
        f"received=[{received}] outcome={out}" + (traced if call.traced else "")
    )


# -- the test -----------------------------------------------------------------------------------


async def wait_until(predicate: Callable[[], bool], deadline: float) -> bool:
    """Bounded polling (the async flavours' sockets close on a later loop iteration)."""
    end = time.monotonic() + deadline
    while not predicate():
        if time.monotonic() > end:
            return False
        await anyio.sleep(0.002)
    return True


def idle_only(pool: Any) -> List[str]:
    problems = []
    text = repr(pool)
    if "Requests: 0 active, 0 queued" not in text:
        problems.append(f"requests left in the pool: {text}")
    busy = [c for c in pool.connections if not c.is_idle()]
    if busy:
        problems.append(f"connections left busy: {busy}")
    return problems


async def chaos_run(api: helpers.API, raw_server: RawFactory, seed: int) -> List[str]:
    """One seed: the problems found (empty: none)."""
    plan = make_plan(seed, api.is_async)
    chaos = ChaosServer(plan)
    srv = raw_server(chaos)
    flaky = FlakyConnects(seed, plan.connect_failure)
    kwargs: Dict[str, Any] = {
        "max_connections": plan.max_connections,
        "max_keepalive_connections": plan.max_keepalive,
        "keepalive_expiry": plan.keepalive_expiry,
        "retries": plan.retries,
    }
    if plan.connect_failure:
        backend = FlakyAsyncBackend(flaky) if api.is_async else FlakySyncBackend(flaky)
        kwargs["network_backend"] = backend
    calls = list(plan.calls.values())
    outcomes = {call.rid: Outcome() for call in calls}
    problems: List[str] = []

    async with api.ConnectionPool(**kwargs) as pool:

        async def one(call: Call) -> None:
            await run_call(api, pool, srv.url, call, outcomes[call.rid], chaos)

        if not await run_all(api, calls, plan.workers, one):
            hung = [describe(c, outcomes[c.rid], []) for c in calls]
            hung = [line for line in hung if "outcome=pending" in line]
            return [f"requests still running after {RUN_DEADLINE} s:", *hung]
        problems += idle_only(pool)
        if len(pool.connections) > plan.max_connections:
            problems.append(f"{len(pool.connections)} connections > max_connections")
        if (plan.max_keepalive == 0 or plan.keepalive_expiry == 0) and pool.connections:
            problems.append(f"idle connections kept: {pool.connections}")

    # Closed: no client socket left, and the server saw every connection end.
    def all_closed() -> bool:
        return not sockets_to(srv.port) and chaos.finished == chaos.accepted == srv.connections

    if not await wait_until(all_closed, CLOSE_DEADLINE):
        problems.append(
            f"after close(): client sockets {sockets_to(srv.port)}, server connections "
            f"ended {chaos.finished} of {chaos.accepted} ({srv.connections} accepted)"
        )
    problems += chaos.problems

    arrivals = chaos.snapshot()
    unseen: List[str] = []
    for call in calls:
        got = arrivals.get(call.rid, [])
        found, lost_unseen = check_call(plan, call, outcomes[call.rid], got)
        if lost_unseen:
            unseen.append(call.rid)
        if found:
            problems.append(f"{'; '.join(found)}\n      {describe(call, outcomes[call.rid], got)}")
    if len(unseen) > chaos.silent_stale:
        problems.append(
            f"{len(unseen)} requests lost unseen ({unseen}) but only {chaos.silent_stale} "
            "stale connections ended without a request"
        )

    # A fresh pool, a well-behaved answer (and its socket closed too).
    leaked = set(sockets_to(srv.port))
    chaos.calm = True
    async with api.ConnectionPool(**{**kwargs, "network_backend": None}) as fresh:
        extensions = {"timeout": TIMEOUTS}
        response = await fresh.request("GET", srv.url + "/calm", extensions=extensions)
        if (response.status, response.content) != (200, b"calm"):
            problems.append(f"a fresh pool got {response.status} {response.content!r}")
    if not await wait_until(lambda: set(sockets_to(srv.port)) <= leaked, CLOSE_DEADLINE):
        problems.append(f"the fresh pool left sockets open: {sockets_to(srv.port)}")
    return problems


async def run_seed(api: helpers.API, raw_server: RawFactory, seed: int) -> List[str]:
    """One seed, with nothing left to the garbage collector: the problems found."""
    with left_to_the_collector() as collected:
        problems = await chaos_run(api, raw_server, seed)
    return problems + collected


@pytest.mark.anyio
@pytest.mark.parametrize("seed", range(SEEDS))
async def test_pool_chaos(api: helpers.API, raw_server: RawFactory, seed: int) -> None:
    problems = await run_seed(api, raw_server, seed)
    plan = make_plan(seed, api.is_async)
    assert not problems, f"{api.flavour} {plan.describe()}\n" + "\n".join(
        f"  - {p}" for p in problems
    )
