"""The typed one-op helpers of `httpcore.base._ops`: each yields exactly its operation, returns
what the driver sends back, and every opcode is performed by both drivers."""

from __future__ import annotations

import ssl
from typing import Any, Callable, List, Tuple

import pytest

import httpcore
from httpcore.base import ByteStream, _drive, _ops
from httpcore.base._ops import Gen

OPCODES = [
    _ops.READ,
    _ops.WRITE,
    _ops.CLOSE,
    _ops.START_TLS,
    _ops.CONNECT_TCP,
    _ops.CONNECT_UNIX,
    _ops.SLEEP,
    _ops.HANDLE,
    _ops.ITER,
    _ops.NEXT,
    _ops.TRACE,
    _ops.WAIT,
    _ops.LOCK,
    _ops.UNLOCK,
    _ops.CALL,
]

TARGET = object()
REQUEST = httpcore.Request("GET", "http://example.com/")
TCP: _ops.TCPArgs = {
    "host": "example.com",
    "port": 80,
    "local_address": None,
    "timeout": 1.0,
    "socket_options": None,
}
UNIX: _ops.UnixArgs = {"path": "/tmp/x.sock", "timeout": None, "socket_options": None}
TLS: _ops.TLSArgs = {
    "ssl_context": ssl.create_default_context(),
    "server_hostname": "example.com",
    "timeout": 2.0,
}

# (helper, its arguments, the operation it must yield)
CASES: List[Tuple[Callable[..., Gen[Any]], Tuple[Any, ...], Tuple[Any, ...]]] = [
    (_ops.read, (TARGET, 10, 1.5), (_ops.READ, TARGET, 10, 1.5)),
    (_ops.write, (TARGET, b"abc", None), (_ops.WRITE, TARGET, b"abc", None)),
    (_ops.close, (TARGET,), (_ops.CLOSE, TARGET)),
    (_ops.start_tls, (TARGET, TLS), (_ops.START_TLS, TARGET, TLS)),
    (_ops.connect_tcp, (TARGET, TCP), (_ops.CONNECT_TCP, TARGET, TCP)),
    (_ops.connect_unix, (TARGET, UNIX), (_ops.CONNECT_UNIX, TARGET, UNIX)),
    (_ops.sleep, (TARGET, 0.5), (_ops.SLEEP, TARGET, 0.5)),
    (_ops.handle, (TARGET, REQUEST), (_ops.HANDLE, TARGET, REQUEST)),
    (_ops.iterate, (TARGET,), (_ops.ITER, TARGET)),
    (_ops.next_item, (TARGET,), (_ops.NEXT, TARGET)),
    (_ops.trace, (TARGET, "a.b", {"x": 1}), (_ops.TRACE, TARGET, "a.b", {"x": 1})),
    (_ops.wait, (TARGET, 3.0), (_ops.WAIT, TARGET, 3.0)),
    (_ops.lock, (TARGET,), (_ops.LOCK, TARGET)),
    (_ops.unlock, (TARGET,), (_ops.UNLOCK, TARGET)),
    (_ops.call, (len, TARGET, (b"ab",)), (_ops.CALL, len, TARGET, (b"ab",))),
]


@pytest.mark.parametrize(("helper", "args", "op"), CASES, ids=[c[0].__name__ for c in CASES])
def test_helper_yields_its_operation_and_returns_the_result(
    helper: Callable[..., Gen[Any]], args: Tuple[Any, ...], op: Tuple[Any, ...]
) -> None:
    gen = helper(*args)
    assert gen.send(None) == op
    result = object()
    with pytest.raises(StopIteration) as stop:
        gen.send(result)
    # Helpers whose operation has a result return exactly what the driver sent back.
    if op[0] in (_ops.WRITE, _ops.CLOSE, _ops.SLEEP, _ops.TRACE, _ops.WAIT, _ops.LOCK, _ops.UNLOCK):
        assert stop.value.value is None
    else:
        assert stop.value.value is result


def test_every_opcode_has_a_helper_and_both_drivers_perform_it() -> None:
    assert sorted(op[0] for _, _, op in CASES) == sorted(OPCODES)
    direct = {_ops.READ, _ops.WRITE}  # called by the drivers' loops themselves
    assert set(_drive._SYNC_OPS) == set(OPCODES) - direct
    assert set(_drive._ASYNC_OPS) == set(OPCODES) - direct


def _exchange(backend: Any, lock: Any) -> Gen[Tuple[bytes, Any, Any, int]]:
    """A connect, request, response and close written with the helpers only."""
    stream = yield from _ops.connect_tcp(backend, TCP)
    yield from _ops.lock(lock)
    yield from _ops.write(stream, b"GET / HTTP/1.1\r\n\r\n", None)
    data = yield from _ops.read(stream, 1024, None)
    yield from _ops.unlock(lock)
    tls_stream = yield from _ops.start_tls(stream, TLS)
    yield from _ops.sleep(backend, 0.0)
    iterator = yield from _ops.iterate(ByteStream(b"body"))
    first = yield from _ops.next_item(iterator)
    rest = yield from _ops.next_item(iterator)
    assert (first, rest) == (b"body", None)
    size = yield from _ops.call(len, _async_len, (data,))
    yield from _ops.close(stream)
    return data, stream, tls_stream, size


async def _async_len(data: bytes) -> int:
    return len(data)


def test_helpers_under_the_sync_driver() -> None:
    backend = httpcore.MockBackend([b"HTTP/1.1 200 OK\r\n\r\n"])
    data, stream, tls_stream, size = _drive.drive(_exchange(backend, _drive.SyncIO.io_lock()))
    assert data == b"HTTP/1.1 200 OK\r\n\r\n"
    assert isinstance(stream, httpcore.MockStream) and tls_stream is stream  # mock TLS: itself
    assert size == len(data)
    with pytest.raises(httpcore.ReadError):  # closed by the CLOSE operation
        stream.read(1)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_helpers_under_the_async_driver(anyio_backend: str) -> None:
    backend = httpcore.AsyncMockBackend([b"HTTP/1.1 200 OK\r\n\r\n"])
    data, stream, tls_stream, size = await _drive.adrive(
        _exchange(backend, _drive.AsyncIO.io_lock())
    )
    assert data == b"HTTP/1.1 200 OK\r\n\r\n"
    assert isinstance(stream, httpcore.AsyncMockStream) and tls_stream is stream
    assert size == len(data)
    with pytest.raises(httpcore.ReadError):
        await stream.read(1)
