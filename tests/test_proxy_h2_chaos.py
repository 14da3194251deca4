"""A chaos test of HTTP/2 through proxies (`http2=True`, an https target; API.md §4.4, §5.4,
§5.5, §7.1, §8, §12 item 7): through an HTTP CONNECT proxy, a SOCKS5 proxy and an HTTPS proxy
(TLS in TLS), ALPN picks h2 inside the tunnel and the proxy (`proxy_tls_chaos_world`) relays
to hypercorn over TLS (tests/servers), then faults the server->client bytes.

A case, per flavour (sync, asyncio, trio): one request opens the tunnel (HTTP/2, 200); the
proxy then holds the server->client bytes while `STREAMS` concurrent requests go out on that
connection (all their HEADERS sent, as the trace says), and lets `N` bytes through (`N`
seeded per case) before the fault: a cut (FIN; for the HTTPS proxy also its close_notify
first), a reset, a stall, or one byte flipped in the middle of a record of the target's TLS
(for the HTTPS proxy also of its own). No response can be whole by then (each is 64 KiB), so
each request must fail, with the exception class API.md documents for the fault, within its
timeouts (a short read timeout for the stall); then no request is left in the pool, no
connection busy, none kept for the origin; a follow-up request opens a new tunnel and gets
its 200 over HTTP/2; the password shows in no exception; after close() no client socket to
the proxy is open and nothing was left to the garbage collector.

A second test ends the tunnel (FIN, reset, close_notify with or without FIN) while its
HTTP/2 connection is idle in the pool: the next request must go through a new tunnel.
"""

from __future__ import annotations

import random
import ssl
import sys
import threading
from typing import Any, Dict, List, Optional

import anyio
import helpers
import pytest
import trustme
from proxy_tls_chaos_checks import (
    BASIC,
    PASSWORD,
    QUICK,
    USER,
    auth_problems,
    client_context,
    frozen_heap,
    judge,
    pool_problems,
    proxy_urls,
    run_flavour,
    send,
    server_contexts,
    wait_heard,
)
from proxy_tls_chaos_world import H2_FAULTS, TLSChaosProxy
from servers import HTTPServer

import httpcore

api = helpers.api
__all__ = ["frozen_heap", "server_contexts"]  # fixtures, used by name

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)"),
    pytest.mark.usefixtures("frozen_heap"),
]

STREAMS = 4
HELLO = (200, b"Hello, world!", b"HTTP/2")
SENT = "http2.send_request_headers.complete"

# Library defects: case id -> {flavour: why} (reported; each fails today, strict).
XFAIL: Dict[str, Dict[str, str]] = {}


def make_pool(api: helpers.API, kind: str, proxy_url: str, ca: trustme.CA, auth: bool) -> Any:
    """HTTP/2 through the proxy: `ConnectionPool(proxy=Proxy(...))` with credentials, or the
    proxy class (`HTTPProxy`, `SOCKSProxy`) without."""
    plain, with_credentials = proxy_urls(proxy_url)
    origin_context = client_context(ca)
    proxy_context = client_context(ca) if kind == "https" else None
    if auth:
        proxy = httpcore.Proxy(with_credentials, auth=(USER, PASSWORD), ssl_context=proxy_context)
        return api.ConnectionPool(proxy=proxy, ssl_context=origin_context, http2=True)
    if kind == "socks5":
        pool = api.cls("SOCKSProxy")(proxy_url=plain, ssl_context=origin_context, http2=True)
        return pool if api.is_async else helpers.SyncClient(pool)
    return api.HTTPProxy(
        proxy_url=plain, proxy_ssl_context=proxy_context, ssl_context=origin_context, http2=True
    )


class Release:
    """A trace callback that opens the proxy's gate once every request has sent its
    HEADERS."""

    def __init__(self, proxy: TLSChaosProxy) -> None:
        self.proxy = proxy
        self.sent = 0
        self.lock = threading.Lock()

    def __call__(self, name: str, info: Dict[str, Any]) -> None:
        if name != SENT:
            return
        with self.lock:
            self.sent += 1
            if self.sent == STREAMS:
                self.proxy.gate.release()


async def a_case(
    api: helpers.API,
    proxy: TLSChaosProxy,
    fault: str,
    origin: str,
    ca: trustme.CA,
    auth: bool,
) -> List[str]:
    problems: List[str] = []
    kind = "https" if proxy.tls else "socks5" if proxy.url.startswith("socks5") else "http"
    async with make_pool(api, kind, proxy.url, ca, auth) as pool:
        proxy.push(fault)
        problems += judge("opening request", await send(pool, "GET", origin + "/"), (), ok=HELLO)
        proxy.gate.hold()
        release = Release(proxy)
        trace = api.trace(release)
        short = "read" if fault == "h2_stall" else ""
        outcomes: Dict[int, Any] = {}

        def one(n: int) -> Any:
            async def run() -> None:
                url = f"{origin}/bytes/65536"
                outcomes[n] = await send(pool, "GET", url, short, trace=trace)

            return run

        await api.concurrently(*(one(n) for n in range(STREAMS)))
        if release.sent != STREAMS:
            problems.append(f"{release.sent} of {STREAMS} requests sent their HEADERS")
            proxy.gate.release()
        for n in range(STREAMS):
            problems += judge(f"stream {n}", outcomes[n], H2_FAULTS[fault])
        mark = "corrupted" if fault == "h2_corrupt" else fault
        if mark not in proxy.records[0].marks:
            problems.append(f"the fault never hit: {proxy.records[0].marks}")
        if proxy.accepted() != 1:
            problems.append(f"{proxy.accepted()} proxy connections, expected 1")
        kept = pool_problems(pool, origin + "/")
        problems += kept
        if not kept:  # (else the follow-up would wait on the connection kept, in vain)
            follow = await send(pool, "GET", origin + "/", "quick-read")
            problems += judge("follow-up", follow, (), ok=HELLO, limit=QUICK)
            if proxy.accepted() != 2:
                problems.append("the follow-up request did not open a new tunnel")
            problems += pool_problems(pool)
    expected: Optional[bytes] = None
    if auth:
        expected = f"{USER}:{PASSWORD}".encode() if kind == "socks5" else BASIC
    problems += auth_problems(proxy.records, expected)
    return problems


def params() -> List[Any]:
    out = []
    for kind in ("http", "socks5", "https"):
        for fault in H2_FAULTS:
            if fault in ("h2_cut_notify", "h2_corrupt_outer") and kind != "https":
                continue
            case_id = f"{kind}-{fault}"
            # Where the fault hits: a seeded number of bytes after the gate opens.
            at = random.Random(f"proxy-h2-chaos-{case_id}").randrange(1, 20000)
            for flavour in helpers.FLAVOURS:
                reason = XFAIL.get(case_id, {}).get(flavour)
                marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
                param_id = f"{case_id}-at{at}-{flavour}"
                out.append(pytest.param(kind, fault, at, flavour, id=param_id, marks=marks))
    return out


@pytest.mark.timeout(30)
def chaos_proxy(
    kind: str, tls_server: HTTPServer, server_contexts: Dict[str, ssl.SSLContext], **options: Any
) -> TLSChaosProxy:
    """The proxy of `kind` (http, socks5, https) in front of `tls_server`."""
    assert tls_server.port is not None
    real = frozenset({tls_server.port})
    proxy = TLSChaosProxy(server_contexts, tls=kind == "https", real_ports=real, **options)
    if kind == "socks5":
        proxy.url = proxy.url.replace("http://", "socks5://")
    return proxy


@pytest.mark.parametrize("kind, fault, at, flavour", params())
def test_http2_through_a_proxy_fault(
    api: helpers.API,
    kind: str,
    fault: str,
    at: int,
    tls_server: HTTPServer,
    ca: trustme.CA,
    server_contexts: Dict[str, ssl.SSLContext],
) -> None:
    proxy = chaos_proxy(kind, tls_server, server_contexts, h2_at=at)
    auth = at % 2 == 0
    try:
        problems = run_flavour(
            api, lambda: a_case(api, proxy, fault, tls_server.url, ca, auth), proxy.port
        )
    finally:
        proxy.close()
    problems += proxy.problems
    shown = "\n".join(f"  - {p}" for p in problems)
    records = "\n".join(f"    {r.index}: {r.fault!r} {r.protocol} {r.marks}" for r in proxy.records)
    assert not problems, f"{api.flavour} {kind} {fault} at {at} (auth {auth}):\n{shown}\n{records}"


async def an_idle_case(
    api: helpers.API, proxy: TLSChaosProxy, how: str, origin: str, ca: trustme.CA
) -> List[str]:
    """The proxy ends the tunnel while its HTTP/2 connection is idle in the pool: the next
    request must not be sent on it (a new tunnel, 200)."""
    problems: List[str] = []
    kind = "https" if proxy.tls else "socks5" if proxy.url.startswith("socks5") else "http"
    async with make_pool(api, kind, proxy.url, ca, auth=True) as pool:
        problems += judge("opening request", await send(pool, "GET", origin + "/"), (), ok=HELLO)
        proxy.end(0, how)
        if not wait_heard(proxy.port):
            problems.append("the end never reached the client's socket")
        if api.flavour == "asyncio":
            # Native TLS is read by the event loop, which turns while a connection sits idle
            # in a pool; here the end came a moment ago (a readiness callback, then its read).
            for _ in range(3):
                await anyio.sleep(0)
        outcome = await send(pool, "GET", origin + "/", "quick-read")
        problems += judge("after the end", outcome, (), ok=HELLO, limit=QUICK)
        if proxy.accepted() != 2:
            problems.append(f"{proxy.accepted()} proxy connections, expected 2")
        problems += pool_problems(pool)
    return problems


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "kind, how",
    [
        ("http", "fin"),
        ("socks5", "rst"),
        ("https", "close_notify"),
        ("https", "notify_only"),
        ("https", "rst"),
    ],
)
@pytest.mark.parametrize("flavour", helpers.FLAVOURS)
def test_http2_tunnel_ended_while_idle(
    api: helpers.API,
    kind: str,
    how: str,
    tls_server: HTTPServer,
    ca: trustme.CA,
    server_contexts: Dict[str, ssl.SSLContext],
) -> None:
    proxy = chaos_proxy(kind, tls_server, server_contexts)
    try:
        problems = run_flavour(
            api, lambda: an_idle_case(api, proxy, how, tls_server.url, ca), proxy.port
        )
    finally:
        proxy.close()
    problems += proxy.problems
    shown = "\n".join(f"  - {p}" for p in problems)
    assert not problems, f"{api.flavour} {kind} {how}:\n{shown}"
