"""The world of `test_http2_chaos.py`: the seeded scenarios (what each connection and stream
meets: replies, resets, GOAWAYs, SETTINGS changes, drops, garbage; `make_scenario`) and the
threaded h2 server on 127.0.0.1 that plays them and records what it did (`ChaosServer`).
"""

from __future__ import annotations

import collections
import dataclasses
import random
import select
import socket
import string
import struct
import threading
import time
from typing import (
    Any,
    Deque,
    Dict,
    List,
    Optional,
    Tuple,
)

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame

SEEDS = range(8)
#: Seeds of the "draining" profile (see `PROFILES`). Under asyncio, 27 tends to meet the
#: END_STREAM sent on a negative window (half of the runs; see
#: `test_no_data_frame_while_the_window_is_negative`), 9 and 28 a request waiting for a
#: stream slot that fails with `WriteError` (1 or 2 runs in 8; see
#: `test_a_request_waiting_for_a_stream_slot_is_refused_after_goaway`).
DRAINING_SEEDS = (9, 27, 28)
FLAVOURS = ["sync", "asyncio", "trio"]
#: Every request's timeouts: a hang shows as a timeout, which no server action here explains.
TIMEOUTS = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 10.0}
#: How long a whole scenario may take before it counts as hung.
SCENARIO_DEADLINE = 30.0
#: The first connections of a scenario get connection-level events; later ones are calm,
#: so that requests sent again elsewhere eventually meet a server that answers.
CHAOTIC_CONNECTIONS = 3
#: The server opens its connection window by this much beyond the initial 65 535 bytes.
CONNECTION_WINDOW = 2**18
#: A lingering close waits this long for the client to close its side.
LINGER = 20.0
CALM_PATH = "/calm"
CALM_BODY = b"calm and collected"

_MCS = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
_IWS = h2.settings.SettingCodes.INITIAL_WINDOW_SIZE
Headers = List[Tuple[bytes, bytes]]


# -- the plan -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Reply:
    """What the server does with the stream of one request."""

    status: int
    headers: Headers
    body: bytes
    frames: List[int]  # the sizes of the DATA frames of the body
    trailers: bool
    informational: bool  # a 103 before the response
    delay: int  # frames of other streams to send before this one starts
    early: bool  # start as soon as the HEADERS arrive, not once the request is complete
    reset_code: Optional[int]  # RST_STREAM with this code instead of (the rest of) the response
    reset_after: int  # how many steps of the response go out before that RST_STREAM
    reset_after_end: bool  # (early) the whole response, then RST_STREAM(NO_ERROR)

    def steps(self) -> List[Tuple[str, Any, bool]]:
        """The frames to send, as (kind, payload, END_STREAM)."""
        steps: List[Tuple[str, Any, bool]] = []
        if self.informational:
            steps.append(
                ("headers", [(b":status", b"103"), (b"link", b"</a.css>; rel=preload")], False)
            )
        head = [(b":status", str(self.status).encode()), *self.headers]
        view = memoryview(self.body)
        offset = 0
        data: List[Tuple[str, Any, bool]] = []
        for size in self.frames:
            data.append(("data", bytes(view[offset : offset + size]), False))
            offset += size
        steps.append(("headers", head, not data and not self.trailers))
        steps += data
        if data and not self.trailers:
            kind, payload, _ = data[-1]
            steps[-1] = (kind, payload, True)
        if self.trailers:
            steps.append(("headers", [(b"x-trailer", b"done")], True))
        if self.reset_code is not None:
            # Never after the last frame, which ends the stream.
            cut = min(self.reset_after, len(steps) - 1)
            steps = [*steps[:cut], ("reset", self.reset_code, False)]
        elif self.reset_after_end:
            steps.append(("reset", 0, False))
        return steps


@dataclasses.dataclass
class Exchange:
    index: int
    path: str
    method: bytes
    body: Optional[bytes]
    iterated: bool  # the body comes from an iterator (not replayable)
    chunk_size: int
    # "read"; "partial" (streamed, closed after a few chunks); "cancel" (async only; sync
    # reads); "timeout" (a read timeout of a few milliseconds)
    mode: str
    chunks_to_read: int
    cancel_after: int  # checkpoints before the cancellation ("timeout": the timeout in 10 µs)
    reply: Reply


@dataclasses.dataclass
class ConnectionPlan:
    max_streams: int
    window: int
    events: List[Tuple[int, str]]  # (tick, action), by tick


@dataclasses.dataclass
class Scenario:
    seed: int
    exchanges: List[Exchange]
    connections: List[ConnectionPlan]


CALM_PLAN = ConnectionPlan(max_streams=100, window=65535, events=[])
CALM_REPLY = Reply(200, [], CALM_BODY, [len(CALM_BODY)], False, False, 0, False, None, 0, False)

# NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, STREAM_CLOSED, REFUSED_STREAM, CANCEL,
# ENHANCE_YOUR_CALM, HTTP_1_1_REQUIRED.
RESET_CODES = [0, 1, 2, 5, 7, 8, 11, 13]
#: The connection-level events of a profile, with their weights: "mixed", everything;
#: "draining", mostly what a server that means well does (few streams at a time, SETTINGS
#: changes, graceful GOAWAYs), with more events on the first connection.
PROFILES = {
    "mixed": {
        "ping": 4,
        "settings-streams": 3,
        "settings-window": 3,
        "goaway": 4,
        "goaway-error": 2,
        "drop": 2,
        "drop-mid-frame": 2,
        "garbage": 2,
    },
    "draining": {"ping": 5, "settings-streams": 3, "settings-window": 3, "goaway": 6, "drop": 1},
}


def _weighted(rng: random.Random, table: Dict[str, int]) -> str:
    return rng.choices(list(table), weights=list(table.values()))[0]


def _frames(rng: random.Random, size: int) -> List[int]:
    if not size:
        return []
    style = rng.random()
    if style < 0.5:
        piece = 16384
    elif style < 0.8:
        piece = rng.randint(1, 16384)
    else:  # many small frames (at most ~60)
        piece = max(size // 60 + 1, rng.randint(1, 500))
    frames = [piece] * (size // piece)
    if size % piece:
        frames.append(size % piece)
    return frames


def _make_reply(rng: random.Random, seed: int, index: int, has_body: bool) -> Reply:
    status = rng.choice([200] * 6 + [201, 404, 500, 503])
    size = rng.choice(
        [0]
        + [rng.randint(1, 200)] * 3
        + [rng.randint(200, 20_000)] * 4
        + [rng.randint(20_000, 100_000)] * 2
    )
    body = random.Random(f"h2-chaos-{seed}-reply-{index}").randbytes(size)
    headers = [(b"x-chaos", str(index).encode())]
    if rng.random() < 0.5:
        headers.append((b"content-length", str(size).encode()))
    if rng.random() < 0.05:
        # Bigger than a frame once HPACK-encoded: HEADERS + CONTINUATION.
        letters = string.ascii_letters + string.digits
        headers.append((b"x-big", "".join(rng.choices(letters, k=30_000)).encode()))
    frames = _frames(rng, size)
    trailers = rng.random() < 0.15
    informational = rng.random() < 0.1
    delay = 0 if rng.random() < 0.7 else rng.randint(1, 40)
    early = has_body and rng.random() < 0.2
    reset_code: Optional[int] = None
    reset_after = 0
    if rng.random() < 0.15:
        reset_code = rng.choice(RESET_CODES)
        steps = 1 + len(frames) + trailers + informational
        reset_after = 0 if rng.random() < 0.5 else rng.randint(1, max(1, steps - 1))
    reset_after_end = early and reset_code is None and rng.random() < 0.5
    return Reply(
        status,
        headers,
        body,
        frames,
        trailers,
        informational,
        delay,
        early,
        reset_code,
        reset_after,
        reset_after_end,
    )


def make_scenario(seed: int, profile: str = "mixed") -> Scenario:
    rng = random.Random(f"h2-chaos-{seed}" if profile == "mixed" else f"h2-chaos-{profile}-{seed}")
    count = rng.randint(20, 60)
    exchanges = []
    for index in range(count):
        method = rng.choice([b"GET"] * 5 + [b"POST"] * 4 + [b"PUT"])
        body: Optional[bytes] = None
        iterated = False
        if method != b"GET":
            size = rng.choice(
                [0]
                + [rng.randint(1, 1000)] * 3
                + [rng.randint(1000, 70_000)] * 3
                + [rng.randint(70_000, 200_000)]
            )
            body = random.Random(f"h2-chaos-{seed}-request-{index}").randbytes(size)
            iterated = rng.random() < 0.25
        mode = rng.choice(["read"] * 13 + ["partial"] * 3 + ["cancel"] * 3 + ["timeout"])
        exchanges.append(
            Exchange(
                index=index,
                path=f"/s{seed}/{index}",
                method=method,
                body=body,
                iterated=iterated,
                chunk_size=rng.randint(1000, 70_000),
                mode=mode,
                chunks_to_read=rng.randint(1, 3),
                cancel_after=rng.randint(0, 300),
                reply=_make_reply(rng, seed, index, body is not None),
            )
        )
    connections = []
    actions = PROFILES[profile]
    draining = profile == "draining"
    for number in range(CHAOTIC_CONNECTIONS):
        if number == 0:
            how_many = rng.randint(3, 7) if draining else rng.randint(1, 4)
        else:
            how_many = rng.randint(0, 3 - number)
        events = sorted(
            (rng.randint(1, count + 10), _weighted(rng, actions)) for _ in range(how_many)
        )
        streams = [16, 4, 2, 1] if draining else [100, 100, 100, 16, 4, 1]
        connections.append(
            ConnectionPlan(
                max_streams=rng.choice(streams),
                window=rng.choice([65535, 65535, 65535, 16384, 300_000]),
                events=events,
            )
        )
    return Scenario(seed, exchanges, connections)


# -- the server ---------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class StreamRecord:
    """What the server did with one stream (`seq` numbers order the events of a server)."""

    stream_id: int
    index: Optional[int]  # the exchange (None: the calm path)
    ignored: bool = False  # above the last stream id of a GOAWAY: never answered
    request_ended: bool = False
    body_ok: Optional[bool] = None
    started: bool = False  # the server sent something on it
    complete: Optional[int] = None  # when the response's END_STREAM went out
    reset: Optional[Tuple[int, int]] = None  # (when, code) of a RST_STREAM sent
    client_reset: bool = False

    def finished(self) -> bool:
        answered = self.complete is not None or self.reset is not None or self.client_reset
        return answered and (self.request_ended or self.reset is not None or self.client_reset)


@dataclasses.dataclass(eq=False)
class ConnectionRecord:
    number: int
    streams: Dict[int, StreamRecord] = dataclasses.field(default_factory=dict)
    goaway: Optional[Tuple[int, int, int]] = None  # the last: (when, last stream id, error code)
    goaways: List[Tuple[int, int, int]] = dataclasses.field(default_factory=list)  # all of them
    fatal: Optional[Tuple[int, str]] = None  # (when, what): the server broke the connection
    actions: List[str] = dataclasses.field(default_factory=list)
    ended_by: Optional[str] = None
    ended: threading.Event = dataclasses.field(default_factory=threading.Event)
    closed: threading.Event = dataclasses.field(default_factory=threading.Event)  # sent FIN/RST

    def summary(self) -> str:
        return (
            f"conn {self.number}: actions={self.actions} goaways={self.goaways} "
            f"fatal={self.fatal} ended_by={self.ended_by}"
        )


class _End(Exception):
    """The connection is over (`how`)."""

    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


class ChaosServer:
    """A threaded h2c (prior knowledge) server on 127.0.0.1 following a `Scenario`."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.exchanges = {exchange.path: exchange for exchange in scenario.exchanges}
        self.calm = False  # no more connection-level events (set by the test)
        self.records: List[ConnectionRecord] = []
        self.errors: List[BaseException] = []  # bugs of this server
        self.client_errors: List[str] = []  # what the client sent wrong
        self._lock = threading.Lock()
        self._seq = 0
        self._open: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self._closed = False
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepter.start()

    def seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def close(self) -> None:
        self._closed = True
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            pass
        self._accepter.join(5)
        self._sock.close()
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for thread in self._threads:
            thread.join(5)

    def wait_all_ended(self, timeout: float) -> List[ConnectionRecord]:
        """The connections still open after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        for record in list(self.records):
            record.ended.wait(max(0.0, deadline - time.monotonic()))
        return [record for record in self.records if not record.ended.is_set()]

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self._sock.accept()
            except OSError:  # pragma: no cover
                return
            if self._closed:
                sock.close()
                return
            number = len(self.records) + 1
            record = ConnectionRecord(number)
            self.records.append(record)
            with self._lock:
                self._open.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock, record), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket, record: ConnectionRecord) -> None:
        number = record.number
        if self.calm or number > len(self.scenario.connections):
            plan = CALM_PLAN
        else:
            plan = self.scenario.connections[number - 1]
        try:
            _ServerConnection(self, sock, record, plan).run()
        except BaseException as exc:  # pragma: no cover - a bug in this server
            self.errors.append(exc)
        finally:
            with self._lock:
                if sock in self._open:
                    self._open.remove(sock)
            sock.close()
            record.closed.set()
            record.ended.set()


@dataclasses.dataclass(eq=False)
class _ServerStream:
    record: StreamRecord
    reply: Optional[Reply]  # None: ignored
    expected_body: bytes
    body: bytearray = dataclasses.field(default_factory=bytearray)
    steps: Deque[Tuple[str, Any, bool]] = dataclasses.field(default_factory=collections.deque)
    activated: bool = False
    delay: int = 0


class _ServerConnection:
    def __init__(
        self,
        server: ChaosServer,
        sock: socket.socket,
        record: ConnectionRecord,
        plan: ConnectionPlan,
    ) -> None:
        self.server = server
        self.sock = sock
        self.record = record
        self.plan = plan
        self.rng = random.Random(f"h2-chaos-{server.scenario.seed}-frames-{record.number}")
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.streams: Dict[int, _ServerStream] = {}
        self.events: Deque[Tuple[int, str]] = collections.deque(plan.events)
        self.ticks = 0
        self.max_started = 0  # the highest stream the server sent something on
        # SETTINGS changes not sent yet: one SETTINGS frame at a time is unacknowledged, as
        # h2 applies every pending value on the first acknowledgement, whichever frame it
        # acknowledges (the preface's SETTINGS is unacknowledged at first).
        self.settings_waiting: Deque[Dict[Any, int]] = collections.deque()
        self.settings_unacknowledged = True

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        self.sock.settimeout(LINGER)
        try:
            self.h2.local_settings = h2.settings.Settings(
                client=False, initial_values={_MCS: self.plan.max_streams}
            )
            self.h2.initiate_connection()
            self.h2.increment_flow_control_window(CONNECTION_WINDOW)
            if self.plan.window != 65535:
                # In a SETTINGS frame of its own: h2 applies it to what it receives once the
                # client acknowledged it, as it should. (In the preface h2 would apply it at
                # once, while the client may send under the default until it sees it.)
                self.change_settings({_IWS: self.plan.window})
            self.flush()
            while True:
                stream = self.pick()
                if stream is None or select.select([self.sock], [], [], 0)[0]:
                    self.receive()
                    stream = self.pick()
                if stream is not None:
                    self.step(stream)
                self.maybe_finish()
        except _End as end:
            self.record.ended_by = end.how

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.send(data)

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise _End(f"send failed: {exc!r}") from None

    def receive(self) -> None:
        try:
            data = self.sock.recv(65536)
        except OSError as exc:
            raise _End(f"client reset: {exc!r}") from None
        if not data:
            raise _End("client closed")
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.server.client_errors.append(f"conn {self.record.number}: {exc!r}")
            self.record.fatal = (self.server.seq(), "client protocol error")
            raise _End("client protocol error") from None
        for event in events:
            self.on_event(event)
        self.flush()

    def on_event(self, event: Any) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self.on_request(event)
        elif isinstance(event, h2.events.DataReceived):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.body += event.data
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.record.request_ended = True
                if not stream.record.ignored:
                    ok = bytes(stream.body) == stream.expected_body
                    stream.record.body_ok = ok
                    if not ok:
                        self.server.client_errors.append(
                            f"conn {self.record.number} stream {event.stream_id}: request body of "
                            f"{len(stream.body)} bytes, expected {len(stream.expected_body)}"
                        )
                    self.activate(stream)
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.record.client_reset = True
                stream.steps.clear()
        elif isinstance(event, h2.events.PingAckReceived):
            self.record.actions.append("ping acknowledged")
        elif isinstance(event, h2.events.SettingsAcknowledged):
            self.reopen_windows()
            self.settings_unacknowledged = False
            if self.settings_waiting:
                self.change_settings(self.settings_waiting.popleft())

    def h2_closed(self) -> bool:
        """Whether h2's side is closed (by the client's GOAWAY, say): h2 then refuses every
        call, so the server has nothing more to do on this connection."""
        return bool(self.h2.state_machine.state is h2.connection.ConnectionState.CLOSED)

    def change_settings(self, settings: Dict[Any, int]) -> None:
        if self.h2_closed():
            return
        if self.settings_unacknowledged:
            self.settings_waiting.append(settings)
        else:
            self.h2.update_settings(settings)
            self.settings_unacknowledged = True

    def reopen_windows(self) -> None:
        """Once a lower INITIAL_WINDOW_SIZE applies, open the windows of the open streams up
        to it again. (h2 only reopens a window as it acknowledges data: a stream whose
        window the change made negative would get nothing, and wait for ever.)"""
        if self.h2_closed():
            return
        target = self.h2.local_settings.initial_window_size
        for stream_id, stream in self.streams.items():
            if stream.record.request_ended or stream.record.client_reset:
                continue
            h2_stream = self.h2.streams.get(stream_id)
            if h2_stream is None or h2_stream.closed:
                continue
            window = h2_stream.inbound_flow_control_window
            if window < target:
                self.h2.increment_flow_control_window(target - window, stream_id=stream_id)

    def on_request(self, event: Any) -> None:
        headers = dict(event.headers)
        path = headers[b":path"].decode()
        exchange = self.server.exchanges.get(path)
        reply = exchange.reply if exchange is not None else CALM_REPLY
        if exchange is not None:
            assert headers[b":method"] == exchange.method, headers
            assert headers.get(b"x-chaos") == str(exchange.index).encode(), headers
        index = exchange.index if exchange is not None else None
        record = StreamRecord(event.stream_id, index)
        self.record.streams[event.stream_id] = record
        expected = (exchange.body or b"") if exchange is not None else b""
        stream = _ServerStream(record, reply, expected)
        self.streams[event.stream_id] = stream
        goaway = self.record.goaway
        if goaway is not None and event.stream_id > goaway[1]:
            record.ignored = True
        elif reply.early:
            self.activate(stream)
        self.tick()

    def activate(self, stream: _ServerStream) -> None:
        if stream.activated or stream.record.ignored or stream.record.client_reset:
            return
        assert stream.reply is not None
        stream.activated = True
        stream.steps.extend(stream.reply.steps())
        stream.delay = stream.reply.delay

    # -- sending responses --------------------------------------------------------------------

    def can_send(self, stream: _ServerStream) -> bool:
        if not stream.steps:
            return False
        if stream.steps[0][0] != "data":
            return True
        try:
            return bool(self.h2.local_flow_control_window(stream.record.stream_id) > 0)
        except h2.exceptions.ProtocolError:
            return True  # the step finds out

    def pick(self) -> Optional[_ServerStream]:
        """The next stream to send a frame of: one not delayed, or else the least delayed
        (frames of other streams are what a delay waits for: with none, it is over)."""
        candidates = [s for s in self.streams.values() if self.can_send(s)]
        if not candidates:
            return None
        ready = [s for s in candidates if s.delay <= 0]
        if ready:
            chosen = self.rng.choice(ready)
            for other in candidates:
                if other is not chosen and other.delay > 0:
                    other.delay -= 1
            return chosen
        chosen = min(candidates, key=lambda s: s.delay)
        chosen.delay = 0
        return chosen

    def queue_step(self, stream: _ServerStream) -> Optional[Tuple[str, Any, bool]]:
        """Queue the stream's next frame with h2 (not sent yet). None if the stream is gone."""
        stream_id = stream.record.stream_id
        kind, payload, end = stream.steps.popleft()
        try:
            if kind == "headers":
                self.h2.send_headers(stream_id, payload, end_stream=end)
            elif kind == "data":
                room = min(
                    len(payload),
                    self.h2.local_flow_control_window(stream_id),
                    self.h2.max_outbound_frame_size,
                )
                if room < len(payload):
                    stream.steps.appendleft((kind, payload[room:], end))
                    payload, end = payload[:room], False
                self.h2.send_data(stream_id, payload, end_stream=end)
            else:
                self.h2.reset_stream(stream_id, error_code=payload)
        except h2.exceptions.ProtocolError:
            # Closed meanwhile: reset by the client, or (a NO_ERROR reset after an early
            # response) the request ended too.
            stream.steps.clear()
            return None
        stream.record.started = True
        self.max_started = max(self.max_started, stream_id)
        return kind, payload, end

    def step(self, stream: _ServerStream) -> None:
        queued = self.queue_step(stream)
        self.flush()
        if queued is not None:
            kind, payload, end = queued
            if end:
                stream.record.complete = self.server.seq()
            elif kind == "reset":
                stream.record.reset = (self.server.seq(), payload)
        self.tick()

    # -- connection-level events --------------------------------------------------------------

    def tick(self) -> None:
        self.ticks += 1
        while self.events and self.events[0][0] <= self.ticks:
            _, action = self.events.popleft()
            if not self.server.calm:
                self.act(action)

    def last_stream_id(self) -> int:
        """A last-stream-id for a GOAWAY: not below a stream the server answered (partly)."""
        received = [sid for sid, s in self.streams.items() if not s.record.ignored]
        candidates = [sid for sid in received if sid >= self.max_started]
        if self.max_started == 0:
            candidates.append(0)
        return self.rng.choice(candidates) if candidates else self.max_started

    def act(self, action: str) -> None:
        if self.h2_closed():
            return
        rng = self.rng
        self.record.actions.append(action)
        if action == "ping":
            self.h2.ping(rng.randbytes(8))
            self.flush()
        elif action == "settings-streams":
            self.change_settings({_MCS: rng.choice([1, 2, 3, 8])})
            self.flush()
        elif action == "settings-window":
            self.change_settings({_IWS: rng.choice([1024, 8192, 65535, 200_000])})
            self.flush()
        elif action == "goaway":
            if self.record.goaway is not None:
                return
            last = self.last_stream_id()
            self.flush()
            self.record.goaway = (self.server.seq(), last, 0)
            self.record.goaways.append(self.record.goaway)
            self.send(hyperframe.frame.GoAwayFrame(stream_id=0, last_stream_id=last).serialize())
            for stream_id, stream in self.streams.items():
                if stream_id > last:
                    stream.record.ignored = True
                    stream.steps.clear()
        elif action == "goaway-error":
            last = self.record.goaway[1] if self.record.goaway else self.last_stream_id()
            code = rng.choice([1, 2, 11])
            self.flush()
            when = self.server.seq()
            self.record.goaway = (when, last, code)
            self.record.goaways.append(self.record.goaway)
            self.record.fatal = (when, action)
            for stream_id, stream in self.streams.items():
                if stream_id > last:
                    stream.record.ignored = True
            frame = hyperframe.frame.GoAwayFrame(stream_id=0, last_stream_id=last, error_code=code)
            self.send(frame.serialize())
            self.linger()
        elif action in ("drop", "drop-mid-frame", "drop-fin"):
            # ("drop-fin", only in a regression test: a FIN, never a reset.)
            self.record.fatal = (self.server.seq(), action)
            if action == "drop-mid-frame":
                started = [s for s in self.streams.values() if s.steps]
                if started:
                    self.queue_step(rng.choice(started))
                else:
                    self.h2.ping(b"12345678")
                data = self.h2.data_to_send()
                self.send(data[: rng.randint(1, len(data) - 1)] if len(data) > 1 else data)
            if action == "drop-fin":
                self.linger()  # FIN, without losing anything to a reset
            if rng.random() < 0.5:  # a reset rather than a FIN
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raise _End(action)
        elif action == "garbage":
            if rng.random() < 0.5:
                self.flush()
            self.record.fatal = (self.server.seq(), action)
            self.send(self.garbage())
            self.linger()

    def garbage(self) -> bytes:
        rng = self.rng
        style = rng.randrange(4)
        if style == 0:  # DATA on stream 0
            payload = rng.randbytes(rng.randint(0, 40))
            return struct.pack(">I", len(payload))[1:] + b"\x00\x00\x00\x00\x00\x00" + payload
        if style == 1:  # WINDOW_UPDATE of 0 on the connection
            return b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        if style == 2:  # part of a frame header, then noise
            return b"\x00\x00" + rng.randbytes(rng.randint(1, 64))
        return rng.randbytes(rng.randint(1, 64))

    def linger(self) -> None:
        """Stop sending and read until the client closes (so that nothing sent is lost to a
        TCP reset), then end."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.record.closed.set()
            while self.sock.recv(65536):
                pass
        except socket.timeout:
            raise _End("lingered in vain: the client never closed") from None
        except OSError as exc:
            raise _End(f"lingered, client reset: {exc!r}") from None
        raise _End("lingered, client closed")

    def maybe_finish(self) -> None:
        """After a graceful GOAWAY: once every stream it accepted is done, close."""
        if self.record.goaway is None:
            return
        for stream in self.streams.values():
            if not stream.record.ignored and not stream.record.finished():
                return
        self.flush()
        self.linger()
