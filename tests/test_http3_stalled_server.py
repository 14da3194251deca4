"""HTTP/3 against a server whose loss recovery stalls: a response was lost and, its
retransmission timer lost too, the server resends nothing until the client speaks. The client
sends a PING after a second of silence while a request waits (`PROBE_AFTER`), which makes such
a server resend. (hypercorn 0.18 restarts its QUIC timer task from a time read before it waited
for a lock; a stale, late timer is the suspected cause of rare 10 s stalls in
`test_requests_complete_over_a_lossy_path`.)"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any, Dict

import h3helpers
import helpers
import pytest

from httpcore.http3 import _reader

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api
quic_server = h3helpers.quic_server

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

BODY = b"x" * 100  # the response fits one datagram: it is lost whole


def _losing(timers_after: float) -> Any:
    def behaviour(
        server: Any, conn: Any, stream_id: int, headers: Dict[bytes, bytes], body: bytes
    ) -> None:
        server.lazy_timers = True
        server.drop_tail = 1
        server.timers_from = asyncio.get_running_loop().time() + timers_after
        server.respond(conn, stream_id, body=BODY)

    return behaviour


@pytest.mark.parametrize(
    ("timers_after", "probes"),
    [(0.5, 1), (1.5, 2)],  # the second: the first PING comes too early, the next one does it
)
async def test_a_stalled_server_is_probed_and_resends_the_lost_response(
    api: helpers.API,
    quic_server: Any,
    client_ssl_context: ssl.SSLContext,
    timers_after: float,
    probes: int,
) -> None:
    server = quic_server(_losing(timers_after))
    origin = h3helpers.origin(server.port)
    async with api._client("HTTP3Connection", origin, ssl_context=client_ssl_context) as conn:
        started = time.monotonic()
        response = await conn.request(
            "GET", server.url + "/", extensions={"timeout": {"read": 8.0}}
        )
        elapsed = time.monotonic() - started
        assert response.content == BODY
    assert server.dropped == 1
    # PINGs after 1 s of silence, then 2 s: not the read timeout.
    first_probe = _reader.PROBE_AFTER
    assert first_probe * 2 ** (probes - 1) <= elapsed < first_probe * 2**probes + 1.0
    assert server.errors == []


async def test_the_probes_start_over_for_the_next_request(
    api: helpers.API, quic_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    """The silence before the first PING is 1 s again once the server was heard: a request
    after one that needed a probe is not left to wait for twice as long."""
    server = quic_server(_losing(0.5))
    origin = h3helpers.origin(server.port)
    async with api._client("HTTP3Connection", origin, ssl_context=client_ssl_context) as conn:
        for _ in range(2):
            started = time.monotonic()
            response = await conn.request(
                "GET", server.url + "/", extensions={"timeout": {"read": 8.0}}
            )
            elapsed = time.monotonic() - started
            assert response.content == BODY
            assert _reader.PROBE_AFTER <= elapsed < 2 * _reader.PROBE_AFTER
    assert server.dropped == 2
