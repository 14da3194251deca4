"""The world of tests/test_http3_cancellation.py: an HTTP/3 server that stalls exactly where a
case asks and records what the client does to each request stream, the ways of cancelling a
request, and the leak watch.

The server runs aioquic's `QuicConnection` and `H3Connection` in the shared background loop
(`tests/servers/loop.py`). A request goes to the *plan* routed to the longest prefix of its
path (`CancelServer.route`) once its HEADERS arrived (its body may be on its way); a plan
answers through its `Exchange`, later, partly or never, and may *mute* the connection (nothing
sent, not even ACKs, until `unmute()`). Each `Exchange` keeps the body bytes received and the
client's STOP_SENDING and RESET_STREAM codes. Server options: `max_streams` (QUIC's
initial_max_streams_bidi, raised as streams end, as aioquic does), `window` (each request
stream's receive window, never raised: no MAX_STREAM_DATA), `idle_timeout` (the client takes
the smaller), `ignore_first` (every datagram of the first client is dropped; `first_seen` set).

The ways of cancelling (`CANCELLERS`, from `cancellers.py`) run a request that would block
forever, cancel it once `reached()` holds, and check it ended by that cancellation.
Synchronisation is by events and bounded polling; the one fixed deadline, `asyncio.wait_for`'s,
is far longer than reaching the point takes, and checked to be reached before it (if not, on a
busy machine, the case is run again with a longer one: `TooEarly`).
"""

from __future__ import annotations

import re
import sys
import threading
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional

import helpers
import pytest
from aioquic.h3.connection import H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, StopSendingReceived, StreamReset
from aioquic.quic.packet import QuicHeader
from cancellers import ASYNC_STYLES, cancellers
from quic_server_base import Address, LoopRunner, QuicPeer, QuicServer

Plan = Callable[["Exchange"], None]
#: asyncio.wait_for's deadlines, one per try (see `cancellers.by_wait_for`).
WAIT_FOR_DEADLINES = (0.15, 0.6, 2.4)


class Peer(QuicPeer):
    """One client connection."""

    def __init__(self, quic: QuicConnection, address: Address, number: int) -> None:
        super().__init__(quic, address, number)
        self.h3 = H3Connection(quic)
        self.dead = False  # the server forgot it: nothing is received or sent any more
        self.muted = False  # nothing is sent (not even ACKs) until `CancelServer.unmute()`
        self.heard_muted = 0  # datagrams received while muted
        self.close_seen = False  # the connection's end is in `CancelServer.closes`
        self.exchanges: Dict[int, Exchange] = {}


class Exchange:
    """One request stream as the server sees it (what a plan answers with)."""

    def __init__(self, server: CancelServer, peer: Peer, stream_id: int, path: str) -> None:
        self.server = server
        self.peer = peer
        self.stream_id = stream_id
        self.path = path
        self.received = 0  # request body bytes
        self.stop_code: Optional[int] = None  # the client's STOP_SENDING
        self.reset_code: Optional[int] = None  # the client's RESET_STREAM
        self.arrived = threading.Event()  # set once the plan has run
        self.mute_at: Optional[int] = None  # mute the connection once this much body came

    def head(self, length: Optional[int] = None) -> None:
        fields = [(b":status", b"200")]
        if length is not None:
            fields.append((b"content-length", b"%d" % length))
        if self.stop_code is None:
            self.peer.h3.send_headers(self.stream_id, fields)

    def data(self, data: bytes, end: bool = False) -> None:
        if self.stop_code is None:  # aioquic refuses data on a stream the client stopped
            self.peer.h3.send_data(self.stream_id, data, end_stream=end)

    def answer(self, body: bytes) -> None:
        self.head(len(body))
        self.data(body, end=True)

    def flush(self) -> None:
        self.server.transmit(self.peer)

    def close_connection(self, code: int, reason: str = "") -> None:
        self.server.transmit(self.peer)
        self.peer.quic.close(error_code=code, reason_phrase=reason)
        self.server.transmit(self.peer)

    def mute(self) -> None:
        """From now on send nothing (not even ACKs) until unmuted: no datagram reaches the
        client while it waits. (What a plan wrote before, it flushes first.)"""
        self.peer.muted = True
        self.peer.heard_muted = 0

    def quiet(self) -> bool:
        """Muted, and the client has spoken since (an ACK of what it was sent last, or its loss
        recovery's probe, sent after a read that found nothing): it has taken in all the
        server sent before, and nothing more comes."""
        return self.peer.muted and self.peer.heard_muted > 0

    def play_dead(self) -> None:
        """The server forgets the connection: it answers nothing more, not even ACKs."""
        self.server.transmit(self.peer)
        self.peer.dead = True
        if self.peer.timer is not None:
            self.peer.timer.cancel()

    def __repr__(self) -> str:
        return (
            f"<Exchange {self.path} stream {self.stream_id} of connection {self.peer.number}: "
            f"stop={self.stop_code} reset={self.reset_code} received={self.received}>"
        )


class CancelServer(QuicServer[Peer]):
    """The server (module docstring). `errors` keeps what went wrong on its side."""

    def __init__(
        self,
        bg: LoopRunner,
        certfile: str,
        max_streams: Optional[int] = None,
        window: Optional[int] = None,
        idle_timeout: Optional[float] = None,
        ignore_first: bool = False,
    ) -> None:
        super().__init__(bg, certfile)
        if window is not None:
            self._config.max_stream_data = window
        if idle_timeout is not None:
            self._config.idle_timeout = idle_timeout
        self._max_streams = max_streams
        self._window = window
        self._ignore_first = ignore_first
        self._ignored: Optional[bytes] = None  # the connection id the first client chose
        self._plans: Dict[str, Plan] = {"/": answer}
        self.first_seen = threading.Event()
        self.exchanges: List[Exchange] = []
        self.closes: List[int] = []  # the error codes of the connections that ended
        self.start()

    def route(self, prefix: str, plan: Plan) -> str:
        """Requests whose path starts with `prefix` go to `plan`. Returns the URL of `prefix`."""
        self._plans[prefix] = plan
        return self.url + prefix

    def exchange(self, path: str) -> Exchange:
        found = [e for e in self.exchanges if e.path == path]
        assert len(found) == 1, (path, self.exchanges)
        return found[0]

    def arrived(self, path: str) -> bool:
        return any(e.path == path and e.arrived.is_set() for e in list(self.exchanges))

    def quiet(self, path: str) -> bool:
        """`path` came, and its connection is quiet (`Exchange.quiet`)."""
        return self.arrived(path) and self.exchange(path).quiet()

    def unmute(self) -> None:
        def unmute() -> None:
            for peer in self._peers.values():
                peer.muted = False

        self.call(unmute)

    def nudge(self, path: str) -> None:
        """A PING to the client of `path`'s connection, muted or not: when this returns, the
        datagram waits in the client's socket (loopback delivers at once)."""
        peer = self.exchange(path).peer

        def ping() -> None:
            peer.quic.send_ping(0)
            muted, peer.muted = peer.muted, False
            self.transmit(peer)
            peer.muted = muted

        self.call(ping)

    def call(self, function: Callable[[], None]) -> None:
        """Run `function` in the server's loop (from a test), then send what it wrote."""

        async def run() -> None:
            function()
            for peer in list(self._peers.values()):
                self.transmit(peer)

        self._bg.run(run())

    # -- receiving ---------------------------------------------------------------------------

    def admit(self, header: QuicHeader) -> bool:
        if self._ignore_first and self._ignored in (None, header.destination_cid):
            self._ignored = header.destination_cid  # never answered: its Initials keep it
            self.first_seen.set()
            return False
        return True

    def new_quic(self, header: QuicHeader) -> QuicConnection:
        quic = super().new_quic(header)
        if self._max_streams is not None:
            limit = quic._local_max_streams_bidi
            limit.value = limit.sent = self._max_streams
        if self._window is not None:
            # No MAX_STREAM_DATA: the client may send `window` bytes per stream, no more.
            quic._write_stream_limits = lambda *args, **kwargs: None  # type: ignore[method-assign]
        return quic

    def new_peer(self, quic: QuicConnection, address: Address, number: int) -> Peer:
        return Peer(quic, address, number)

    def alive(self, peer: Peer) -> bool:
        return not peer.dead

    def may_send(self, peer: Peer) -> bool:
        return not (peer.dead or peer.muted)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        peer = self._peers.get(addr)
        if peer is not None and peer.muted and not peer.dead:
            peer.heard_muted += 1
        super().datagram_received(data, addr)

    def handle_events(self, peer: Peer) -> None:
        closing = getattr(peer.quic, "_close_event", None)  # known before the draining ends
        if closing is not None and not peer.close_seen:
            peer.close_seen = True
            self.closes.append(closing.error_code)
        try:
            self._events(peer)
        except Exception as exc:  # pragma: no cover - reported by the tests
            self.errors.append(exc)

    def _events(self, peer: Peer) -> None:
        while True:
            event = peer.quic.next_event()
            if event is None:
                return
            exchange = peer.exchanges.get(getattr(event, "stream_id", -1))
            if isinstance(event, ConnectionTerminated) and not peer.close_seen:
                peer.close_seen = True
                self.closes.append(event.error_code)
            elif isinstance(event, StopSendingReceived) and exchange is not None:
                exchange.stop_code = event.error_code
            elif isinstance(event, StreamReset) and exchange is not None:
                exchange.reset_code = event.error_code
            for h3_event in peer.h3.handle_event(event):
                if isinstance(h3_event, HeadersReceived) and h3_event.stream_id % 4 == 0:
                    path = dict(h3_event.headers)[b":path"].decode()
                    exchange = Exchange(self, peer, h3_event.stream_id, path)
                    peer.exchanges[h3_event.stream_id] = exchange
                    self.exchanges.append(exchange)
                    prefix = max((p for p in self._plans if path.startswith(p)), key=len)
                    self._plans[prefix](exchange)
                    exchange.arrived.set()
                elif isinstance(h3_event, DataReceived):
                    exchange = peer.exchanges.get(h3_event.stream_id)
                    if exchange is not None:
                        exchange.received += len(h3_event.data)
                        if exchange.mute_at is not None and exchange.received >= exchange.mute_at:
                            exchange.mute()


# -- plans ------------------------------------------------------------------------------------


def answer(exchange: Exchange) -> None:
    """200, the body saying the path."""
    exchange.answer(exchange.path.encode())


def silent(exchange: Exchange) -> None:
    """The request is read and never answered."""


def first_bytes(exchange: Exchange) -> None:
    """The head of a 100-byte response and its first 10 bytes, then nothing."""
    exchange.head(100)
    exchange.data(b"x" * 10)
    exchange.flush()


class Gather:
    """A plan holding its requests until `count` have come, then `release(exchanges)` (in
    arrival order); later requests (a retry on another connection) go to `late`."""

    def __init__(
        self, count: int, release: Callable[[List[Exchange]], None], late: Plan = answer
    ) -> None:
        self.count = count
        self.release = release
        self.late = late
        self.held: List[Exchange] = []
        self.released = threading.Event()

    def __call__(self, exchange: Exchange) -> None:
        if self.released.is_set():
            self.late(exchange)
            return
        self.held.append(exchange)
        if len(self.held) == self.count:
            self.release(list(self.held))
            self.released.set()


def muted(plan: Plan) -> Plan:
    """`plan`, then the connection falls silent, not even acknowledging the request
    (`Exchange.mute`)."""

    def run(exchange: Exchange) -> None:
        plan(exchange)
        exchange.mute()

    return run


def stalled_upload(window: int) -> Plan:
    """Never answered; the connection falls silent once `window` bytes of body came (with a
    server whose stream window is `window`, the most the client may send)."""

    def run(exchange: Exchange) -> None:
        exchange.mute_at = window

    return run


# -- what the client side uses ---------------------------------------------------------------


@pytest.fixture
def start_server(
    background_loop: LoopRunner, server_cert_file: str
) -> Iterator[Callable[..., CancelServer]]:
    servers: List[CancelServer] = []

    def start(**options: Any) -> CancelServer:
        server = CancelServer(background_loop, server_cert_file, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
    assert [e for server in servers for e in server.errors] == []


class Defect(AssertionError):
    """What the library does against its contract: a case that shows one is a strict xfail
    raising this, once every other check of the case has passed."""


class NoLeaks:
    """Around one case: no descriptor left open; no ResourceWarning. With `collect`, under
    `helpers.left_to_the_collector()` (what only the garbage collector would have closed);
    without (a full collection costs ~50 ms), the warnings raised as objects are freed.
    What is found goes to `defects`."""

    def __init__(self, defects: List[str], collect: bool) -> None:
        self.defects = defects
        self._watch: Any = (
            helpers.left_to_the_collector() if collect else warnings.catch_warnings(record=True)
        )

    def __enter__(self) -> NoLeaks:
        self.found = self._watch.__enter__()
        warnings.simplefilter("always", ResourceWarning)
        self.before = helpers.open_descriptors()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        left = sorted(helpers.open_descriptors() - self.before)
        self._watch.__exit__(*exc_info)
        if exc_info[0] is None:
            assert left == []
            self.defects.extend(
                str(f) if isinstance(f, str) else f"ResourceWarning: {f.message}"
                for f in self.found
                if isinstance(f, str) or issubclass(f.category, ResourceWarning)
            )


CANCELLERS = cancellers(WAIT_FOR_DEADLINES[0])
# (flavour, way): which ways apply under which flavour; the sync flavour's "way" is its timeout.
STYLES = [
    ("sync", "timeout"),
    *(
        style
        for style in ASYNC_STYLES
        if style != ("asyncio", "asyncio.timeout") or sys.version_info >= (3, 11)  # 3.11+
    ),
]
# The ways whose cases run under `helpers.left_to_the_collector()` (one per flavour; a full
# collection costs ~50 ms).
COLLECTED = [("sync", "timeout"), ("asyncio", "task.cancel"), ("trio", "trio.CancelScope")]


def assert_clean(client: Any) -> None:
    """No request left in the pool, no connection left ACTIVE."""
    if "Pool" in repr(client):
        assert re.search(r"Requests: 0 active, 0 queued \| Connections: 0 active", repr(client))
    connections = client.connections if "Pool" in repr(client) else [client]
    assert not [c for c in connections if ", ACTIVE," in c.info()], connections
