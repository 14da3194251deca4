"""A request body's iterator left part-way is closed by the request, not by the garbage
collector (issue 10 §3): a generator's cleanup runs before the error reaches the caller, and trio
does not warn of an async generator collected before it was exhausted."""

from __future__ import annotations

import gc
import warnings
from typing import Any, AsyncIterator, Callable, Iterator, List

import anyio
import helpers
import pytest
from h2servers import H2Server
from servers import RawServer
from servers.raw import stall

import httpcore

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

CHUNK = b"x" * (1 << 20)
CHUNKS = 64  # far more than the socket buffers hold


def tracked_body(api: helpers.API, closed: List[str]) -> Any:
    """A generator body of the caller's kind that records how it ended."""
    if not api.is_async:

        def gen() -> Iterator[bytes]:
            try:
                for _ in range(CHUNKS):
                    yield CHUNK
            except GeneratorExit:
                closed.append("closed")
                raise
            closed.append("exhausted")

        return gen()

    async def agen() -> AsyncIterator[bytes]:
        try:
            for _ in range(CHUNKS):
                yield CHUNK
        except GeneratorExit:
            closed.append("closed")
            raise
        closed.append("exhausted")

    return agen()


@pytest.mark.anyio
async def test_http11_body_closed_after_a_write_timeout(
    api: helpers.API, raw_server: Callable[..., RawServer]
) -> None:
    srv = raw_server(stall)
    closed: List[str] = []
    gc.disable()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with api.ConnectionPool() as pool:
                with pytest.raises(httpcore.WriteTimeout):
                    await pool.request(
                        "PUT",
                        srv.url,
                        headers={"Content-Length": str(CHUNKS * len(CHUNK))},
                        content=tracked_body(api, closed),
                        extensions={"timeout": {"write": 0.3}},
                    )
                # Closed by the request itself, before the error reached us.
                assert closed == ["closed"]
                assert pool.connections == []
    finally:
        gc.enable()
    gc.collect()
    assert [str(w.message) for w in caught] == []


@pytest.mark.anyio
@pytest.mark.parametrize("flavour", ["asyncio", "trio"], indirect=False)
async def test_http2_body_closed_after_a_write_timeout(flavour: str) -> None:
    srv = H2Server(stall=True)
    closed: List[str] = []
    api = helpers.API(flavour)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with httpcore.AsyncConnectionPool(http1=False, http2=True) as pool:
                with pytest.raises(httpcore.WriteTimeout):
                    await pool.request(
                        "POST",
                        srv.url + "/stall",
                        content=tracked_body(api, closed),
                        extensions={"timeout": {"write": 0.3}},
                    )
                assert closed == ["closed"]
            assert await anyio.to_thread.run_sync(srv.stalled.wait, 10)
    finally:
        srv.resume.set()
        srv.close()
    gc.collect()
    assert [str(w.message) for w in caught] == []


@pytest.mark.anyio
async def test_exhausted_body_is_not_closed(api: helpers.API, server: Any) -> None:
    closed: List[str] = []

    def small() -> Any:
        if not api.is_async:

            def gen() -> Iterator[bytes]:
                try:
                    yield b"abc"
                except GeneratorExit:
                    closed.append("closed")
                    raise
                closed.append("exhausted")

            return gen()

        async def agen() -> AsyncIterator[bytes]:
            try:
                yield b"abc"
            except GeneratorExit:
                closed.append("closed")
                raise
            closed.append("exhausted")

        return agen()

    async with api.ConnectionPool() as pool:
        response = await pool.request(
            "POST", server.url + "/echo", headers={"Content-Length": "3"}, content=small()
        )
        assert response.status == 200
    assert closed == ["exhausted"]
