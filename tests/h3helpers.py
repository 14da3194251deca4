"""Fixtures of the HTTP/3 tests (imported by tests/test_http3*.py): hypercorn serving TLS and
QUIC (`h3_server`), the aioquic-based test servers (`quic_server` factory) and the dropping
UDP relay (`lossy_relay` factory); see tests/servers/h3_server.py and tests/servers/quic.py."""

from __future__ import annotations

import ssl
from typing import Any, Callable, Iterator, List

import pytest
import trustme
from servers import BackgroundLoop, HTTP3Server
from servers.quic import DroppingRelay, QuicTestServer

import httpcore


@pytest.fixture(scope="session")
def h3_server(
    background_loop: BackgroundLoop, server_cert_file: str, ca: trustme.CA
) -> Iterator[HTTP3Server]:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    srv = HTTP3Server(background_loop, certfile=server_cert_file, client_context=context)
    yield srv
    srv.close()


@pytest.fixture
def own_h3_server(
    background_loop: BackgroundLoop, server_cert_file: str, ca: trustme.CA
) -> Iterator[HTTP3Server]:
    """A hypercorn of the test's own, for tests that abandon streams: hypercorn's QUIC server
    (0.18) dies when its app answers a stream the client stopped (STOP_SENDING), "Cannot send
    data on a finished stream", and would take the shared one down."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    srv = HTTP3Server(background_loop, certfile=server_cert_file, client_context=context)
    yield srv
    srv.close()


@pytest.fixture
def quic_server(
    background_loop: BackgroundLoop, server_cert_file: str
) -> Iterator[Callable[..., QuicTestServer]]:
    servers: List[QuicTestServer] = []

    def start(behaviour: Any) -> QuicTestServer:
        srv = QuicTestServer(background_loop, server_cert_file, behaviour)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.close()
    for srv in servers:
        if srv.errors:
            raise srv.errors[0]


@pytest.fixture
def lossy_relay(background_loop: BackgroundLoop) -> Iterator[Callable[..., DroppingRelay]]:
    relays: List[DroppingRelay] = []

    def start(port: int, drop: float = 0.1, seed: int = 1) -> DroppingRelay:
        relay = DroppingRelay(background_loop, ("127.0.0.1", port), drop=drop, seed=seed)
        relays.append(relay)
        return relay

    yield start
    for relay in relays:
        relay.close()


def origin(port: int) -> httpcore.Origin:
    return httpcore.Origin(b"https", b"127.0.0.1", port)
