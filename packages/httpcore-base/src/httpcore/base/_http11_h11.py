"""h11 for the HTTP/1.1 connection, imported on first use, and the exchange through it.

The fast path (`_http11_simple`) serves the common exchange without h11, so importing h11
(~15 ms of a cold start, with dataclasses and inspect) waits until a connection first needs
its state machine. h11's errors are mapped to ours from that moment on.

`H11Exchange` is the part of `HTTP11Core` that talks to h11: the request head and a body of
any kind written through it, a request sent by the fast path replayed into it, response events
read from it. Rules it keeps: every h11 call that can raise is inside `LOCAL_ERRORS` or
`REMOTE_ERRORS`; a request body's iterator left part-way is closed before the error goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Protocol, Tuple, Type, Union

from ._drive import close_iterator
from ._exceptions import LocalProtocolError, RemoteProtocolError, map_exceptions
from ._models import Request
from ._ops import AnyNetworkStream, Gen, iterate, next_item, read, write

if TYPE_CHECKING:
    import h11

    #: What h11 parses out of its buffer.
    H11Event = Union[h11.Event, Type[h11.NEED_DATA], Type[h11.PAUSED]]

# Body reads (through h11 or direct) start at READ_NUM_BYTES and double up to this while each read
# comes back full (fewer, larger reads for big bodies; small bodies never allocate large buffers).
# Not larger: `recv(n)` allocates n bytes, then shrinks them to what arrived, and on loopback
# most reads come back far short of 1 MiB. With glibc the freed tails get trimmed off the heap
# and the next read faults fresh pages in: at 1 MiB, from a few dozen to 14,000 page faults per
# 128 MiB body from one process to the next, and up to 2.5x the CPU.
MAX_BODY_READ = 256 * 1024

_LOCAL_MAPPING: Dict[Type[BaseException], Type[Exception]] = {}
_REMOTE_MAPPING: Dict[Type[BaseException], Type[Exception]] = {}

# h11's errors, as ours (same message, the original chained); filled by `new_state()`.
LOCAL_ERRORS = map_exceptions(_LOCAL_MAPPING)
REMOTE_ERRORS = map_exceptions(_REMOTE_MAPPING)


def new_state(max_incomplete_event_size: int) -> h11.Connection:
    """A client state machine (importing h11 and filling the error mappings, the first time)."""
    import h11

    if not _REMOTE_MAPPING:  # filled last: both are filled once it is
        _LOCAL_MAPPING[h11.LocalProtocolError] = LocalProtocolError
        _REMOTE_MAPPING[h11.RemoteProtocolError] = RemoteProtocolError
    return h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=max_incomplete_event_size)


def done(state: Optional[h11.Connection]) -> bool:
    """Whether h11 has seen both sides of the exchange through; False when h11 took no part
    in it (`state` None)."""
    if state is None:
        return False
    import h11

    return state.our_state is h11.DONE and state.their_state is h11.DONE


def request_done(state: Optional[h11.Connection]) -> bool:
    """Whether h11 wrote our whole request, for a response read without it. A request that
    proposed an upgrade leaves h11 in MIGHT_SWITCH_PROTOCOL until it sees the response; one
    read without h11 is never a 101 (interim responses go to h11), so the proposal was
    declined, and h11 would have moved to DONE."""
    if state is None:
        return False
    import h11

    # A documented h11 state, missing from its `__all__`.
    might_switch = h11.MIGHT_SWITCH_PROTOCOL  # type: ignore[attr-defined]
    return state.our_state is h11.DONE or state.our_state is might_switch


class ExchangeRecord(Protocol):
    """What the h11 side reads and records of the current exchange (`ResponseState`)."""

    started: bool
    h11_behind: Optional[Tuple[Request, bytes]]
    read_size: int


class H11Exchange:
    """The h11 side of `HTTP11Core` (a mixin: the core owns the attributes below)."""

    READ_NUM_BYTES = 65536
    MAX_INCOMPLETE_EVENT_SIZE = 102400

    _network_stream: AnyNetworkStream
    _h11_state: Optional[h11.Connection]
    _response: ExchangeRecord

    def _h11(self) -> h11.Connection:
        """h11's state machine for this connection, made on first use."""
        h11_state = self._h11_state
        if h11_state is None:
            self._h11_state = h11_state = self._new_h11_state()
        return h11_state

    def _new_h11_state(self) -> h11.Connection:
        return new_state(self.MAX_INCOMPLETE_EVENT_SIZE)

    def _h11_request_bytes(self, request: Request, content: bytes) -> bytes:
        h11_state = self._h11()  # first: it imports h11 and fills the error mappings
        import h11

        with LOCAL_ERRORS:
            data = h11_state.send(
                h11.Request(
                    method=request.method, target=request.url.target, headers=request.headers
                )
            )
            if content:
                data += h11_state.send(h11.Data(data=content))
            data += h11_state.send(h11.EndOfMessage())
        return data

    def _catch_up_h11(self) -> None:
        """Replay into h11 a request sent without it, before h11 reads the response."""
        response = self._response
        if response.h11_behind is not None:
            request, content = response.h11_behind
            response.h11_behind = None
            self._h11_request_bytes(request, content)

    def _send_request_headers(self, request: Request, timeout: Optional[float]) -> Gen[None]:
        h11_state = self._h11()
        import h11

        with LOCAL_ERRORS:
            event = h11.Request(
                method=request.method, target=request.url.target, headers=request.headers
            )
            data = h11_state.send(event)
        yield from write(self._network_stream, data, timeout)

    def _send_request_body(self, request: Request, timeout: Optional[float]) -> Gen[None]:
        h11_state = self._h11()
        import h11

        iterator = yield from iterate(request.stream)
        try:
            while True:
                chunk = yield from next_item(iterator)
                if chunk is None:
                    break
                with LOCAL_ERRORS:
                    data = h11_state.send(h11.Data(data=chunk))
                if data:
                    yield from write(self._network_stream, data, timeout)
        except GeneratorExit:
            raise
        except BaseException:
            yield from close_iterator(iterator)
            raise
        with LOCAL_ERRORS:
            data = h11_state.send(h11.EndOfMessage())
        if data:
            yield from write(self._network_stream, data, timeout)

    def _receive_event(self, timeout: Optional[float], read_size: int = 0) -> Gen[H11Event]:
        h11_state = self._h11()
        import h11

        response = self._response
        while True:
            with REMOTE_ERRORS:
                event = h11_state.next_event()
            if event is not h11.NEED_DATA:
                return event
            size = read_size or self.READ_NUM_BYTES
            data = yield from read(self._network_stream, size, timeout)
            if read_size and len(data) == size and size < MAX_BODY_READ:
                # The socket keeps filling whole reads: a large body; read bigger pieces.
                response.read_size = size * 2
            if not data:
                if h11_state.their_state is h11.SEND_RESPONSE:
                    raise RemoteProtocolError("Server disconnected without sending a response.")
            else:
                response.started = True
            h11_state.receive_data(data)
