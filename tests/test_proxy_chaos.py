"""A chaos test of the proxy paths against a misbehaving proxy on 127.0.0.1 (API.md §5, §3.4,
§3.7, §7.2, §8, §12 items 8 and 9).

The proxy (`proxy_chaos_world.ChaosProxy`) speaks HTTP CONNECT, HTTP forwarding, SOCKS5 and
SOCKS4/4A on one port and acts out one fault per connection (`FAULTS`): closes, resets,
partial, malformed or refusing replies, stalls, TLS failures behind the tunnel, a tunnel or
forwarding connection closed while idle in the pool. Behaving, it relays to hypercorn.

A *plan* is one pool (`ConnectionPool(proxy=Proxy(...))`, `HTTPProxy` or `SOCKSProxy`, sync,
asyncio or trio), a proxy scheme, credentials or none, and a list of steps run one after the
other; each step is a request to a fresh origin (so that it opens a new proxy connection,
which meets the step's fault) or to the real target (relayed, keep-alive reused). A step may
also carry a trace callback that raises, or (asyncio, trio) cancels, at one proxy step, or be
cancelled while the proxy stalls. Plans are scripted (every fault of a family in turn, each
followed by a request through the behaving proxy) or drawn from a seed.

Checks, per step: the outcome is exactly the one documented for the fault (exception class,
message), the request reached the proxy at most once (proxies do not retry; an idle
connection closed by the proxy is replaced per §3.7), the step opened exactly the proxy
connections it should, the pool is left with no request in flight, no busy connection and no
connection for a failed origin, and the proxy password appears in no exception, log record or
trace event. Per plan: nothing hangs (short timeouts, a deadline per plan), a request through
the behaving proxy then works, and after `close()` no client socket to the proxy is open and
nothing was left to the garbage collector.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import random
import ssl
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import anyio
import helpers
import pytest
import trustme
from conftest import make_server_ssl_context
from proxy_chaos_world import DISCONNECTED, FAULTS, LOST, OK_BODY, ChaosProxy, Record, applicable
from servers import HTTPServer
from servers.raw import sockets_to

import httpcore

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)"),
]

SEEDS = 4
STEPS = 8
TIMEOUTS = {"connect": 3.0, "read": 3.0, "write": 3.0, "pool": 3.0}
SHORT = 0.25  # the timeout a stalling fault runs into
PLAN_DEADLINE = 20.0
CLOSE_DEADLINE = 2.0
USER, PASSWORD = "chaos-user", "Pw-0f-Chaos"
SECRETS = [PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()]
HELLO = b"Hello, world!"


class TraceFailed(Exception):
    """Raised by a trace callback, on purpose."""


# The trace events of the proxy steps, by route (API.md §7.2).
CONNECT_EVENTS = [
    "connection.connect_tcp.started",
    "connection.connect_tcp.complete",
    "http11.send_request_headers.started",
    "http11.send_request_headers.complete",
    "http11.receive_response_headers.started",
    "http11.receive_response_headers.complete",
]
TUNNEL_EVENTS = [*CONNECT_EVENTS, "proxy.start_tls.started", "proxy.start_tls.complete"]
SOCKS_EVENTS = [
    "socks.connect_tcp.started",
    "socks.connect_tcp.complete",
    "socks.setup_{}_connection.started",
    "socks.setup_{}_connection.complete",
]


def proxy_events(scheme: str, https: bool) -> List[str]:
    if scheme.startswith("socks"):
        events = [e.format(scheme[:6]) for e in SOCKS_EVENTS]
        return events + (["socks.start_tls.started", "socks.start_tls.complete"] if https else [])
    return TUNNEL_EVENTS if https else CONNECT_EVENTS


# -- plans --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Step:
    sid: str
    fault: str = ""  # "" behaves
    https: bool = False
    real: bool = False  # to the real target (relayed) rather than a fresh origin
    method: str = "GET"
    trace: str = ""  # "" | "record" | "raise:<event>" | "cancel:<event>" | "cancel:stalling"


@dataclasses.dataclass
class Plan:
    name: str
    scheme: str  # http | socks5 | socks5h | socks4 | socks4a
    style: str  # pool: ConnectionPool(proxy=Proxy(...)); class: HTTPProxy / SOCKSProxy
    auth: bool
    http2: bool
    steps: List[Step]


def follow_up(sid: str, https: bool) -> Step:
    return Step(sid, https=https, real=True, trace="record")


def scripted(scheme: str, family: str, is_async: bool, auth: bool = True) -> Plan:
    """Every fault of `family` in turn, each followed by a request through the behaving proxy."""
    steps: List[Step] = []
    for name, fault in FAULTS.items():
        if fault.family != family:
            continue
        for https in (False, True):
            if applicable(name, scheme, https, auth):
                methods = ["POST" if len(steps) % 4 == 2 else "GET"]
                if name.endswith("stale_next"):
                    methods = ["GET", "POST"]  # sent again / not (§3.7)
                for method in methods:
                    sid = f"{name}-{int(https)}-{method}"
                    steps.append(Step(sid, name, https, method=method))
                    steps.append(follow_up(f"{sid}-after", https))
                break
    style = "pool" if len(family) % 2 else "class"
    return Plan(f"{scheme}-{family}", scheme, style, auth, False, steps)


def trace_plan(scheme: str, https: bool, kind: str) -> Plan:
    """A trace callback raising (or cancelling) at each proxy step in turn."""
    steps: List[Step] = []
    for index, event in enumerate(proxy_events(scheme, https)):
        steps.append(Step(f"{kind}{index}", https=https, trace=f"{kind}:{event}"))
        steps.append(follow_up(f"{kind}{index}-after", https))
    return Plan(f"{scheme}-{kind}-{int(https)}", scheme, "pool", True, False, steps)


def cancel_plan(scheme: str) -> Plan:
    """Cancelled while the proxy stalls (asyncio, trio)."""
    faults = [f for f in FAULTS if FAULTS[f].short and applicable(f, scheme, True, True)]
    steps = [Step(f"x-{f}", f, True, trace="cancel:stalling") for f in faults]
    return Plan(f"{scheme}-cancel", scheme, "class", True, False, steps)


def seeded(seed: int, is_async: bool) -> Plan:
    rng = random.Random(f"proxy-chaos-{seed}")
    scheme = rng.choice(["http", "http", "socks5", "socks5h", "socks4", "socks4a"])
    auth = rng.random() < 0.6
    steps: List[Step] = []
    for i in range(STEPS):
        https = rng.random() < 0.6
        draw = rng.random()
        if draw < 0.3:
            steps.append(Step(f"s{i}", https=https, real=True, trace=rng.choice(["", "record"])))
            continue
        trace = rng.choice(["", "", "record"])
        kinds = ["raise", "cancel"] if is_async else ["raise"]
        fault = ""
        if draw < 0.4:
            trace = f"{rng.choice(kinds)}:{rng.choice(proxy_events(scheme, https))}"
        else:
            faults = [f for f in FAULTS if applicable(f, scheme, https, auth)]
            fault = rng.choice(faults)
            if is_async and FAULTS[fault].short and rng.random() < 0.5:
                trace = "cancel:stalling"
        steps.append(Step(f"s{i}", fault, https, method=rng.choice(["GET", "POST"]), trace=trace))
    return Plan(
        f"seed{seed}", scheme, rng.choice(["pool", "class"]), auth, rng.random() < 0.3, steps
    )


def scripted_plans() -> List[Tuple[str, str]]:
    return [
        ("http", "connect"),
        ("http", "tunnel"),
        ("http", "forward"),
        ("socks5", "socks5"),
        ("socks5h", "tunnel"),
        ("socks4", "socks4"),
    ]


# -- running a plan -----------------------------------------------------------------------------


@dataclasses.dataclass
class World:
    api: helpers.API
    proxy: ChaosProxy
    server: HTTPServer
    tls_server: HTTPServer
    ssl_context: ssl.SSLContext
    logs: List[str]
    scheme: str = ""
    auth_sent: bool = False
    problems: List[str] = dataclasses.field(default_factory=list)


def make_pool(world: World, plan: Plan) -> Any:
    api, port = world.api, world.proxy.port
    url = f"{plan.scheme}://127.0.0.1:{port}"
    auth = (USER, PASSWORD) if plan.auth else None
    common = {"ssl_context": world.ssl_context, "http2": plan.http2}
    if plan.style == "pool":
        return api.ConnectionPool(proxy=httpcore.Proxy(url, auth=auth), **common)
    if plan.scheme == "http":
        return api.HTTPProxy(proxy_url=url, proxy_auth=auth, **common)
    pool = getattr(httpcore, api.name("SOCKSProxy"))(proxy_url=url, proxy_auth=auth, **common)
    return pool if api.is_async else helpers.SyncClient(pool)


def target(world: World, step: Step, index: int) -> str:
    scheme = "https" if step.https else "http"
    if step.real:
        return f"{scheme}://127.0.0.1:{(world.tls_server if step.https else world.server).port}/"
    return f"{scheme}://127.0.0.1:{20000 + index}/chaos/{step.sid}"


def leaks_secret(text: str) -> bool:
    return any(secret in text for secret in SECRETS)


def exception_texts(exc: BaseException) -> Iterator[str]:
    seen: List[BaseException] = []
    current: Optional[BaseException] = exc
    while current is not None and current not in seen:
        seen.append(current)
        yield f"{current!s} {current!r}"
        current = current.__cause__ or current.__context__


async def cancel_on_mark(scope: anyio.CancelScope, proxy: ChaosProxy, index: int) -> None:
    """Cancel `scope` once the index-th proxy connection stalls (bounded polling)."""
    end = time.monotonic() + PLAN_DEADLINE
    while time.monotonic() < end:
        if proxy.accepted() > index and "stalling" in proxy.records[index].marks:
            scope.cancel()
            return
        await anyio.sleep(0.002)


async def send(world: World, pool: Any, plan: Plan, step: Step, url: str) -> Tuple[str, Any]:
    """The step's request: ("ok", body) | ("error", exc) | ("cancelled", None)."""
    api, fault = world.api, FAULTS.get(step.fault)
    timeouts = dict(TIMEOUTS)
    if fault is not None and fault.short:
        timeouts[fault.short] = SHORT
    extensions: Dict[str, Any] = {"timeout": timeouts}
    kind, _, at = step.trace.partition(":")
    fired: List[str] = []
    scope = anyio.CancelScope() if api.is_async else None

    def on_event(name: str, info: Dict[str, Any]) -> None:
        if leaks_secret(repr(info)):
            world.problems.append(f"{step.sid}: the password in trace event {name}: {info!r}")
        if name == at and not fired:
            fired.append(name)
            if kind == "raise" or scope is None:
                raise TraceFailed(name)
            scope.cancel()

    if step.trace and step.trace != "cancel:stalling":
        extensions["trace"] = api.trace(on_event, checkpoint=kind == "cancel")
    content = b"chaos body" * 50 if step.method == "POST" else None
    if scope is None:
        try:
            response = await pool.request(step.method, url, content=content, extensions=extensions)
        except Exception as exc:
            return "error", exc
        return "ok", response.content
    result: Tuple[str, Any] = ("cancelled", None)
    try:
        with scope:
            async with anyio.create_task_group() as tg:
                if step.trace == "cancel:stalling":
                    tg.start_soon(cancel_on_mark, scope, world.proxy, world.proxy.accepted())
                response = await pool.request(
                    step.method, url, content=content, extensions=extensions
                )
                tg.cancel_scope.cancel()
            result = ("ok", response.content)
    except Exception as exc:
        result = ("error", unwrap(exc))
    return result


def unwrap(exc: BaseException) -> BaseException:
    """The exception itself, out of the task group's exception groups."""
    inner = getattr(exc, "exceptions", None)  # (BaseExceptionGroup is Python 3.11+)
    while isinstance(inner, tuple) and len(inner) == 1:
        exc = inner[0]
        inner = getattr(exc, "exceptions", None)
    return exc


async def pause(api: helpers.API) -> None:
    """A short wait of bounded polling (no loop to yield to in the sync flavour)."""
    if api.is_async:
        await anyio.sleep(0.002)
    else:
        time.sleep(0.002)


def wanted_connections(step: Step) -> Tuple[int, ...]:
    """How many proxy connections a step opens: one for a fresh origin (none if the trace
    callback stops it before it connects; two when the proxy closed the first one idle,
    §3.7), at most one to the real target (else one is reused)."""
    if step.real:
        return (0, 1)
    if step.fault.endswith(("idle_close", "stale_next")):
        if step.method == "POST":  # lost on the closed connection: not sent again
            return (1,) if step.fault.endswith("stale_next") else (1, 2)
        return (2,)
    if step.trace.endswith("connect_tcp.started"):
        return (0,)
    return (1,)


def check_step(
    world: World,
    pool: Any,
    step: Step,
    outcome: Tuple[str, Any],
    new: List[Record],
    url: str,
) -> None:
    problems: List[str] = []
    wanted = wanted_connections(step)
    kind, value = outcome
    # §3.7: a request that is not idempotent, sent on the idle connection just as the proxy
    # closed it (the close not yet seen: under asyncio the loop learns of it by reading), is
    # not sent again: it fails, exactly so, on that one connection.
    lost_race = (
        step.fault.endswith(("idle_close", "stale_next"))
        and step.method == "POST"
        and kind == "error"
        and type(value) in LOST
        and (type(value) is httpcore.ReadError or str(value) == DISCONNECTED)
    )
    if lost_race:
        wanted = (1,)
    if len(new) not in wanted:
        problems.append(f"opened {len(new)} proxy connections, expected {wanted}")
    fault = FAULTS.get(step.fault)
    trace_kind = step.trace.partition(":")[0]
    if kind == "error":
        for text in exception_texts(value):
            if leaks_secret(text):
                problems.append(f"the password in the exception: {text}")
    shown = f"{type(value).__name__}({value})" if kind == "error" else f"{kind} {value!r}"
    # What the step must end with.
    if trace_kind == "cancel":
        expected = "cancelled"
        ok = kind == "cancelled" or (step.trace == "cancel:stalling" and kind == "error")
        if kind == "error" and (fault is None or type(value) not in fault.errors):
            ok = False
    elif trace_kind == "raise":
        expected = "TraceFailed"
        ok = kind == "error" and type(value) is TraceFailed
    elif fault is None or not fault.errors:
        body = HELLO if step.real else OK_BODY
        expected = f"ok {body!r}"
        ok = outcome == ("ok", body)
    else:
        expected = "|".join(e.__name__ for e in fault.errors) + f" {fault.message!r}"
        ok = kind == "error" and type(value) in fault.errors
        if ok and fault.exact:
            ok = str(value) == fault.message
        elif ok:
            # A message saying what went wrong (timeouts: what the backend's timeout says).
            said = str(value) != "" or isinstance(value, httpcore.TimeoutException)
            ok = fault.message.lower() in str(value).lower() and said
    if not ok and not lost_race:
        problems.append(f"expected {expected}, got {shown}")
    path = f"/chaos/{step.sid}".encode()
    arrivals = sum(line.count(path) for r in world.proxy.records for line in r.arrived)
    # Twice for the two requests of the closing steps; three times when a GET was lost on
    # the connection closed under it, and sent again (§3.7); a POST never twice.
    most = {"idle_close": 2, "stale_next": 3 if step.method == "GET" else 2}
    if arrivals > most.get(step.fault[2:], 1):
        problems.append(f"the request reached the proxy {arrivals} times")
    if world.auth_sent and world.scheme.startswith("socks5"):
        for record in new:
            if record.auth not in (None, (USER.encode(), PASSWORD.encode())):
                problems.append(f"the proxy got the credentials {record.auth!r}")
    # The pool: nothing in flight, nothing busy, nothing left for a failed origin.
    pool_repr = repr(pool)
    if "Requests: 0 active, 0 queued" not in pool_repr:
        problems.append(f"requests left in the pool: {pool_repr}")
    connections = pool.connections
    busy = [c for c in connections if not c.is_idle()]
    if busy:
        problems.append(f"connections left busy: {busy}")
    if kind != "ok":
        origin = httpcore.URL(url).origin
        kept = [c for c in connections if c.can_handle_request(origin)]
        if kept:
            problems.append(f"a connection kept for the failed origin: {kept}")
    if problems:
        world.problems.append(f"{step.sid} ({step}): " + "; ".join(problems))


async def settled(world: World, step: Step, before: int) -> List[Record]:
    """The proxy connections the step opened, once the proxy has accepted as many as it
    should (a connect completes before the proxy's accept() returns)."""
    end = time.monotonic() + CLOSE_DEADLINE
    while world.proxy.accepted() - before < min(wanted_connections(step)):
        if time.monotonic() > end:
            break
        await pause(world.api)
    return world.proxy.records[before:]


async def idle_close_steps(world: World, pool: Any, plan: Plan, step: Step, url: str) -> None:
    """The proxy closes the connection once the first response is out (`*_idle_close`), or
    when the next request arrives on it (`*_stale_next`); the next request to the same origin
    must not fail because of it, unless it was lost on that connection and may not be sent
    again (§3.7)."""
    before = world.proxy.accepted()
    first = await send(world, pool, plan, step, url)
    if first != ("ok", OK_BODY):
        world.problems.append(f"{step.sid}: before the close, {first}")
        return
    end = time.monotonic() + CLOSE_DEADLINE
    while (
        step.fault.endswith("idle_close") and "closed idle" not in world.proxy.records[before].marks
    ):
        if time.monotonic() > end:
            world.problems.append(f"{step.sid}: the proxy never closed the idle connection")
            break
        await pause(world.api)
    again = dataclasses.replace(step, fault="", sid=step.sid + "-again")
    outcome = await send(world, pool, plan, again, url)
    check_step(world, pool, step, outcome, await settled(world, step, before), url)


async def run_plan(world: World, plan: Plan) -> None:
    proxy = world.proxy
    world.scheme, world.auth_sent = plan.scheme, plan.auth
    pool = make_pool(world, plan)
    pool = pool
    async with pool:
        for index, step in enumerate(plan.steps):
            url = target(world, step, index)
            proxy.clear()
            if step.fault.endswith(("idle_close", "stale_next")):
                proxy.push(step.fault)
                await idle_close_steps(world, pool, plan, step, url)
                continue
            if not step.real:
                proxy.push(step.fault)
            before = proxy.accepted()
            outcome = await send(world, pool, plan, step, url)
            check_step(world, pool, step, outcome, await settled(world, step, before), url)
        # A request through the behaving proxy works, at the end of every plan.
        proxy.clear()
        for https in (False, True):
            step = follow_up(f"final-{int(https)}", https)
            before = proxy.accepted()
            url = target(world, step, 0)
            outcome = await send(world, pool, plan, step, url)
            check_step(world, pool, step, outcome, await settled(world, step, before), url)
    end = time.monotonic() + CLOSE_DEADLINE
    while sockets_to(proxy.port) and time.monotonic() < end:
        await pause(world.api)
    if sockets_to(proxy.port):
        world.problems.append(
            f"client sockets to the proxy after close(): {sockets_to(proxy.port)}"
        )


async def check_plan(world: World, plan: Plan) -> None:
    """Run `plan` within its deadline, then fail with every problem found."""
    with helpers.left_to_the_collector() as collected:
        if world.api.is_async:
            with anyio.move_on_after(PLAN_DEADLINE) as deadline:
                await run_plan(world, plan)
            if deadline.cancelled_caught:
                world.problems.append(f"the plan did not finish within {PLAN_DEADLINE} s")
        else:
            errors: List[BaseException] = []

            def main() -> None:
                try:
                    helpers.run_unsuspended(run_plan(world, plan))
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            thread = threading.Thread(target=main, daemon=True)
            thread.start()
            thread.join(PLAN_DEADLINE)
            if thread.is_alive():
                world.problems.append(f"the plan did not finish within {PLAN_DEADLINE} s")
            world.problems += [f"the plan raised {exc!r}" for exc in errors]
    world.problems += collected
    world.problems += [
        f"a log record shows the password: {m}" for m in world.logs if leaks_secret(m)
    ]
    steps = "\n".join(f"    {s}" for s in plan.steps)
    assert not world.problems, (
        f"{world.api.flavour} {plan.name}:\n"
        + "\n".join(f"  - {p}" for p in world.problems)
        + f"\n  steps:\n{steps}"
    )


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_tls() -> ssl.SSLContext:
    """A server context whose certificate the client does not trust."""
    cert = trustme.CA().issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    context.set_alpn_protocols(["http/1.1"])
    return context


@pytest.fixture
def world(
    api: helpers.API,
    server: HTTPServer,
    tls_server: HTTPServer,
    server_cert_file: str,
    bad_tls: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> Iterator[World]:
    good = make_server_ssl_context(server_cert_file)
    assert server.port is not None and tls_server.port is not None
    proxy = ChaosProxy(good, bad_tls, frozenset({server.port, tls_server.port}))
    logs: List[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logs.append(f"{record.name} {record.getMessage()}")

    handler, logger = Collect(logging.DEBUG), logging.getLogger("httpcore")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield World(api, proxy, server, tls_server, client_ssl_context, logs)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        proxy.close()
    assert not proxy.problems, proxy.problems


# -- the tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme, family", scripted_plans())
async def test_every_fault(world: World, scheme: str, family: str) -> None:
    await check_plan(world, scripted(scheme, family, world.api.is_async))


async def test_socks5_faults_without_credentials(world: World) -> None:
    await check_plan(world, scripted("socks5", "socks5", world.api.is_async, auth=False))


@pytest.mark.parametrize(
    "scheme, https", [("http", False), ("http", True), ("socks5", True), ("socks4a", False)]
)
async def test_a_trace_callback_raising_at_each_proxy_step(
    world: World, scheme: str, https: bool
) -> None:
    await check_plan(world, trace_plan(scheme, https, "raise"))


@pytest.mark.parametrize("flavour", ["asyncio", "trio"])
@pytest.mark.parametrize("scheme, https", [("http", True), ("socks5", True), ("socks4", False)])
async def test_cancelled_at_each_proxy_step(world: World, scheme: str, https: bool) -> None:
    await check_plan(world, trace_plan(scheme, https, "cancel"))


@pytest.mark.parametrize("flavour", ["asyncio", "trio"])
@pytest.mark.parametrize("scheme", ["http", "socks5", "socks4"])
async def test_cancelled_while_the_proxy_stalls(world: World, scheme: str) -> None:
    await check_plan(world, cancel_plan(scheme))


@pytest.mark.parametrize("seed", range(SEEDS))
async def test_seeded_plan(world: World, seed: int) -> None:
    await check_plan(world, seeded(seed, world.api.is_async))
