"""Pool behaviours that mutation testing (scripts/mutation) found untested."""

from __future__ import annotations

from typing import Any

import helpers
import pytest

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
