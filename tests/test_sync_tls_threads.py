"""TLS used by several threads at once: sync HTTP/2 reads a connection in one thread while
others write it (`httpcore.base._sync_tls`).

Through a pool against real TLS servers (hypercorn with HTTP/2 by ALPN and TLS 1.3, the
misbehaving h2 servers of `h2servers.py` over TLS, an HTTPS proxy): many threads and streams,
large bodies both ways, a server dropping the connection, timeouts that fire; each with every
socket closed by us. They run with tasks too (asyncio, trio). The sync TLS stream itself:
tests/test_sync_tls_stream.py.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
import threading
import time
from typing import Any, Callable, Iterator, List, Optional

import anyio
import helpers
import pytest
from h2servers import H2Server
from servers.raw import sockets_to
from test_leaks import collector_off

import httpcore

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

BROKEN = (httpcore.NetworkError, httpcore.RemoteProtocolError)


def _timeouts(**values: Optional[float]) -> Any:
    return {"timeout": values}


@contextlib.contextmanager
def closes_its_sockets(port: int) -> Iterator[None]:
    """The body leaves no socket of ours to `port` open, with the collector disabled, and
    collecting afterwards warns of nothing. (`no_leaks` compares every descriptor: a server
    living in this process through the whole session, like hypercorn, may still hold its side.)
    """
    left: List[Any] = []
    with collector_off(lambda: left.extend(sockets_to(port))):
        yield
    assert left == []


async def _wait(api: helpers.API, event: threading.Event) -> bool:
    if api.is_async:
        return await anyio.to_thread.run_sync(event.wait, 10)
    return event.wait(10)


@pytest.fixture
def h2_tls_context(ca: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    context.set_alpn_protocols(["h2"])
    return context


# -- through a pool ----------------------------------------------------------------------------


async def test_many_workers_share_fresh_tls_http2_connections(
    api: helpers.API, tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    """8 workers x 8 requests on each of 5 fresh pools: one HTTP/2 connection each, no
    request lost (the sync flavour used to break the TLS state now and then)."""

    async def worker(pool: Any, versions: List[bytes]) -> None:
        for _ in range(8):
            response = await pool.request("GET", tls_server.url + "/")
            assert response.content == b"Hello, world!"
            versions.append(response.extensions["http_version"])

    for _ in range(5):
        versions: List[bytes] = []
        async with api.ConnectionPool(ssl_context=client_ssl_context, http2=True) as pool:
            await api.concurrently(*[functools.partial(worker, pool, versions)] * 8)
            assert versions == [b"HTTP/2"] * 64
            assert len(pool.connections) == 1


async def test_large_bodies_both_ways_on_one_tls_http2_connection(
    api: helpers.API, tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    """Uploads and downloads well past the flow-control windows: reads and writes of the
    workers overlap all along."""
    received: List[int] = []
    with closes_its_sockets(tls_server.port):
        async with api.ConnectionPool(ssl_context=client_ssl_context, http2=True) as pool:

            async def worker(seed: int) -> None:
                for round_ in range(3):
                    body = bytes([seed * 16 + round_]) * (300_000 + seed * 1000)
                    response = await pool.request("POST", tls_server.url + "/echo", content=body)
                    assert response.content == body
                    received.append(len(body))

            await api.concurrently(*[lambda seed=seed: worker(seed) for seed in range(5)])
            assert len(received) == 15
            assert len(pool.connections) == 1


async def test_a_read_timeout_fails_only_its_request(
    api: helpers.API, tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    """One request times out reading (0.3 s) while others, without a read timeout, go on on
    the same connection: each read has its own timeout."""
    outcomes: List[Any] = []
    with closes_its_sockets(tls_server.port):
        async with api.ConnectionPool(ssl_context=client_ssl_context, http2=True) as pool:
            await pool.request("GET", tls_server.url + "/")  # the connection, settled

            async def slow() -> None:
                with pytest.raises(httpcore.ReadTimeout):
                    await pool.request(
                        "GET", tls_server.url + "/slow/3000", extensions=_timeouts(read=0.3)
                    )
                outcomes.append("timed out")

            async def quick() -> None:
                for _ in range(10):
                    response = await pool.request("POST", tls_server.url + "/echo", content=b"q")
                    assert response.content == b"q"
                outcomes.append("done")

            await api.concurrently(slow, quick, quick, quick)
            assert sorted(outcomes) == ["done"] * 3 + ["timed out"]
            assert (await pool.request("GET", tls_server.url + "/")).status == 200
            assert len(pool.connections) == 1


async def test_the_server_dropping_the_connection_mid_stream(
    api: helpers.API,
    h2_server: Callable[..., H2Server],
    h2_tls_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """Four requests in flight, the server answers and drops the connection in the middle of
    one body: each request gets its response or an error of the documented classes, and the
    next request opens a new connection."""
    srv = h2_server(hold=4, ssl_context=h2_tls_context)
    outcomes: List[Any] = []
    with closes_its_sockets(srv.port):
        async with api.ConnectionPool(ssl_context=client_ssl_context, http2=True) as pool:

            async def get(path: str) -> None:
                try:
                    response = await pool.request(
                        "GET", srv.url + path, extensions=_timeouts(read=10)
                    )
                    outcomes.append(response.content)
                except BROKEN as exc:
                    outcomes.append(type(exc))

            await api.concurrently(*[lambda p=p: get(p) for p in ("/a", "/die", "/b", "/c")])
            assert len(outcomes) == 4
            assert [o for o in outcomes if not isinstance(o, bytes)] != []
            answered = {o for o in outcomes if isinstance(o, bytes)}
            assert answered <= {b"ok /a", b"ok /b", b"ok /c"}
            assert (await pool.request("GET", srv.url + "/after")).content == b"ok /after"
            assert srv.connections == 2


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "h2c"])
async def test_a_write_timeout_fires_while_another_request_reads(
    api: helpers.API,
    tls: bool,
    h2_server: Callable[..., H2Server],
    h2_tls_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """The server stops reading: an upload times out writing (0.5 s) while another request
    holds the read role with a longer read timeout (3 s); both end within the upload's time.
    The failed write ends the read in progress (tasks: the network stream is closed; threads:
    the socket is shut down), so the reader ends with the upload's failure at once."""
    srv = h2_server(stall=True, ssl_context=h2_tls_context if tls else None)
    elapsed = {}
    try:
        with closes_its_sockets(srv.port):
            async with api.ConnectionPool(
                ssl_context=client_ssl_context, http1=tls, http2=True
            ) as pool:
                assert (await pool.request("GET", srv.url + "/warm")).content == b"ok /warm"

                async def upload() -> None:
                    started = time.monotonic()
                    with pytest.raises(httpcore.WriteTimeout):
                        await pool.request(
                            "POST",
                            srv.url + "/stall",
                            content=b"x" * (32 * 1024 * 1024),
                            extensions=_timeouts(write=0.5, read=3),
                        )
                    elapsed["upload"] = time.monotonic() - started

                async def reader() -> None:
                    assert await _wait(api, srv.stalled)  # sent once the server stopped reading
                    started = time.monotonic()
                    with pytest.raises(expected):
                        await pool.request("GET", srv.url + "/late", extensions=_timeouts(read=3))
                    elapsed["reader"] = time.monotonic() - started

                expected = httpcore.WriteTimeout
                await api.concurrently(upload, reader)
        assert elapsed["upload"] < 2.5  # its own 0.5 s, not the reader's 3 s
        assert elapsed["reader"] < 2.5
    finally:
        srv.resume.set()


async def test_http2_through_an_https_proxy_from_many_workers(
    api: helpers.API,
    tls_server: Any,
    https_proxy: Any,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """TLS inside TLS, HTTP/2 inside: the inner and the outer session are both shared."""
    with closes_its_sockets(https_proxy.port):
        async with api.HTTPProxy(
            proxy_url=https_proxy.url,
            proxy_ssl_context=client_ssl_context,
            ssl_context=client_ssl_context,
            http2=True,
        ) as proxy:
            response = await proxy.request("GET", tls_server.url + "/")  # the tunnel, settled
            assert response.extensions["http_version"] == b"HTTP/2"

            async def worker(seed: int) -> None:
                for round_ in range(4):
                    body = bytes([seed * 8 + round_]) * 100_000
                    response = await proxy.request("POST", tls_server.url + "/echo", content=body)
                    assert response.content == body
                    assert response.extensions["http_version"] == b"HTTP/2"

            await api.concurrently(*[lambda seed=seed: worker(seed) for seed in range(6)])
            assert len(proxy.connections) == 1
