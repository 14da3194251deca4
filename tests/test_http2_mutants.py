"""HTTP/2 behaviours that mutation testing (scripts/mutation) found untested."""

from __future__ import annotations

from httpcore.http2 import HTTPConnectionState


def test_connection_state_values_match_httpcore_1_0() -> None:
    # Exported by httpcore-http2; httpcore 1.0.9 numbers its HTTP/2 states the same way.
    assert [(state.name, int(state)) for state in HTTPConnectionState] == [
        ("ACTIVE", 1),
        ("IDLE", 2),
        ("CLOSED", 3),
    ]
