"""HTTP/2 behaviours that mutation testing (scripts/mutation) found untested."""

from __future__ import annotations

import ssl
from typing import Any

import helpers
import pytest

from httpcore.http2 import HTTPConnectionState

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api


def test_connection_state_values_match_httpcore_1_0() -> None:
    # Exported by httpcore-http2; httpcore 1.0.9 numbers its HTTP/2 states the same way.
    assert [(state.name, int(state)) for state in HTTPConnectionState] == [
        ("ACTIVE", 1),
        ("IDLE", 2),
        ("CLOSED", 3),
    ]


@pytest.mark.anyio
async def test_an_idle_http2_connection_is_kept_until_its_keepalive_expiry(
    api: Any, tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    async with api.ConnectionPool(
        ssl_context=client_ssl_context, http2=True, keepalive_expiry=60.0
    ) as pool:
        first = await pool.request("GET", tls_server.url + "/")
        assert first.extensions["http_version"] == b"HTTP/2"
        [connection] = pool.connections
        assert connection.is_idle() and not connection.has_expired()
        await pool.request("GET", tls_server.url + "/")
        assert pool.connections == [connection]
