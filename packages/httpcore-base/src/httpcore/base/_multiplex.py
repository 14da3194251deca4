"""Sharing one connection among many streams: who may open a stream, and whether the
connection still takes new ones.

Plain state, no I/O and no protocol library: HTTP/2 (`httpcore.http2`) uses it, and HTTP/3
can use it as it is. Both objects are read and changed under the connection's state lock,
never across a yield.

`StreamSlots` (admission) keeps these rules:

1. A request holds a slot from before it opens its stream until its response is closed.
2. At most `limit` slots are held. The limit is 1 until the peer announces its own (HTTP/2
   SETTINGS_MAX_CONCURRENT_STREAMS), then whatever the connection sets it to.
3. First come, first served: a request takes a free slot at once only if nobody queues;
   otherwise it queues, and each slot that frees up (a response closed, a higher limit) goes
   to the first in line. A lower limit takes no slot back: the queue waits until enough are
   released.
4. A queued request that gives up (timeout, cancellation, the connection became unusable)
   leaves the queue; if its slot had already been granted, the slot goes to the next in line.
5. `in_flight` counts the requests inside the connection, from the moment it accepts them
   until their response is closed, whether they hold a slot or queue for one. A pool may
   hand the connection another request while `in_flight` is below the limit, and at any time
   before the peer's limit is known (so that concurrent requests share a new connection).

`ConnectionHealth` keeps these rules:

1. Health only gets worse: OPEN, then EXHAUSTED (no stream id left), DRAINING (the peer
   sent GOAWAY), WRITE_FAILED (the network refused a write), FAILED (reading failed or the
   protocol broke). `state` is the worst so far; what each later event left behind (the
   GOAWAY, the errors) is kept too, because several can happen to one connection.
2. Only an OPEN connection opens new streams. `refusal()` says why not: the failure, if
   the connection failed while it still took requests; `ConnectionNotAvailable` (nothing
   was sent: retry elsewhere) in every other case.
3. Nothing more is written once a write failed or the connection failed (`send_error`);
   reading goes on after a failed write (responses and a GOAWAY the peer sent before
   closing are still good) but not after a failure (`error`).
4. After a GOAWAY or a failed write the connection is of no further use: it closes itself
   when its last request is done (`closes_when_idle`). An exhausted or failed connection
   with nothing in flight is retired by the pool (`retired`).
"""

from __future__ import annotations

import collections
import enum
from typing import Awaitable, Deque, Generic, Optional, Protocol, Sequence, Type, TypeVar, cast

from ._exceptions import ConnectionNotAvailable, PoolTimeout


class SlotWaiter(Protocol):
    """What queues for a slot: `granted` is set to True when it gets one."""

    granted: bool


class Event(Protocol):
    """A `threading.Event`, or an `AsyncEvent` (whose `wait` is a coroutine)."""

    def set(self) -> None: ...
    def wait(self, timeout: Optional[float]) -> object: ...


class Waiter:
    """Something a request waits on with the WAIT operation (an event + the timeout error).

    Used by HTTP/2 and HTTP/3 for a stream slot (`granted` tells if one was handed over) and
    for data from the reader.
    """

    __slots__ = ("event", "granted", "timeout_error")

    def __init__(self, event: Event, timeout_error: Type[Exception]) -> None:
        self.event = event
        self.timeout_error = timeout_error
        self.granted = False

    def set(self) -> None:
        self.event.set()

    def wait_sync(self, timeout: Optional[float]) -> None:
        if not self.event.wait(timeout):
            error = self.timeout_error
            # A pool timeout is empty, as API.md §3.4 has it.
            raise error() if error is PoolTimeout else error("timed out")

    async def wait_async(self, timeout: Optional[float]) -> None:
        try:
            await cast(Awaitable[None], self.event.wait(timeout))
        except PoolTimeout as exc:
            if self.timeout_error is PoolTimeout:
                raise  # empty, as API.md §3.4 has it
            raise self.timeout_error("timed out") from exc


W = TypeVar("W", bound=SlotWaiter)

_NONE: Sequence[SlotWaiter] = ()


class StreamSlots(Generic[W]):
    """How many streams may be open, and who waits for a slot (the rules at the top)."""

    __slots__ = ("held", "in_flight", "limit", "limit_known", "queue")

    def __init__(self, limit: int = 1) -> None:
        self.limit = limit
        self.limit_known = False  # the peer announced its limit
        self.held = 0  # slots held (streams open or about to be)
        self.in_flight = 0
        self.queue: Deque[W] = collections.deque()

    def take(self) -> bool:
        """Take a slot if one is free and nobody queues for it."""
        if not self.queue and self.held < self.limit:
            self.held += 1
            return True
        return False

    def wait(self, waiter: W) -> None:
        """Queue for the next slot."""
        self.queue.append(waiter)

    def withdraw(self, waiter: W) -> Sequence[W]:
        """`waiter` gives up. Returns the waiters granted a slot as a consequence."""
        if waiter.granted:
            return self.release()
        try:
            self.queue.remove(waiter)
        except ValueError:
            pass
        return _NONE  # type: ignore[return-value]

    def release(self) -> Sequence[W]:
        """A slot is given back. Returns the waiters granted a slot (to be woken)."""
        self.held -= 1
        if self.queue:
            return self._grant()
        return _NONE  # type: ignore[return-value]

    def set_limit(self, limit: int) -> Sequence[W]:
        """The peer announced (or changed) its limit. Returns the waiters granted a slot."""
        self.limit_known = True
        self.limit = limit
        return self._grant()

    def _grant(self) -> Sequence[W]:
        granted = []
        queue = self.queue
        while queue and self.held < self.limit:
            waiter = queue.popleft()
            waiter.granted = True
            self.held += 1
            granted.append(waiter)
        return granted

    def enter(self) -> None:
        """A request was accepted by the connection."""
        self.in_flight += 1

    def leave(self) -> bool:
        """A request is done with the connection. True if none is left."""
        self.in_flight -= 1
        return self.in_flight == 0

    def has_room(self) -> bool:
        """Whether a pool may hand the connection one more request (rule 5)."""
        return not self.limit_known or self.in_flight < self.limit


class Health(enum.IntEnum):
    """How usable a multiplexed connection still is; each one allows less than the last."""

    OPEN = 0  # takes new streams
    EXHAUSTED = 1  # no stream id left, or retired (`retire()`); open streams go on
    DRAINING = 2  # the peer sent GOAWAY; the streams it accepted go on
    WRITE_FAILED = 3  # nothing more can be sent; what was received can still be read
    FAILED = 4  # every stream fails with `error`


OPEN = Health.OPEN
EXHAUSTED = Health.EXHAUSTED
DRAINING = Health.DRAINING
WRITE_FAILED = Health.WRITE_FAILED
FAILED = Health.FAILED


def renewed(exc: BaseException) -> BaseException:
    """A copy of a remembered connection error, to raise in one more request."""
    try:
        copy = type(exc)(*exc.args)
    except Exception:  # pragma: no cover - exotic exception signatures
        return exc
    copy.__cause__ = exc
    return copy


class ConnectionHealth:
    """Whether a multiplexed connection can take new streams, write, read (rules at the top)."""

    __slots__ = (
        "_failed_while_open",
        "error",
        "goaway",
        "goaway_last_stream_id",
        "send_error",
        "state",
        "write_error",
    )

    def __init__(self) -> None:
        self.state = OPEN
        #: The failure every stream gets (FAILED).
        self.error: Optional[BaseException] = None
        #: The write the network refused (WRITE_FAILED, maybe FAILED since).
        self.write_error: Optional[BaseException] = None
        #: What stops writing: `error`, else `write_error`.
        self.send_error: Optional[BaseException] = None
        #: The peer's GOAWAY (the protocol's event) and the last stream id it accepted.
        self.goaway: Optional[object] = None
        self.goaway_last_stream_id = 0
        self._failed_while_open = False

    def refusal(self) -> Optional[BaseException]:
        """Can this connection take a new request? None if so, else the exception to raise."""
        if self.state is OPEN:
            return None
        if self._failed_while_open:
            assert self.error is not None
            return renewed(self.error)
        return ConnectionNotAvailable()

    def closes_when_idle(self) -> bool:
        """Whether the connection should close once its last request is done."""
        return self.goaway is not None or self.write_error is not None

    def exhaust(self) -> None:
        """No stream id is left for a new stream."""
        if self.state < EXHAUSTED:
            self.state = EXHAUSTED

    def retire(self) -> None:
        """Take no new stream: the connection was silent for a whole read timeout while a
        request waited (a peer gone without a word, a black-holed route, or only a slow
        response: either way, new requests are better off on a new connection)."""
        self.exhaust()

    def drain(self, goaway: object, last_stream_id: int) -> None:
        """The peer sent GOAWAY: streams up to `last_stream_id` may complete."""
        self.goaway = goaway
        self.goaway_last_stream_id = last_stream_id
        self._failed_while_open = False
        if self.state < DRAINING:
            self.state = DRAINING

    def fail_writes(self, exc: BaseException) -> None:
        """The network refused a write: nothing more can be sent."""
        if self.write_error is None:
            self.write_error = exc
            if self.send_error is None:
                self.send_error = exc
        self._failed_while_open = False
        if self.state < WRITE_FAILED:
            self.state = WRITE_FAILED

    def fail(self, exc: BaseException) -> None:
        """The connection failed: every stream gets `exc` (the first failure is kept)."""
        if self.error is None:
            self.error = exc
            self.send_error = exc
            if self.state is OPEN:
                self._failed_while_open = True
        self.state = FAILED
