"""Happy eyeballs (RFC 8305): a host whose first address black-holes connects through the next.

A name that resolves to several addresses is made up here (`socket.getaddrinfo` is
monkeypatched, which asyncio's `loop.getaddrinfo` calls too; trio gets a custom hostname
resolver), so the addresses behind it are real listeners on this machine: a "black hole" is a
listening socket with a full accept queue (Linux then drops the SYNs: connecting hangs), a
refusing port is bound but not listening.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
import time
import warnings
from typing import Any, Callable, Dict, Iterator, List, Tuple

import anyio
import helpers
import pytest
from servers.raw import sockets_to

import httpcore
from httpcore.aio._anyio import AnyIOBackend
from httpcore.aio._asyncio import AsyncIOBackend
from httpcore.aio._trio import TrioBackend
from httpcore.base._happy_eyeballs import STAGGER, Schedule, candidates, interleave
from httpcore.base._sync_backend import SyncBackend

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="black holes rely on Linux dropping SYNs"
)

NAME = "dual.test"
Address = Tuple[str, int]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _info(address: Address) -> Any:
    host, port = address
    sockaddr = (host, port, 0, 0) if ":" in host else (host, port)
    return (_family(host), socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)


class Resolver:
    """Names this test makes up, each resolving to the given addresses, in order."""

    def __init__(self) -> None:
        self.table: Dict[str, List[Address]] = {}
        self.real = socket.getaddrinfo
        self.delay = 0.0  # a slow resolver (blocks the calling thread)

    def __call__(self, host: Any, port: Any, family: int = 0, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.table:
            return self.real(host, port, family, *args, **kwargs)
        time.sleep(self.delay)
        return [_info(a) for a in self.table[name] if family in (0, _family(a[0]))]

    def install_trio(self) -> None:
        """Under trio: answer trio's own lookups too (call inside the trio run)."""
        import trio

        resolver = self

        class TrioResolver(trio.abc.HostnameResolver):  # type: ignore[misc]
            async def getaddrinfo(self, host: Any, port: Any, *args: Any) -> Any:
                return resolver(host, port, *args)

            async def getnameinfo(self, sockaddr: Any, flags: int) -> Any:
                raise NotImplementedError

        trio.socket.set_custom_hostname_resolver(TrioResolver())


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    fake = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


def _listener(host: str, port: int = 0) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class BlackHoles:
    """`black_hole(host, port=0)`: an address where connecting hangs (full accept queue)."""

    def __init__(self) -> None:
        self.sockets: List[socket.socket] = []  # the listeners and the connections filling them

    def __call__(self, host: str, port: int = 0) -> Address:
        return self._fill(_listener(host, port))

    def same_port(self) -> Tuple[Address, Address]:
        """A hole on ::1 and one on 127.0.0.1, on the same port (a port free on ::1 may be
        taken on 127.0.0.1 by another socket of the machine: then another port is tried)."""
        for _ in range(50):
            six = _listener("::1")
            try:
                four = _listener("127.0.0.1", six.getsockname()[1])
            except OSError:
                six.close()
                continue
            return self._fill(six), self._fill(four)
        raise AssertionError("no port free on both ::1 and 127.0.0.1")  # pragma: no cover

    def _fill(self, listener: socket.socket) -> Address:
        opened = self.sockets
        opened.append(listener)
        listener.listen(0)
        address = listener.getsockname()[:2]
        for _ in range(16):
            filler = socket.socket(listener.family, socket.SOCK_STREAM)
            opened.append(filler)
            filler.settimeout(0.2)
            try:
                filler.connect(address)
            except socket.timeout:
                return address  # that SYN was dropped: the queue is full
        raise AssertionError("could not fill the accept queue")  # pragma: no cover


@pytest.fixture
def black_hole() -> Iterator[BlackHoles]:
    holes = BlackHoles()
    yield holes
    for sock in holes.sockets:
        sock.close()


@pytest.fixture
def refusing() -> Iterator[Callable[[str], Address]]:
    """`refusing(host)`: a bound, not listening, address: connecting is refused at once."""
    opened: List[socket.socket] = []

    def make(host: str) -> Address:
        sock = _listener(host)
        opened.append(sock)
        return sock.getsockname()[:2]  # type: ignore[no-any-return]

    yield make
    for sock in opened:
        sock.close()


@pytest.fixture
def dual(resolver: Resolver, raw_server: Any, black_hole: BlackHoles) -> Any:
    """`NAME` resolves to [::1] (a black hole) then 127.0.0.1 (a server), on one port."""
    for _ in range(20):  # until the server's port is free on ::1 too
        server = raw_server(OK)
        try:
            black_hole("::1", server.port)
        except OSError:
            continue
        resolver.table[NAME] = [("::1", server.port), ("127.0.0.1", server.port)]
        return server
    raise AssertionError("no port free on both ::1 and 127.0.0.1")  # pragma: no cover


# -- the I/O-free pieces ----------------------------------------------------------------------


def test_interleave_by_family() -> None:
    v6a, v6b, v6c = (_info((f"::{i}", 80)) for i in (1, 2, 3))
    v4a, v4b = (_info((f"10.0.0.{i}", 80)) for i in (1, 2))
    assert interleave([v6a, v6b, v6c, v4a, v4b]) == [v6a, v4a, v6b, v4b, v6c]
    assert interleave([v4a, v6a, v6b, v4b]) == [v4a, v6a, v4b, v6b]
    assert interleave([v4a, v4a, v4b]) == [v4a, v4b]  # duplicates dropped
    assert interleave([]) == []
    assert candidates([v6a, v4a, v6b], "0.0.0.0") == [v4a]
    assert candidates([v6a, v4a, v6b], "::") == [v6a, v6b]
    assert candidates([v4a], "::1") == []


def test_schedule() -> None:
    a, b, c = (_info((f"10.0.0.{i}", 80)) for i in (1, 2, 3))
    schedule = Schedule([a, b, c])
    assert schedule.start(10.0) == a
    assert schedule.start(10.0) is None  # the next one waits for the stagger...
    assert schedule.wait(10.0, None) == STAGGER
    assert schedule.wait(10.0, 10.1) == pytest.approx(0.1)  # ...or the deadline, if sooner
    assert schedule.start(10.0 + STAGGER) == b
    schedule.failed()  # a failure starts the next one at once
    assert schedule.start(10.3) == c
    assert schedule.wait(10.3, None) is None  # nothing left to start: wait for the attempts
    assert not schedule.exhausted
    schedule.failed()
    schedule.failed()
    assert schedule.exhausted


# -- sync and asyncio backends ----------------------------------------------------------------

NATIVE = ["sync", "asyncio"]


async def _connect(kind: str, host: str, port: int, **kwargs: Any) -> Any:
    if kind == "sync":
        return SyncBackend().connect_tcp(host, port, **kwargs)
    return await AsyncIOBackend().connect_tcp(host, port, **kwargs)


async def _close(stream: Any) -> None:
    await helpers.API.aw(stream.close() if hasattr(stream, "close") else stream.aclose())


@pytest.mark.anyio
@pytest.mark.parametrize("kind", NATIVE)
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("timeout", [5.0, None])
async def test_black_holed_first_address_falls_over_to_the_second(
    kind: str, dual: Any, black_hole: BlackHoles, timeout: Any
) -> None:
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        # The losing attempt is closed by us, not by the collector (with a warning).
        warnings.simplefilter("always", ResourceWarning)
        stream = await _connect(kind, NAME, dual.port, timeout=timeout)
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    elapsed = time.monotonic() - start
    assert STAGGER * 0.9 <= elapsed < 1.0  # the second attempt started after the stagger
    assert stream.get_extra_info("server_addr") == ("127.0.0.1", dual.port)
    # The attempt on [::1] (SYN_SENT) is closed already: only the winner is left.
    assert [state for state, _ in sockets_to(dual.port, black_hole.sockets)] == ["ESTABLISHED"]
    await _close(stream)
    assert sockets_to(dual.port, black_hole.sockets) == []


@pytest.mark.anyio
@pytest.mark.parametrize("kind", NATIVE)
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("first", ["refused", "invalid"])
async def test_a_first_address_failing_at_once_falls_over_at_once(
    kind: str, first: str, resolver: Resolver, raw_server: Any, refusing: Callable[[str], Address]
) -> None:
    server = raw_server(OK)
    # "refused": bound, not listening. "invalid": a link-local address without its interface,
    # which connect() rejects there and then (EINVAL), before any packet is sent.
    failing = refusing("::1") if first == "refused" else ("fe80::1", server.port)
    resolver.table[NAME] = [failing, ("127.0.0.1", server.port)]
    start = time.monotonic()
    stream = await _connect(kind, NAME, server.port, timeout=5.0)
    assert time.monotonic() - start < STAGGER  # no stagger after a failure
    assert stream.get_extra_info("server_addr") == ("127.0.0.1", server.port)
    await _close(stream)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", NATIVE)
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_slow_lookup_of_one_address_counts_against_the_connect_timeout(
    kind: str, resolver: Resolver, raw_server: Any
) -> None:
    server = raw_server(OK)
    resolver.table[NAME] = [("127.0.0.1", server.port)]
    resolver.delay = 0.3
    with pytest.raises(httpcore.ConnectTimeout, match="timed out"):
        await _connect(kind, NAME, server.port, timeout=0.2)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", NATIVE)
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_all_black_holes_time_out_within_the_connect_timeout(
    kind: str, resolver: Resolver, black_hole: BlackHoles
) -> None:
    resolver.table[NAME] = [black_hole("::1"), black_hole("127.0.0.1"), black_hole("::1")]
    before = fd_count()
    start = time.monotonic()
    with pytest.raises(httpcore.ConnectTimeout, match="timed out"):
        await _connect(kind, NAME, 0, timeout=0.6)
    assert 0.55 <= time.monotonic() - start < 1.2
    # No descriptor left over (servers of earlier tests may still be closing theirs), and no
    # attempt still open towards the holes.
    assert fd_count() <= before
    for _, port in resolver.table[NAME]:
        assert sockets_to(port, black_hole.sockets) == []


@pytest.mark.anyio
@pytest.mark.parametrize("kind", NATIVE)
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_name_lookup_counts_against_the_connect_timeout(
    kind: str, resolver: Resolver, black_hole: BlackHoles
) -> None:
    resolver.table[NAME] = [black_hole("::1"), black_hole("127.0.0.1")]
    resolver.delay = 0.3
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    start = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        with pytest.raises(httpcore.ConnectTimeout, match="timed out"):
            await _connect(kind, NAME, 0, timeout=0.5)
        tg.cancel_scope.cancel()
    assert 0.45 <= time.monotonic() - start < 0.9  # 0.5 in all, not 0.3 + 0.5
    if kind == "asyncio":
        assert ticks >= 10  # the lookup ran in a thread: the loop went on meanwhile


@pytest.mark.anyio
@pytest.mark.parametrize("kind", NATIVE)
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_all_refusing_raise_connect_error(
    kind: str, resolver: Resolver, refusing: Callable[[str], Address]
) -> None:
    resolver.table[NAME] = [refusing("::1"), refusing("127.0.0.1")]
    before = fd_count()
    start = time.monotonic()
    with pytest.raises(httpcore.ConnectError) as info:
        await _connect(kind, NAME, 0, timeout=5.0)
    assert time.monotonic() - start < 1.0
    assert "refused" in str(info.value).lower()
    assert fd_count() <= before


@pytest.mark.anyio
@pytest.mark.parametrize("kind", NATIVE)
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_local_address_picks_the_family(kind: str, dual: Any) -> None:
    # With an IPv4 local address the black-holed [::1] is not even tried: no stagger.
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    start = time.monotonic()
    stream = await _connect(
        kind, NAME, dual.port, timeout=5.0, local_address="127.0.0.1", socket_options=options
    )
    assert time.monotonic() - start < STAGGER
    sock = stream.get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
    assert stream.get_extra_info("client_addr")[0] == "127.0.0.1"
    await _close(stream)
    # With an IPv6 one, only [::1] is left, and it times out.
    with pytest.raises(httpcore.ConnectTimeout, match="timed out"):
        await _connect(kind, NAME, dual.port, timeout=0.3, local_address="::1")


@pytest.mark.anyio
@pytest.mark.parametrize("kind", NATIVE)
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_socket_options_on_every_attempt(kind: str, dual: Any) -> None:
    # A socket option that fails fails each attempt, not just the first.
    with pytest.raises(httpcore.ConnectError):
        await _connect(kind, NAME, dual.port, timeout=5.0, socket_options=[(-1, -1, 1)])


@pytest.mark.anyio
@pytest.mark.parametrize("kind", NATIVE)
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_address_whose_socket_refuses_an_option_is_skipped(
    kind: str, resolver: Resolver
) -> None:
    # IPV6_V6ONLY cannot be set on an IPv4 socket: that attempt fails, the IPv6 one goes on.
    listener = _listener("::1")
    listener.listen(5)
    try:
        port = listener.getsockname()[1]
        resolver.table[NAME] = [("127.0.0.1", port), ("::1", port)]
        options = [(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)]
        start = time.monotonic()
        stream = await _connect(kind, NAME, port, timeout=5.0, socket_options=options)
        assert time.monotonic() - start < STAGGER  # a failure starts the next one at once
        assert stream.get_extra_info("server_addr")[:2] == ("::1", port)
        await _close(stream)
    finally:
        listener.close()


# -- through the pool, sync / asyncio / trio --------------------------------------------------


@pytest.mark.anyio
async def test_pool_falls_over_to_the_second_address(
    api: helpers.API, dual: Any, resolver: Resolver
) -> None:
    if api.flavour == "trio":
        resolver.install_trio()
    async with api.ConnectionPool() as pool:
        start = time.monotonic()
        response = await pool.request(
            "GET", f"http://{NAME}:{dual.port}/", extensions={"timeout": {"connect": 5.0}}
        )
        assert time.monotonic() - start < 1.0
        assert response.status == 200
        assert response.content == b"ok"
    assert dual.connections == 1


# -- trio and anyio do it themselves ----------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("anyio_backend", "backend_name"),
    [("trio", "trio"), ("trio", "anyio"), ("asyncio", "anyio")],
)
async def test_trio_and_anyio_fall_over_too(
    anyio_backend: str, backend_name: str, dual: Any, resolver: Resolver, black_hole: BlackHoles
) -> None:
    if anyio_backend == "trio":
        resolver.install_trio()
    backend = TrioBackend() if backend_name == "trio" else AnyIOBackend()
    start = time.monotonic()
    stream = await backend.connect_tcp(NAME, dual.port, timeout=5.0)
    assert time.monotonic() - start < 1.0
    assert stream.get_extra_info("server_addr")[:2] == ("127.0.0.1", dual.port)
    await stream.aclose()
    # The connect timeout bounds the whole attempt there too, and the attempts are closed.
    # (anyio connects to the port asked for, not to the one resolved: one port for both.)
    hole, hole4 = black_hole.same_port()
    resolver.table[NAME] = [hole, hole4]
    before = fd_count()
    start = time.monotonic()
    with pytest.raises(httpcore.ConnectTimeout, match="timed out"):
        await backend.connect_tcp(NAME, hole[1], timeout=0.6)
    assert 0.55 <= time.monotonic() - start < 1.2
    # No descriptor left over (servers of earlier tests may still be closing theirs), and no
    # attempt still open towards the holes.
    assert fd_count() <= before
    assert sockets_to(hole[1], black_hole.sockets) == []
