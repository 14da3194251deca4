"""A chaos test of HTTPS proxies (`https://` proxy URL: TLS to the proxy, CONNECT, then TLS to
the target inside that TLS; API.md §2.5, §3.7, §4.3, §5.1-§5.4, §6, §7.1, §8) against a
misbehaving proxy on 127.0.0.1 (`proxy_tls_chaos_world.TLSChaosProxy`).

The client's TLS-in-TLS is the project's own stream under sync (`TLSinTLSStream`), start_tls
over a TLS transport under asyncio, an SSL stream over an SSL stream under trio: every case
runs under the three flavours, one pytest item each.

A case is one fault of the proxy (`FAULTS`): its own TLS handshake failing (untrusted
certificate, alert, cut mid flight, reset, stall), the connection ended (close_notify then
FIN, bare FIN, reset) right after the CONNECT reply, mid TLS handshake with the target,
mid request, mid response body or while idle in the pool; one byte of an outer record
corrupted (the CONNECT reply's, a body's); the tunnel's first bytes in the same outer record
as the reply; the reply in one-byte records; the same faults for http:// targets forwarded
through the proxy; and a behaving proxy whose connections are reused (keep-alive).

Checks, per flavour: the exact exception class API.md documents (and its message where
API.md or test_proxy_chaos.py fixes one), within the request's timeouts (a short one for
stalls); the proxy connections opened; the credentials the proxy got (`auth=`; those in the
proxy URL are dropped, §2.1); no request in flight, no busy connection, none available for
the failed origin; a follow-up request through the behaving proxy works on a new
connection; the password in no exception; after close() no client socket to the proxy is
open and nothing was left to the garbage collector.
"""

from __future__ import annotations

import ssl
import sys
from typing import Any, Dict, List, Optional

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
    wait_mark,
)
from proxy_tls_chaos_world import FAULTS, TLSChaosProxy

import httpcore

api = helpers.api
__all__ = ["frozen_heap", "server_contexts"]  # fixtures, used by name

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)"),
    pytest.mark.usefixtures("frozen_heap"),
]

OK = (200, b"chaos ok", b"HTTP/1.1")
BODY = b"0123456789abcdef" * 4096  # 64 KiB: the request is still going out when a fault hits
STYLES = ("pool+auth", "class+auth", "url-only")
VERSIONS = ("tls1.3", "tls1.2")  # of the proxy's own TLS (the target's is TLS 1.3)

# Library defects: fault -> {flavour: why} (reported; each fails today, strict).
XFAIL: Dict[str, Dict[str, str]] = {}


def make_pool(api: helpers.API, style: str, proxy_url: str, ca: trustme.CA) -> Any:
    """`pool+auth`: `ConnectionPool(proxy=Proxy(...))` with `auth=` (and credentials in the
    URL too); `class+auth`: `HTTPProxy(proxy_auth=...)`; `url-only`: credentials in the URL
    alone."""
    plain, with_credentials = proxy_urls(proxy_url)
    proxy_context, origin_context = client_context(ca), client_context(ca)
    if style == "class+auth":
        return api.HTTPProxy(
            proxy_url=plain,
            proxy_auth=(USER, PASSWORD),
            proxy_ssl_context=proxy_context,
            ssl_context=origin_context,
        )
    auth = (USER, PASSWORD) if style == "pool+auth" else None
    proxy = httpcore.Proxy(with_credentials, auth=auth, ssl_context=proxy_context)
    return api.ConnectionPool(proxy=proxy, ssl_context=origin_context)


def url(scheme: str, port: int, path: str) -> str:
    return f"{scheme}://127.0.0.1:{port}/{path}"


async def a_case(
    api: helpers.API, proxy: TLSChaosProxy, name: str, style: str, ca: trustme.CA
) -> List[str]:
    fault = FAULTS[name] if name else None
    problems: List[str] = []
    target = url(fault.target if fault else "https", 20001, f"chaos/{name}")
    async with make_pool(api, style, proxy.url, ca) as pool:
        proxy.push(name)
        if fault is None:  # keep-alive: two requests per origin, one connection per origin
            for scheme in ("https", "http", "https", "http"):
                outcome = await send(pool, "GET", url(scheme, 20002, "again"))
                problems += judge(f"{scheme} request", outcome, (), ok=OK)
            opened = 2
            lines = sorted(line for r in proxy.records for line in r.arrived)
            wanted = [b"CONNECT 127.0.0.1:20002 HTTP/1.1"]  # then origin-form in the tunnel,
            wanted += [b"GET /again HTTP/1.1"] * 2  # absolute-form forwarded (§5.3, §5.4)
            wanted += [b"GET http://127.0.0.1:20002/again HTTP/1.1"] * 2
            if lines != wanted:
                problems.append(f"the proxy got {lines}, expected {wanted}")
        elif "idle_" in name or "stale_" in name:
            problems += judge("first", await send(pool, "GET", target), (), ok=OK)
            if "idle_" in name and not await wait_mark(api, proxy.records, 0, "closed idle"):
                problems.append("the proxy never closed the idle connection")
            outcome = await send(pool, "GET", target, "quick-read")
            problems += judge("after the close", outcome, (), ok=OK, limit=QUICK)
            sent = [line for line in proxy.records[0].arrived if b"/chaos/" in line]
            if "stale_" in name and len(sent) != 2:  # (else the retry was not tested)
                problems.append(f"the kept connection got {sent}, expected two requests")
            opened = fault.connections
        else:
            content = BODY if name.startswith(("request_", "fwd_request")) else None
            method = "POST" if content is not None or len(name) % 2 else "GET"
            outcome = await send(pool, method, target, fault.short, content)
            problems += judge("request", outcome, fault.errors, fault.message, fault.exact, ok=OK)
            failed = target if fault.errors else None
            problems += pool_problems(pool, failed)
            opened = fault.connections
        if proxy.accepted() != opened:
            problems.append(f"{proxy.accepted()} proxy connections, expected {opened}")
        # A follow-up request through the behaving proxy, on a new connection.
        before = proxy.accepted()
        outcome = await send(pool, "GET", url("https", 20003, "follow-up"), "quick-read")
        problems += judge("follow-up", outcome, (), ok=OK, limit=QUICK)
        if proxy.accepted() != before + 1:
            problems.append("the follow-up request did not open a new proxy connection")
        problems += pool_problems(pool)
    expected: Optional[bytes] = None if style == "url-only" else BASIC
    problems += auth_problems(proxy.records, expected)
    return problems


def params() -> List[Any]:
    out = []
    for index, name in enumerate(["", *FAULTS]):
        style = STYLES[index % len(STYLES)]
        version = VERSIONS[index % len(VERSIONS)]
        for flavour in helpers.FLAVOURS:
            reason = XFAIL.get(name, {}).get(flavour)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            case_id = f"{name or 'keep-alive'}-{style}-{version}-{flavour}"
            values = (name, style, version, flavour)
            out.append(pytest.param(*values, id=case_id, marks=marks))
    return out


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name, style, version, flavour", params())
def test_https_proxy_fault(
    api: helpers.API,
    name: str,
    style: str,
    version: str,
    ca: trustme.CA,
    server_contexts: Dict[str, ssl.SSLContext],
) -> None:
    own = "proxy12" if version == "tls1.2" else "proxy"
    proxy = TLSChaosProxy(server_contexts, tls=True, real_ports=frozenset(), own=own)
    try:
        problems = run_flavour(api, lambda: a_case(api, proxy, name, style, ca), proxy.port)
    finally:
        proxy.close()
    problems += proxy.problems
    shown = "\n".join(f"  - {p}" for p in problems)
    records = "\n".join(
        f"    {r.index}: {r.fault!r} {r.protocol} {r.marks} {r.arrived}" for r in proxy.records
    )
    title = f"{api.flavour} {name or 'keep-alive'} ({style}, {version})"
    assert not problems, f"{title}:\n{shown}\n{records}"
