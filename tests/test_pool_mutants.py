"""Pool behaviours that mutation testing (scripts/mutation) found untested."""

from __future__ import annotations

import ssl
from typing import Any, List

import anyio
import helpers
import pytest

import httpcore

pytestmark = pytest.mark.anyio

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, world!"


class CloseFailed(Exception):
    pass


class SyncFailingClose(helpers.SyncRecordingStream):
    def close(self) -> None:
        super().close()
        raise CloseFailed("close failed")


class AsyncFailingClose(helpers.AsyncRecordingStream):
    async def aclose(self) -> None:
        await super().aclose()
        raise CloseFailed("close failed")


async def test_a_failing_close_is_raised_after_closing_every_connection(api: Any) -> None:
    backend = api.backend([HELLO])
    backend.stream_class = AsyncFailingClose if api.is_async else SyncFailingClose
    pool = api.ConnectionPool(network_backend=backend)
    for url in ("https://a.test/", "https://b.test/", "https://c.test/"):
        assert (await pool.request("GET", url)).status == 200
    assert len(pool.connections) == 3
    with pytest.raises(CloseFailed):
        await pool.aclose()
    # Every connection was closed, the first failure did not stop the others.
    assert [stream.closed for stream in backend.streams] == [True, True, True]
    assert pool.connections == []


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_requests_queued_behind_a_tunnel_share_it_once_it_is_http2(
    anyio_backend: str, http_proxy: Any, tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    """max_connections=1: the second request queues while the tunnel is being set up (unknown
    protocol: not available); once the first request runs on it over HTTP/2, the second is
    handed the same connection at once, not when the first response ends."""
    second_done = anyio.Event()
    results: List[bytes] = []
    async with httpcore.AsyncHTTPProxy(
        proxy_url=http_proxy.url, ssl_context=client_ssl_context, http2=True, max_connections=1
    ) as proxy:

        async def first() -> None:
            async with proxy.stream("GET", tls_server.url + "/") as response:
                assert response.extensions["http_version"] == b"HTTP/2"
                with anyio.fail_after(5):
                    await second_done.wait()
                results.append(await response.aread())

        async def second() -> None:
            response = await proxy.request(
                "GET", tls_server.url + "/", extensions={"timeout": {"pool": 5}}
            )
            results.append(response.content)
            second_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            tg.start_soon(second)
        assert results == [b"Hello, world!"] * 2
        assert len(proxy.connections) == 1
    assert http_proxy.connects == 1
