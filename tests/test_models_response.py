"""`Response` and `ByteStream` of `httpcore.base._models`, sync and async (asyncio and trio):
reading, streaming and closing bodies, and the exact error for each misuse."""

from __future__ import annotations

from typing import Iterator

import pytest
from models_helpers import AsyncChunks, AsyncNoClose, SyncChunks, SyncNoClose, raises_exact

from httpcore.base._models import ByteStream, Response


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


CONTENT_SYNC = (
    "Attempted to access 'response.content' on a streaming response. Call 'response.read()' first."
)


CONTENT_ASYNC = (
    "Attempted to access 'response.content' on a streaming response. "
    "Call 'await response.aread()' first."
)


READ_ASYNC = (
    "Attempted to read an asynchronous response using 'response.read()'. "
    "You should use 'await response.aread()' instead."
)


ITER_TWICE = "Attempted to call 'for ... in response.iter_stream()' more than once."


ITER_ASYNC = (
    "Attempted to stream an asynchronous response using 'for ... in response.iter_stream()'. "
    "You should use 'async for ... in response.aiter_stream()' instead."
)


CLOSE_ASYNC = (
    "Attempted to close an asynchronous response using 'response.close()'. "
    "You should use 'await response.aclose()' instead."
)


AREAD_SYNC = (
    "Attempted to read an synchronous response using 'await response.aread()'. "
    "You should use 'response.read()' instead."
)


AITER_TWICE = "Attempted to call 'async for ... in response.aiter_stream()' more than once."


AITER_SYNC = (
    "Attempted to stream an synchronous response using "
    "'async for ... in response.aiter_stream()'. "
    "You should use 'for ... in response.iter_stream()' instead."
)


ACLOSE_SYNC = (
    "Attempted to close a synchronous response using 'await response.aclose()'. "
    "You should use 'response.close()' instead."
)


# ---------------------------------------------------------------------------------------------
# ByteStream
# ---------------------------------------------------------------------------------------------


def test_bytestream_sync() -> None:
    stream = ByteStream(b"hello")
    assert list(stream) == [b"hello"]
    assert list(stream) == [b"hello"]
    assert list(ByteStream(b"")) == [b""]


@pytest.mark.anyio
async def test_bytestream_async() -> None:
    stream = ByteStream(b"hello")
    assert [chunk async for chunk in stream] == [b"hello"]
    assert [chunk async for chunk in ByteStream(b"")] == [b""]


def test_bytestream_repr() -> None:
    assert repr(ByteStream(b"")) == "<ByteStream [0 bytes]>"
    assert repr(ByteStream(b"abc")) == "<ByteStream [3 bytes]>"


# ---------------------------------------------------------------------------------------------
# Response (sync)
# ---------------------------------------------------------------------------------------------


def test_response_basics() -> None:
    response = Response(200)
    assert response.status == 200
    assert response.headers == []
    assert response.extensions == {}
    assert isinstance(response.stream, ByteStream)
    assert repr(response) == "<Response [200]>"
    assert repr(Response(404)) == "<Response [404]>"


def test_response_headers_and_extensions() -> None:
    extensions = {"http_version": b"HTTP/1.1"}
    response = Response(200, headers=[("Content-Type", "text/plain")], extensions=extensions)
    assert response.headers == [(b"Content-Type", b"text/plain")]
    assert response.extensions is extensions
    with raises_exact(TypeError, "header name must be bytes or str, but got int."):
        Response(200, headers=[(1, b"a")])  # type: ignore[list-item]


def test_response_status_not_validated() -> None:
    assert Response("abc").status == "abc"  # type: ignore[arg-type, comparison-overlap]


def test_response_content_raises_until_read_even_for_bytes() -> None:
    response = Response(200, content=b"Hello, world!")
    with raises_exact(RuntimeError, CONTENT_SYNC):
        response.content  # noqa: B018
    assert response.read() == b"Hello, world!"
    assert response.content == b"Hello, world!"
    assert response.read() == b"Hello, world!"


def test_response_read_joins_chunks_and_caches() -> None:
    stream = SyncChunks(b"a", b"b", b"c")
    response = Response(200, content=stream)
    assert response.stream is stream
    assert response.read() == b"abc"
    assert response.read() == b"abc"
    assert response.content == b"abc"


def test_response_iter_stream() -> None:
    response = Response(200, content=SyncChunks(b"a", b"b"))
    assert list(response.iter_stream()) == [b"a", b"b"]
    with raises_exact(RuntimeError, ITER_TWICE):
        list(response.iter_stream())
    with raises_exact(RuntimeError, CONTENT_SYNC):
        response.content  # noqa: B018
    with raises_exact(RuntimeError, ITER_TWICE):
        response.read()


def test_response_iter_stream_after_read() -> None:
    response = Response(200, content=b"abc")
    response.read()
    with raises_exact(RuntimeError, ITER_TWICE):
        list(response.iter_stream())


def test_response_iter_stream_errors_are_lazy() -> None:
    response = Response(200, content=AsyncChunks(b"a"))
    iterator = response.iter_stream()  # no error yet
    with raises_exact(RuntimeError, ITER_ASYNC):
        next(iterator)


def test_response_sync_methods_on_async_stream() -> None:
    stream = AsyncChunks(b"a")
    response = Response(200, content=stream)
    with raises_exact(RuntimeError, CONTENT_ASYNC):
        response.content  # noqa: B018
    with raises_exact(RuntimeError, READ_ASYNC):
        response.read()
    with raises_exact(RuntimeError, ITER_ASYNC):
        list(response.iter_stream())
    with raises_exact(RuntimeError, CLOSE_ASYNC):
        response.close()
    assert not stream.closed


def test_response_close() -> None:
    stream = SyncChunks(b"a")
    response = Response(200, content=stream)
    response.close()
    assert stream.closed


def test_response_close_without_stream_close() -> None:
    Response(200, content=SyncNoClose()).close()
    Response(200, content=b"abc").close()
    Response(200).close()


def test_response_stream_attribute_is_plain_and_replaceable() -> None:
    response = Response(200)
    stream = SyncChunks(b"replaced")
    response.stream = stream
    assert response.read() == b"replaced"
    response.close()
    assert stream.closed


def test_response_read_error_leaves_content_unset() -> None:
    def broken() -> Iterator[bytes]:
        yield b"a"
        raise OSError("boom")

    response = Response(200, content=broken())
    with pytest.raises(OSError, match="boom"):
        response.read()
    with raises_exact(RuntimeError, CONTENT_SYNC):
        response.content  # noqa: B018


# ---------------------------------------------------------------------------------------------
# Response (async)
# ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_response_aread_bytes() -> None:
    response = Response(200, content=b"Hello, world!")
    with raises_exact(RuntimeError, CONTENT_SYNC):
        response.content  # noqa: B018
    assert await response.aread() == b"Hello, world!"
    assert response.content == b"Hello, world!"
    assert await response.aread() == b"Hello, world!"


@pytest.mark.anyio
async def test_response_aread_async_chunks() -> None:
    response = Response(200, content=AsyncChunks(b"a", b"b", b"c"))
    with raises_exact(RuntimeError, CONTENT_ASYNC):
        response.content  # noqa: B018
    assert await response.aread() == b"abc"
    assert await response.aread() == b"abc"
    assert response.content == b"abc"


@pytest.mark.anyio
async def test_response_aiter_stream() -> None:
    response = Response(200, content=AsyncChunks(b"a", b"b"))
    assert [chunk async for chunk in response.aiter_stream()] == [b"a", b"b"]
    with raises_exact(RuntimeError, AITER_TWICE):
        [chunk async for chunk in response.aiter_stream()]
    with raises_exact(RuntimeError, CONTENT_ASYNC):
        response.content  # noqa: B018
    with raises_exact(RuntimeError, AITER_TWICE):
        await response.aread()


@pytest.mark.anyio
async def test_response_aiter_stream_after_aread() -> None:
    response = Response(200, content=b"abc")
    await response.aread()
    with raises_exact(RuntimeError, AITER_TWICE):
        [chunk async for chunk in response.aiter_stream()]


@pytest.mark.anyio
async def test_response_async_methods_on_sync_stream() -> None:
    stream = SyncChunks(b"a")
    response = Response(200, content=stream)
    with raises_exact(RuntimeError, AREAD_SYNC):
        await response.aread()
    with raises_exact(RuntimeError, AITER_SYNC):
        [chunk async for chunk in response.aiter_stream()]
    with raises_exact(RuntimeError, ACLOSE_SYNC):
        await response.aclose()
    assert not stream.closed


@pytest.mark.anyio
async def test_response_aclose() -> None:
    stream = AsyncChunks(b"a")
    response = Response(200, content=stream)
    await response.aclose()
    assert stream.closed
    await Response(200, content=AsyncNoClose()).aclose()
    await Response(200, content=b"x").aclose()


@pytest.mark.anyio
async def test_response_bytestream_sync_then_async_mix() -> None:
    response = Response(200, content=b"abc")
    assert response.read() == b"abc"
    # The cached content is returned by aread() too.
    assert await response.aread() == b"abc"
