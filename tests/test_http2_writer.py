"""The HTTP/2 writer role (`http2/_writer.py`): when frames go out, and in how many writes.

Over a scripted async stream whose reads wait until the test feeds them, so each request
stays open while the next ones start. What the client wrote is checked write by write: which
frames (type, stream id) each single `write` carried. The last test, against the stalling h2
server of tests/h2servers.py: what a failed resumed write does to the requests waiting.
"""

from __future__ import annotations

import ssl
import types
from typing import Any, Callable, List, Optional, Tuple

import anyio
import hyperframe.frame
import pytest
from h2servers import H2Server
from test_http2 import ORIGIN, URL, FakeServer
from test_http2_servers import cancel_an_upload_behind_a_stall, stall_server

import httpcore
from httpcore.http2 import AsyncHTTP2Connection

pytestmark = pytest.mark.timeout(30)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


class ScriptedStream(httpcore.AsyncMockStream):
    """Reads wait for chunks the test feeds; every `write` is kept as one entry.

    With `stall_next_write` set, the next write never returns (the request writing it is
    then cancelled). With `hold_resume`, the first `resume_write` waits for `gate`, shielded
    as the real streams are, and advances `clock` by `resume_takes` seconds.
    """

    def __init__(
        self,
        chunks: List[bytes],
        resumable: bool = True,
        hold_resume: bool = False,
        clock: Optional[List[float]] = None,
        resume_takes: float = 0.0,
    ) -> None:
        super().__init__([])
        self.resumable_writes = resumable
        self.writes: List[bytes] = []
        self.resumed: List[bytes] = []
        self.resume_timeouts: List[Optional[float]] = []
        self.gate = anyio.Event()
        if not hold_resume:
            self.gate.set()
        self._pending = list(chunks)
        self._fed = anyio.Event()
        self.stall_next_write = False
        self.closed = False
        self._clock = clock
        self._resume_takes = resume_takes

    def feed(self, chunks: List[bytes]) -> None:
        self._pending.extend(chunks)
        self._fed.set()

    async def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        while not self._pending:
            if self.closed:
                raise httpcore.ReadError("closed")  # as a real stream's read ends then
            self._fed = anyio.Event()
            await self._fed.wait()
        return self._pending.pop(0)

    async def aclose(self) -> None:
        self.closed = True
        self._fed.set()

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self.writes.append(buffer)
        if self.stall_next_write:
            self.stall_next_write = False
            await anyio.sleep_forever()

    async def resume_write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self.resumed.append(buffer)
        self.resume_timeouts.append(timeout)
        with anyio.CancelScope(shield=True):
            if len(self.resumed) == 1:
                await self.gate.wait()
                if self._clock is not None:
                    self._clock[0] += self._resume_takes


def frames(buffer: bytes) -> List[Tuple[str, int]]:
    """The frames of one write, as (type, stream id); the connection preface is skipped."""
    if buffer.startswith(PREFACE):
        buffer = buffer[len(PREFACE) :]
    found = []
    while buffer:
        frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(buffer[:9]))
        found.append((type(frame).__name__, frame.stream_id))
        buffer = buffer[9 + length :]
    return found


def headers_by_write(stream: ScriptedStream) -> List[List[int]]:
    """For each write, the streams whose HEADERS it carried."""
    return [[sid for kind, sid in frames(w) if kind == "HeadersFrame"] for w in stream.writes]


def _connect(**kwargs: Any) -> Tuple[FakeServer, ScriptedStream]:
    """A server whose preface the client reads first, and the client's stream."""
    server = FakeServer()
    stream = ScriptedStream(server.chunks, **kwargs)
    server.chunks = []
    return server, stream


def _answer(server: FakeServer, stream: ScriptedStream, *stream_ids: int) -> None:
    for stream_id in stream_ids:
        server.respond(stream_id)
    stream.feed([b"".join(server.chunks)])
    server.chunks = []


async def _request(conn: AsyncHTTP2Connection, statuses: List[int]) -> None:
    response = await conn.request("GET", URL, extensions={"timeout": {"write": 5.0}})
    statuses.append(response.status)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("resumable", "grouped"),
    [
        # (Writes: the preface, request 1's HEADERS, the SETTINGS ack, then the rest.)
        # The first to flush lets the other run first: both HEADERS in one write.
        (True, [[], [1], [], [3, 5]]),
        # A stream that cannot finish a cancelled write gets no such pause (a cancellation
        # there would fail the connection): each request writes its own frames.
        (False, [[], [1], [], [3], [5]]),
    ],
)
async def test_requests_started_together_share_one_write(
    resumable: bool, grouped: List[List[int]]
) -> None:
    server, stream = _connect(resumable=resumable)
    statuses: List[int] = []
    async with AsyncHTTP2Connection(ORIGIN, stream) as conn:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_request, conn, statuses)
            await anyio.wait_all_tasks_blocked()  # stream 1 is open, waiting for its answer
            tg.start_soon(_request, conn, statuses)
            tg.start_soon(_request, conn, statuses)
            await anyio.wait_all_tasks_blocked()
            assert headers_by_write(stream) == grouped
            _answer(server, stream, 1, 3, 5)
    assert statuses == [200, 200, 200]


@pytest.mark.anyio
async def test_a_request_alone_on_its_connection_writes_at_once() -> None:
    """With no other stream open there is nobody to wait for: no pause before the write, so a
    cancellation already pending lands where the request waits for its answer, after its
    frames went out whole (by `write`, not finished later by `resume_write`)."""
    _server, stream = _connect()
    async with AsyncHTTP2Connection(ORIGIN, stream) as conn:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await conn.request("GET", URL)
        assert scope.cancelled_caught
        assert headers_by_write(stream) == [[], [1], []] and stream.resumed == []
        # Cancelled while waiting for the answer: the connection is fine.
        assert conn.is_available()


@pytest.mark.anyio
async def test_a_lone_request_is_not_delayed_by_one_starting_with_it() -> None:
    # Both start at once: the first to flush is alone and writes at once; the second, which
    # sees another stream open, pauses first (and finds nothing else to take along).
    server, stream = _connect()
    statuses: List[int] = []
    async with AsyncHTTP2Connection(ORIGIN, stream) as conn:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_request, conn, statuses)
            tg.start_soon(_request, conn, statuses)
            await anyio.wait_all_tasks_blocked()
            assert headers_by_write(stream) == [[], [1], [], [3]]
            _answer(server, stream, 1, 3)
    assert statuses == [200, 200]


@pytest.mark.anyio
async def test_no_goaway_is_written_into_another_request_s_write() -> None:
    """Request 3 is stalled in its write when request 5, reading, gets a frame h2 refuses:
    the connection fails without writing h2's GOAWAY, which would land in the middle of
    request 3's bytes."""
    server, stream = _connect()
    outcome: List[Any] = []
    async with AsyncHTTP2Connection(ORIGIN, stream) as conn:
        _answer(server, stream, 1)
        await _request(conn, [])
        stream.stall_next_write = True

        async def request() -> None:
            try:
                await conn.request("GET", URL)
            except httpcore.RemoteProtocolError as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(request)  # 3: stalls in its HEADERS
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(request)  # 5: queued behind it, then reads
            await anyio.wait_all_tasks_blocked()
            writes = len(stream.writes)
            stream.feed([hyperframe.frame.DataFrame(5, b"early").serialize()])
            await anyio.wait_all_tasks_blocked()
            assert [str(exc) for exc in outcome] == ["cannot receive data before headers"]
            assert len(stream.writes) == writes
            tg.cancel_scope.cancel()
    kinds = [kind for write in stream.writes for kind, _ in frames(write)]
    assert "GoAwayFrame" not in kinds


# -- a write resumed after a cancellation, and its deadline --------------------------------
#
# The cancelled request finishes the interrupted write, shielded, then what others queued
# meanwhile, round after round, until its write timeout has passed. The time a round takes
# comes from a fake clock (the module's `time`), so the deadline is exact without sleeping.


def _fake_clock(monkeypatch: pytest.MonkeyPatch, clock: List[float]) -> None:
    monkeypatch.setattr(
        "httpcore.http2._writer.time", types.SimpleNamespace(monotonic=lambda: clock[0])
    )


async def _cancel_a_write_and_queue_another(
    conn: AsyncHTTP2Connection, server: FakeServer, stream: ScriptedStream
) -> Tuple[List[Any], List[Any]]:
    """After request 1, request 3 stalls in its write and is cancelled; while it finishes that
    write, shielded, request 5 queues its frames; then the write comes back. What requests 3
    and 5 ended with."""
    first: List[Any] = []
    second: List[Any] = []

    async def request(outcome: List[Any], timeout: float) -> None:
        try:
            response = await conn.request("GET", URL, extensions={"timeout": {"write": timeout}})
            outcome.append(response.status)
        except Exception as exc:
            outcome.append(exc)

    scope = anyio.CancelScope()

    async def cancelled() -> None:
        with scope:
            await request(first, 1.0)
        if scope.cancelled_caught:
            first.append("cancelled")

    # (Request 1 reads the server's SETTINGS: until then a connection has one stream slot.)
    _answer(server, stream, 1)
    await request([], 5.0)
    stream.stall_next_write = True
    async with anyio.create_task_group() as tg:
        tg.start_soon(cancelled)
        await anyio.wait_all_tasks_blocked()
        assert not stream.stall_next_write  # stalled in its HEADERS
        scope.cancel()
        await anyio.wait_all_tasks_blocked()
        assert len(stream.resumed) == 1  # resuming, held by the gate
        tg.start_soon(request, second, 5.0)
        await anyio.wait_all_tasks_blocked()
        stream.gate.set()
        await anyio.wait_all_tasks_blocked()
        if conn.is_available():
            _answer(server, stream, 5)
    return first, second


@pytest.mark.anyio
async def test_a_resumed_write_goes_on_while_its_write_timeout_lasts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    _fake_clock(monkeypatch, clock)
    server, stream = _connect(hold_resume=True, clock=clock, resume_takes=0.25)
    async with AsyncHTTP2Connection(ORIGIN, stream) as conn:
        first, second = await _cancel_a_write_and_queue_another(conn, server, stream)
        # The first round took 0.25 s of the cancelled request's 1 s: a second round writes
        # the frames request 5 queued meanwhile, within the 0.75 s left.
        assert len(stream.resumed) == 2 and stream.resume_timeouts == [1.0, 0.75]
        assert [sid for kind, sid in frames(stream.resumed[1]) if kind == "HeadersFrame"] == [5]
        assert first == ["cancelled"] and second == [200]
        assert conn.is_available()


@pytest.mark.anyio
@pytest.mark.parametrize("took", [1.0, 1.5])
async def test_a_resumed_write_stops_when_its_write_timeout_has_passed(
    monkeypatch: pytest.MonkeyPatch, took: float
) -> None:
    clock = [100.0]
    _fake_clock(monkeypatch, clock)
    server, stream = _connect(hold_resume=True, clock=clock, resume_takes=took)
    async with AsyncHTTP2Connection(ORIGIN, stream) as conn:
        first, second = await _cancel_a_write_and_queue_another(conn, server, stream)
        # The first round used the whole second (or more): no second round; the connection
        # fails with the timeout and its stream is closed. Request 5, reading for an answer
        # that cannot come (its frames were dropped), gets the timeout at once; later
        # requests too.
        assert len(stream.resumed) == 1
        assert first == ["cancelled"]
        assert [type(e) for e in second] == [httpcore.WriteTimeout], second
        assert str(second[0]) == "Timed out finishing an interrupted write."
        assert stream.closed and not conn.is_closed()
        assert not conn.is_available() and conn.has_expired()
        with pytest.raises(httpcore.WriteTimeout) as raised:
            await conn.request("GET", URL)
        assert str(raised.value) == "Timed out finishing an interrupted write."


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend, transport", [("trio", "h2c"), ("trio", "tls")])
async def test_a_failed_resumed_write_ends_the_waits_of_the_other_requests(
    anyio_backend: str,
    transport: str,
    h2_server: Callable[..., H2Server],
    ca: Any,
    monkeypatch: pytest.MonkeyPatch,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """Against a server that stopped reading for good: the cancelled upload's resumed write
    runs out of its write timeout, so the connection fails and closes. The request reading
    for its answer and the one whose frames were queued behind the write get that failure at
    once, though neither has a read timeout; the next request gets a new connection."""
    srv = stall_server(transport, h2_server, ca, monkeypatch)
    url = srv.url
    outcomes: List[Any] = []

    async def get(path: str) -> None:
        try:
            outcomes.append((await pool.request("GET", url + path)).content)
        except httpcore.WriteTimeout as exc:
            outcomes.append(str(exc))

    async with httpcore.AsyncConnectionPool(
        http1=url.startswith("https"), http2=True, ssl_context=client_ssl_context
    ) as pool:
        await get("/warm")
        with anyio.fail_after(20):
            await cancel_an_upload_behind_a_stall(
                pool, srv, get, upload_extensions={"timeout": {"write": 0.5}}
            )
        failed = "Timed out finishing an interrupted write."
        assert outcomes == [b"ok /warm", failed, failed]
        assert pool.connections == []
        srv.resume.set()  # the first connection is gone: the server may go on
        assert (await pool.request("GET", url + "/again")).content == b"ok /again"
    assert srv.connections == 2
