"""The async backends against real sockets on 127.0.0.1: `AnyIOBackend` and `AutoBackend` under
asyncio and trio, `TrioBackend` under trio (connects, reads, writes, timeouts, TLS, a cancelled
write resumed in order); and `AutoBackend`'s errors outside a supported environment."""

from __future__ import annotations

import socket
import ssl
import sys
import threading

import backend_helpers
import pytest
from backend_helpers import BIG, HAS_UNIX, Server

import httpcore.base._exceptions as exc_mod
from httpcore.aio._anyio import AnyIOBackend
from httpcore.aio._auto import AutoBackend
from httpcore.aio._trio import TrioBackend
from httpcore.base._backends import AsyncNetworkBackend

anyio_backend = backend_helpers.anyio_backend
ca, client_context, echo_server, hangup_server, refusing_port, server_context, stall_server = (
    backend_helpers.ca,
    backend_helpers.client_context,
    backend_helpers.echo_server,
    backend_helpers.hangup_server,
    backend_helpers.refusing_port,
    backend_helpers.server_context,
    backend_helpers.stall_server,
)
tls_echo_server, tls_proxy_server, unix_echo_server, unresponsive_port, untrusting_context = (
    backend_helpers.tls_echo_server,
    backend_helpers.tls_proxy_server,
    backend_helpers.unix_echo_server,
    backend_helpers.unresponsive_port,
    backend_helpers.untrusting_context,
)


# --------------------------------------------------------------------------------------------
# Async backends: AnyIOBackend and AutoBackend under asyncio and trio, TrioBackend under trio.


ASYNC_COMBINATIONS = [
    pytest.param("asyncio", "anyio", id="asyncio-AnyIOBackend"),
    pytest.param("asyncio", "auto", id="asyncio-AutoBackend"),
    pytest.param("trio", "anyio", id="trio-AnyIOBackend"),
    pytest.param("trio", "trio", id="trio-TrioBackend"),
    pytest.param("trio", "auto", id="trio-AutoBackend"),
]


each_async_backend = pytest.mark.parametrize(("anyio_backend", "backend_name"), ASYNC_COMBINATIONS)


def make_backend(name: str) -> AsyncNetworkBackend:
    if name == "anyio":
        return AnyIOBackend()
    if name == "trio":
        return TrioBackend()
    return AutoBackend()


def timeout_cause(anyio_backend: str, backend_name: str) -> type[BaseException]:
    if backend_name == "trio" or (backend_name == "auto" and anyio_backend == "trio"):
        import trio

        too_slow: type[BaseException] = trio.TooSlowError
        return too_slow
    return TimeoutError


@pytest.mark.anyio
@each_async_backend
async def test_async_connect_read_write_close(echo_server: Server, backend_name: str) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", echo_server.port, timeout=5)
    await stream.write(b"")
    await stream.write(b"hello", timeout=5)
    assert await stream.read(5, timeout=5) == b"hello"
    await stream.write(b"world")
    assert await stream.read(5) == b"world"
    await stream.aclose()
    with pytest.raises(exc_mod.ReadError):
        await stream.read(1)
    with pytest.raises(exc_mod.WriteError):
        await stream.write(b"x")


@pytest.mark.anyio
@each_async_backend
async def test_async_auto_picks_native_stream(
    echo_server: Server, anyio_backend: str, backend_name: str
) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", echo_server.port)
    expected = {"anyio": "AnyIOStream", "trio": "TrioStream"}.get(backend_name)
    if expected is None:
        # The automatic backend uses native asyncio transports under asyncio.
        expected = "TrioStream" if anyio_backend == "trio" else "AsyncIOStream"
    assert type(stream).__name__ == expected
    await stream.aclose()


@pytest.mark.anyio
@each_async_backend
async def test_async_eof_and_is_readable(hangup_server: Server, backend_name: str) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", hangup_server.port)
    assert stream.get_extra_info("is_readable") is False
    await stream.write(b"x")  # the server hangs up on receiving it
    assert await stream.read(10, timeout=5) == b""
    assert stream.get_extra_info("is_readable") is True
    await stream.aclose()
    assert stream.get_extra_info("is_readable") is True


@pytest.mark.anyio
@each_async_backend
async def test_async_read_timeout(
    echo_server: Server, anyio_backend: str, backend_name: str
) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", echo_server.port)
    # Not empty (asyncio, anyio and trio time out with an exception without a message).
    with pytest.raises(exc_mod.ReadTimeout, match=r"^timed out$") as info:
        await stream.read(10, timeout=0.05)
    assert isinstance(info.value.__cause__, timeout_cause(anyio_backend, backend_name))
    await stream.write(b"still works")
    assert await stream.read(100, timeout=5) == b"still works"
    await stream.aclose()


@pytest.mark.anyio
@each_async_backend
async def test_async_write_timeout(stall_server: Server, backend_name: str) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", stall_server.port)
    with pytest.raises(exc_mod.WriteTimeout, match=r"^timed out$"):
        await stream.write(BIG, timeout=0.2)
    await stream.aclose()


@pytest.mark.anyio
@each_async_backend
async def test_async_connect_refused(refusing_port: int, backend_name: str) -> None:
    with pytest.raises(exc_mod.ConnectError) as info:
        await make_backend(backend_name).connect_tcp("127.0.0.1", refusing_port)
    assert isinstance(info.value.__cause__, OSError)
    if backend_name == "anyio":
        assert str(info.value) == "All connection attempts failed"


@pytest.mark.anyio
@each_async_backend
async def test_async_connect_timeout(unresponsive_port: int, backend_name: str) -> None:
    with pytest.raises(exc_mod.ConnectTimeout, match=r"^timed out$"):
        await make_backend(backend_name).connect_tcp("127.0.0.1", unresponsive_port, timeout=0.1)


@pytest.mark.anyio
@each_async_backend
async def test_async_extra_info_and_socket_options(echo_server: Server, backend_name: str) -> None:
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    stream = await make_backend(backend_name).connect_tcp(
        "127.0.0.1", echo_server.port, local_address="127.0.0.1", socket_options=options
    )
    sock = stream.get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    client_addr = stream.get_extra_info("client_addr")
    assert client_addr[0] == "127.0.0.1"
    assert client_addr == sock.getsockname()
    assert stream.get_extra_info("server_addr") == ("127.0.0.1", echo_server.port)
    assert stream.get_extra_info("ssl_object") is None
    assert stream.get_extra_info("is_readable") is False
    assert stream.get_extra_info("nonsense") is None
    await stream.aclose()


@pytest.mark.anyio
@each_async_backend
async def test_async_bad_socket_option(echo_server: Server, backend_name: str) -> None:
    with pytest.raises(exc_mod.ConnectError):
        await make_backend(backend_name).connect_tcp(
            "127.0.0.1", echo_server.port, socket_options=[(socket.SOL_SOCKET, 987654, 1)]
        )


@pytest.mark.anyio
@each_async_backend
@pytest.mark.skipif(not HAS_UNIX, reason="no AF_UNIX")
async def test_async_connect_unix_socket(unix_echo_server: Server, backend_name: str) -> None:
    backend = make_backend(backend_name)
    options = [(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)]
    stream = await backend.connect_unix_socket(
        unix_echo_server.address, timeout=5, socket_options=options
    )
    await stream.write(b"over unix")
    assert await stream.read(100, timeout=5) == b"over unix"
    await stream.aclose()
    with pytest.raises(exc_mod.ConnectError):
        await backend.connect_unix_socket("/nonexistent/socket/path", timeout=5)


@pytest.mark.anyio
@each_async_backend
async def test_async_start_tls(
    tls_echo_server: Server, client_context: ssl.SSLContext, backend_name: str
) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", tls_echo_server.port)
    tls = await stream.start_tls(client_context, server_hostname="localhost", timeout=5)
    ssl_object = tls.get_extra_info("ssl_object")
    assert ssl_object.selected_alpn_protocol() == "http/1.1"
    assert ssl_object.version().startswith("TLS")
    assert tls.get_extra_info("server_addr") == ("127.0.0.1", tls_echo_server.port)
    assert tls.get_extra_info("socket") is not None
    await tls.write(b"secret")
    assert await tls.read(100, timeout=5) == b"secret"
    # (Only now: TLS 1.3 session tickets can arrive unread right after the handshake.)
    assert tls.get_extra_info("is_readable") is False
    await tls.aclose()
    with pytest.raises(exc_mod.ReadError):
        await tls.read(1)


@pytest.mark.anyio
@each_async_backend
async def test_async_start_tls_bad_certificate(
    tls_echo_server: Server, untrusting_context: ssl.SSLContext, backend_name: str
) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", tls_echo_server.port)
    with pytest.raises(exc_mod.ConnectError):
        await stream.start_tls(untrusting_context, server_hostname="localhost", timeout=5)
    with pytest.raises(exc_mod.ReadError):  # the stream was closed
        await stream.read(1)


@pytest.mark.anyio
@each_async_backend
async def test_async_start_tls_timeout(
    stall_server: Server, client_context: ssl.SSLContext, backend_name: str
) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", stall_server.port)
    with pytest.raises(exc_mod.ConnectTimeout, match=r"^timed out$"):
        await stream.start_tls(client_context, server_hostname="localhost", timeout=0.1)


@pytest.mark.anyio
@each_async_backend
async def test_async_tls_in_tls(
    tls_proxy_server: Server, client_context: ssl.SSLContext, backend_name: str
) -> None:
    stream = await make_backend(backend_name).connect_tcp("127.0.0.1", tls_proxy_server.port)
    outer = await stream.start_tls(client_context, server_hostname="localhost", timeout=5)
    inner = await outer.start_tls(client_context, server_hostname="localhost", timeout=5)
    inner_ssl = inner.get_extra_info("ssl_object")
    assert inner_ssl is not outer.get_extra_info("ssl_object")
    assert inner_ssl.selected_alpn_protocol() == "http/1.1"
    assert inner.get_extra_info("server_addr") == ("127.0.0.1", tls_proxy_server.port)
    await inner.write(b"tunnelled")
    assert await inner.read(100, timeout=5) == b"tunnelled"
    await inner.aclose()


def slurp(conn: socket.socket, server: Server) -> None:
    """Read nothing until `server.go` is set; then `server.expect` bytes, into `server.got`."""
    server.go.wait(30)  # type: ignore[attr-defined]
    chunks, left = [], server.expect  # type: ignore[attr-defined]
    while left > 0:
        data = conn.recv(min(left, 1 << 20))
        if not data:
            break
        chunks.append(data)
        left -= len(data)
    server.got.append(b"".join(chunks))  # type: ignore[attr-defined]


RESUMABLE = [
    pytest.param("asyncio", "auto", id="asyncio-AutoBackend"),
    pytest.param("trio", "trio", id="trio-TrioBackend"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("anyio_backend", "backend_name"), RESUMABLE)
@pytest.mark.parametrize("tls", ["plain", "tls", "memory-tls"])
async def test_async_cancelled_write_is_resumed_in_order(
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    backend_name: str,
    tls: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import anyio

    import httpcore.aio._asyncio

    if tls == "memory-tls":
        monkeypatch.setattr(httpcore.aio._asyncio, "NATIVE_TLS_LIMITED", True)
    server = Server(slurp, ssl_context=None if tls == "plain" else server_context)
    server.go = threading.Event()  # type: ignore[attr-defined]
    server.got = []  # type: ignore[attr-defined]
    server.expect = len(BIG) + 3  # type: ignore[attr-defined]
    try:
        stream = await make_backend(backend_name).connect_tcp("127.0.0.1", server.port)
        if tls != "plain":
            stream = await stream.start_tls(client_context, server_hostname="localhost")
        assert getattr(stream, "resumable_writes", False)
        await stream.write(b"<")
        async with anyio.create_task_group() as tg:
            tg.start_soon(stream.write, BIG)
            await anyio.wait_all_tasks_blocked()  # stuck: the server reads nothing yet
            tg.cancel_scope.cancel()
        server.go.set()  # type: ignore[attr-defined]
        await stream.resume_write(b">", timeout=30)  # type: ignore[attr-defined]
        await stream.write(b"!")
        # Closed once the server has it all (the server's unread TLS session tickets would
        # make an earlier close a reset).
        await anyio.to_thread.run_sync(lambda: [t.join(30) for t in server.threads])
        await stream.aclose()
    finally:
        server.go.set()  # type: ignore[attr-defined]
        server.close()
    got = server.got[0]  # type: ignore[attr-defined]
    assert len(got) == len(BIG) + 3
    assert got == b"<" + BIG + b">!"


@pytest.mark.anyio
@each_async_backend
async def test_async_sleep(backend_name: str) -> None:
    await make_backend(backend_name).sleep(0)


# --------------------------------------------------------------------------------------------
# AutoBackend environment errors


@pytest.mark.anyio
async def test_auto_unsupported_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import sniffio

    monkeypatch.setattr(sniffio, "current_async_library", lambda: "curio")
    with pytest.raises(RuntimeError) as info:
        await AutoBackend().sleep(0)
    assert str(info.value) == "Running under an unsupported async environment."


@pytest.mark.anyio
async def test_auto_missing_library(monkeypatch: pytest.MonkeyPatch, anyio_backend: str) -> None:
    # The library that is running cannot be imported (anew) by the backend selection.
    monkeypatch.setitem(sys.modules, "anyio" if anyio_backend == "asyncio" else "trio", None)
    with pytest.raises(RuntimeError) as info:
        await AutoBackend().sleep(0)
    extra = "asyncio" if anyio_backend == "asyncio" else "trio"
    assert str(info.value) == (
        f"Running with {extra} requires installation of 'httpcore[{extra}]'."
    )


def test_auto_outside_event_loop() -> None:
    coroutine = AutoBackend().sleep(0)
    with pytest.raises(RuntimeError, match=r"^Running under an unsupported async environment\.$"):
        coroutine.send(None)
    coroutine.close()
