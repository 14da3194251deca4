"""h11 for the HTTP/1.1 connection, imported on first use.

The fast path (`_http11_simple`) serves the common exchange without h11, so importing h11
(~15 ms of a cold start, with dataclasses and inspect) waits until a connection first needs
its state machine. h11's errors are mapped to ours from that moment on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Optional, Type

from ._exceptions import LocalProtocolError, RemoteProtocolError, map_exceptions

if TYPE_CHECKING:
    import h11

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


def done(state: Optional[h11.Connection], theirs: bool) -> bool:
    """Whether h11 has seen our side (and, if `theirs`, the server's) of the exchange through;
    False when h11 took no part in it (`state` None)."""
    if state is None:
        return False
    import h11

    return state.our_state is h11.DONE and (not theirs or state.their_state is h11.DONE)
