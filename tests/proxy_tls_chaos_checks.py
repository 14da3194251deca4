"""The client side shared by `test_proxy_tls_chaos.py` and `test_proxy_h2_chaos.py`: sending a
request and judging its outcome against API.md (exception class, message, time taken, no
password shown), judging the pool afterwards, and running one flavour's case within a
deadline, with the garbage collector disabled and the proxy's client sockets counted after."""

from __future__ import annotations

import base64
import dataclasses
import gc
import os
import ssl
import threading
import time
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional, Tuple

import anyio
import helpers
import pytest
import trustme
from conftest import make_server_ssl_context
from proxy_tls_chaos_world import Errors, Record
from servers.raw import sockets_to

import httpcore

NORMAL = 3.0  # the timeouts of a request that must not time out
SHORT = 0.15  # the timeout a stalling fault runs into
QUICK = 0.5  # the read timeout of a request due at once (a hang costs less)
SLACK = 1.5  # how late past its timeout a timed-out request may end
DEADLINE = 8.0  # one flavour's run of a case
USER, PASSWORD = "tls-chaos-user", "Pw-0f-TLS-Chaos"
SECRETS = [PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()]
BASIC = b"Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode())


@dataclasses.dataclass
class Outcome:
    value: Any  # (status, body, http_version) or the exception
    elapsed: float

    @property
    def error(self) -> Optional[BaseException]:
        return self.value if isinstance(self.value, BaseException) else None

    def __repr__(self) -> str:
        if self.error is not None:
            return f"{type(self.error).__name__}({self.error}) after {self.elapsed:.2f} s"
        return f"{self.value!r} after {self.elapsed:.2f} s"


def timeouts(short: str = "") -> Dict[str, float]:
    values = {"connect": NORMAL, "read": NORMAL, "write": NORMAL, "pool": NORMAL}
    if short == "quick-read":  # a request that must not wait on the network at all
        values["read"] = QUICK
    elif short:
        values[short] = SHORT
    return values


async def send(
    pool: Any,
    method: str,
    url: str,
    short: str = "",
    content: Optional[bytes] = None,
    trace: Any = None,
) -> Outcome:
    extensions: Dict[str, Any] = {"timeout": timeouts(short)}
    if trace is not None:
        extensions["trace"] = trace
    start = time.monotonic()
    try:
        response = await pool.request(method, url, content=content, extensions=extensions)
    except Exception as exc:
        return Outcome(exc, time.monotonic() - start)
    value = (response.status, response.content, response.extensions.get("http_version"))
    return Outcome(value, time.monotonic() - start)


def exception_texts(exc: BaseException) -> Iterator[str]:
    seen: List[BaseException] = []
    current: Optional[BaseException] = exc
    while current is not None and current not in seen:
        seen.append(current)
        yield f"{current!s} {current!r} {current.args!r}"
        current = current.__cause__ or current.__context__


def judge(
    what: str,
    outcome: Outcome,
    errors: Errors,
    message: str = "",
    exact: bool = False,
    ok: Any = None,
    limit: float = NORMAL,
) -> List[str]:
    """Problems with `outcome`: not one of `errors` (exact class) with the message, or (no
    `errors`) not `ok`; too slow; the password in the exception."""
    problems: List[str] = []
    exc = outcome.error
    if exc is not None:
        for text in exception_texts(exc):
            if any(secret in text for secret in SECRETS):
                problems.append(f"{what}: the password in the exception: {text}")
    timed_out = any(issubclass(e, httpcore.TimeoutException) for e in errors)
    if not errors:
        if outcome.value != ok:
            problems.append(f"{what}: expected {ok!r}, got {outcome!r}")
    elif exc is None or type(exc) not in errors:
        names = "|".join(e.__name__ for e in errors)
        problems.append(f"{what}: expected {names} {message!r}, got {outcome!r}")
    elif exact and str(exc) != message:
        problems.append(f"{what}: expected the message {message!r}, got {str(exc)!r}")
    elif message.lower() not in str(exc).lower():
        problems.append(f"{what}: expected {message!r} in the message, got {str(exc)!r}")
    elif not timed_out and not str(exc).strip():
        problems.append(f"{what}: {type(exc).__name__} says nothing: {exc!r}")
    # Within the request's timeouts: a fault that is not a stall waits on none of them.
    limit = SHORT + SLACK if timed_out else limit
    if outcome.elapsed > limit:
        problems.append(f"{what}: took {outcome.elapsed:.2f} s (limit {limit} s)")
    if timed_out and outcome.elapsed < SHORT * 0.9:
        problems.append(f"{what}: timed out early, after {outcome.elapsed:.3f} s")
    return problems


def pool_problems(pool: Any, failed_url: Optional[str] = None) -> List[str]:
    """No request in flight, no connection busy, none kept for an origin that just failed
    (API.md §3.5: a failed connect or a protocol error leaves no connection; one kept
    available would take the next request there)."""
    problems: List[str] = []
    if "Requests: 0 active, 0 queued" not in repr(pool):
        problems.append(f"requests left in the pool: {pool!r}")
    connections = pool.connections
    busy = [c for c in connections if not (c.is_idle() or c.is_closed())]
    if busy:
        problems.append(f"connections left busy: {busy}")
    if failed_url is not None:
        origin = httpcore.URL(failed_url).origin
        kept = [c for c in connections if c.can_handle_request(origin)]
        if kept:
            problems.append(f"a connection kept for the failed origin: {kept}")
    return problems


def auth_problems(records: List[Record], expected: Optional[bytes]) -> List[str]:
    """The credentials the proxy got on each connection that reached its protocol."""
    return [
        f"proxy connection {r.index} got the credentials {r.auth!r}, expected {expected!r}"
        for r in records
        if r.protocol and r.auth != expected
    ]


async def pause(api: helpers.API) -> None:
    """A short wait of bounded polling (the sync flavour has no loop to yield to)."""
    if api.is_async:
        await anyio.sleep(0.002)
    else:
        time.sleep(0.002)


async def wait_mark(api: helpers.API, records: List[Record], index: int, mark: str) -> bool:
    """Whether the index-th proxy connection gets `mark` within a few seconds."""
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        if len(records) > index and mark in records[index].marks:
            return True
        await pause(api)
    return False


def heard_from(port: int) -> bool:
    """Whether the kernel holds something from `port` for each of this process's sockets to
    it: bytes queued, a FIN or a reset (its TCP state no longer ESTABLISHED). Linux only."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[9] not in inodes or int(fields[2].rsplit(":", 1)[1], 16) != port:
                    continue
                if fields[3] == "01" and int(fields[4].split(":")[1], 16) == 0:
                    return False  # ESTABLISHED, nothing queued
    return True


def wait_heard(port: int) -> bool:
    """Wait (bounded, blocking: under asyncio and trio too, so that the client's event loop
    reads nothing meanwhile) until `heard_from(port)`."""
    end = time.monotonic() + 3.0
    while not heard_from(port):
        if time.monotonic() > end:
            return False
        time.sleep(0.001)
    return True


def run_flavour(
    api: helpers.API, body: Callable[[], Awaitable[List[str]]], proxy_port: int
) -> List[str]:
    """Run `body` (which closes its pool at the end) under `api`'s flavour within
    `DEADLINE`; its problems, plus what was left to the garbage collector and the client
    sockets to the proxy still open after it."""
    problems: List[str] = []
    with helpers.left_to_the_collector() as collected:
        if api.is_async:

            async def bounded() -> None:
                with anyio.move_on_after(DEADLINE) as scope:
                    problems.extend(await body())
                if scope.cancelled_caught:
                    problems.append(f"not done within {DEADLINE} s")

            anyio.run(bounded, backend=api.flavour)
        else:
            errors: List[BaseException] = []

            def main() -> None:
                try:
                    problems.extend(helpers.run_unsuspended(body()))
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            thread = threading.Thread(target=main, daemon=True)
            thread.start()
            thread.join(DEADLINE)
            if thread.is_alive():
                problems.append(f"not done within {DEADLINE} s")
            problems += [f"the case raised {exc!r}" for exc in errors]
        end = time.monotonic() + 2.0
        left = sockets_to(proxy_port)  # (each look reads /proc/net/tcp: a few ms)
        while left and time.monotonic() < end:
            time.sleep(0.005)
            left = sockets_to(proxy_port)
        if left:
            problems.append(f"client sockets to the proxy after close(): {left}")
    return problems + collected


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frozen_heap() -> Iterator[None]:
    """What lives before the module's cases goes to gc's permanent generation: each case's
    collection then walks what the case made."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(scope="module")
def server_contexts(server_cert_file: str) -> Dict[str, ssl.SSLContext]:
    untrusted = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(untrusted)
    proxy12 = make_server_ssl_context(server_cert_file, alpn=None)
    proxy12.maximum_version = ssl.TLSVersion.TLSv1_2
    return {
        "proxy": make_server_ssl_context(server_cert_file, alpn=None),
        "proxy12": proxy12,
        "target": make_server_ssl_context(server_cert_file, ("http/1.1",)),
        "untrusted": untrusted,
    }


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, without the system's CAs
    ca.configure_trust(context)
    return context


def proxy_urls(url: str) -> Tuple[str, str]:
    """The proxy URL, and the same with the credentials in it (httpcore drops them, §2.1)."""
    scheme, rest = url.split("://")
    return url, f"{scheme}://{USER}:{PASSWORD}@{rest}"
