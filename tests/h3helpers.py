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


def _start_h3_server(background_loop: BackgroundLoop, certfile: str, ca: trustme.CA) -> HTTP3Server:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return HTTP3Server(background_loop, certfile=certfile, client_context=context)


@pytest.fixture(scope="session")
def h3_server_shared(
    background_loop: BackgroundLoop, server_cert_file: str, ca: trustme.CA
) -> Iterator[List[HTTP3Server]]:
    """The hypercorn the tests of a module share, in a one-item list so that `h3_server` can
    put a new one there."""
    servers = [_start_h3_server(background_loop, server_cert_file, ca)]
    yield servers
    servers[0].close()


@pytest.fixture
def h3_server(
    h3_server_shared: List[HTTP3Server],
    background_loop: BackgroundLoop,
    server_cert_file: str,
    ca: trustme.CA,
) -> Iterator[HTTP3Server]:
    """The shared hypercorn. Should it stop serving during a test, that test fails (at
    teardown, with hypercorn's exception) and the next test gets a new one, rather than every
    later test failing with a timeout and hiding which one did it."""
    srv = h3_server_shared[0]
    yield srv
    if srv.has_stopped():
        h3_server_shared[0] = _start_h3_server(background_loop, server_cert_file, ca)
        srv.close()
        pytest.fail(f"hypercorn stopped serving during this test: {srv.stop_reason()}")


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
