"""The async client against real servers on 127.0.0.1, under asyncio and trio.

Concurrency, streaming in both directions, HTTPS, HTTP proxies (forwarding and CONNECT, with
and without auth), coroutine trace callbacks, and the RuntimeError/TypeError messages of
API.md §9.
"""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any, AsyncIterator, Dict, List, Tuple

import anyio
import pytest

import httpcore
from httpcore import AsyncConnectionPool, AsyncHTTPProxy

HELLO = b"Hello, world!"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


pytestmark = pytest.mark.anyio


def header(response: httpcore.Response, name: bytes) -> bytes:
    values = [v for k, v in response.headers if k.lower() == name]
    assert len(values) == 1, response.headers
    return values[0]


# --------------------------------------------------------------------------------------------
# Plain HTTP


async def test_get_and_post(anyio_backend: str, server: Any) -> None:
    async with AsyncConnectionPool() as pool:
        response = await pool.request("GET", f"{server.url}/")
        assert (response.status, response.content) == (200, HELLO)
        assert response.extensions["http_version"] == b"HTTP/1.1"
        assert isinstance(response.extensions["reason_phrase"], bytes)

        response = await pool.request("POST", f"{server.url}/echo", content=b"some data")
        assert (response.status, response.content) == (200, b"some data")
        assert header(response, b"x-received-length") == b"9"
        # Both requests went over the same keep-alive connection.
        assert len(pool.connections) == 1
        assert repr(pool) == (
            "<AsyncConnectionPool [Requests: 0 active, 0 queued | Connections: 0 active, 1 idle]>"
        )


async def test_concurrent_requests_share_a_bounded_pool(anyio_backend: str, server: Any) -> None:
    """50 tasks, max_connections=10: never more than 10 connections, all reused afterwards."""
    most_connections = 0
    statuses: List[int] = []
    async with AsyncConnectionPool(max_connections=10) as pool:

        async def one(index: int) -> None:
            nonlocal most_connections
            async with pool.stream("GET", f"{server.url}/bytes/{1000 + index}") as response:
                most_connections = max(most_connections, len(pool.connections))
                body = b"".join([chunk async for chunk in response.aiter_stream()])
                assert body == b"x" * (1000 + index)
                statuses.append(response.status)
            most_connections = max(most_connections, len(pool.connections))

        async with anyio.create_task_group() as tg:
            for index in range(50):
                tg.start_soon(one, index)

        assert statuses == [200] * 50
        # Every task enters the pool before any connection is up: the first 10 each open one,
        # the other 40 wait; none is closed (hypercorn keeps them alive for 5 s).
        assert most_connections == 10
        assert len(pool.connections) == 10
        assert all(c.is_idle() for c in pool.connections)
        assert repr(pool).startswith("<AsyncConnectionPool [Requests: 0 active, 0 queued")
        # Every connection was used for more than one request.
        assert sum(int(c.info().rsplit(" ", 1)[1]) for c in pool.connections) == 50


async def test_stream_large_body(anyio_backend: str, server: Any) -> None:
    size = 64 * 1024
    async with AsyncConnectionPool() as pool:
        async with pool.stream("GET", f"{server.url}/stream/128/{size}") as response:
            assert response.status == 200
            assert header(response, b"transfer-encoding") == b"chunked"
            total = 0
            async for chunk in response.aiter_stream():
                assert chunk == b"x" * len(chunk)
                total += len(chunk)
        assert total == 128 * size
        assert [c.is_idle() for c in pool.connections] == [True]

        with pytest.raises(RuntimeError, match="more than once"):
            async with pool.stream("GET", f"{server.url}/bytes/10") as response:
                await response.aread()
                async for _ in response.aiter_stream():
                    pass  # pragma: no cover


async def test_chunked_upload_from_async_generator(anyio_backend: str, server: Any) -> None:
    chunks = [bytes([65 + i]) * (10_000 + i) for i in range(20)]

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            await anyio.sleep(0)
            yield chunk

    async with AsyncConnectionPool() as pool:
        response = await pool.request("POST", f"{server.url}/echo", content=body())
        assert response.status == 200
        assert response.content == b"".join(chunks)
        assert header(response, b"x-received-length") == str(len(b"".join(chunks))).encode()

        # The helper added Transfer-Encoding: chunked; the server saw it.
        response = await pool.request("POST", f"{server.url}/echo_headers", content=body())
        seen = dict(json.loads(response.content)["headers"])
        assert seen.get("transfer-encoding") == "chunked"


async def test_handle_async_request_and_aclose(anyio_backend: str, server: Any) -> None:
    async with AsyncConnectionPool() as pool:
        request = httpcore.Request("GET", f"{server.url}/", headers=[(b"Host", b"localhost")])
        response = await pool.handle_async_request(request)
        assert repr(pool) == (
            "<AsyncConnectionPool [Requests: 1 active, 0 queued | Connections: 1 active, 0 idle]>"
        )
        assert await response.aread() == HELLO
        await response.aclose()
        assert repr(pool) == (
            "<AsyncConnectionPool [Requests: 0 active, 0 queued | Connections: 0 active, 1 idle]>"
        )
    assert repr(pool) == (
        "<AsyncConnectionPool [Requests: 0 active, 0 queued | Connections: 0 active, 0 idle]>"
    )


async def test_connection_close_response_is_not_kept(anyio_backend: str, server: Any) -> None:
    async with AsyncConnectionPool() as pool:
        response = await pool.request("GET", f"{server.url}/close")
        assert response.content == b"closing"
        assert pool.connections == []


def closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # type: ignore[no-any-return]


async def test_connect_error(anyio_backend: str) -> None:
    async with AsyncConnectionPool() as pool:
        with pytest.raises(httpcore.ConnectError):
            await pool.request("GET", f"http://127.0.0.1:{closed_port()}/")
        assert pool.connections == []


async def test_read_timeout(anyio_backend: str, server: Any) -> None:
    async with AsyncConnectionPool() as pool:
        with pytest.raises(httpcore.ReadTimeout):
            await pool.request(
                "GET", f"{server.url}/slow/2000", extensions={"timeout": {"read": 0.05}}
            )
        assert pool.connections == []
        response = await pool.request("GET", f"{server.url}/")
        assert response.status == 200


async def test_pool_timeout(anyio_backend: str, server: Any) -> None:
    async with AsyncConnectionPool(max_connections=1) as pool:
        async with pool.stream("GET", f"{server.url}/"):
            with pytest.raises(httpcore.PoolTimeout):
                await pool.request("GET", f"{server.url}/", extensions={"timeout": {"pool": 0.05}})
        assert repr(pool).startswith("<AsyncConnectionPool [Requests: 0 active, 0 queued")


# --------------------------------------------------------------------------------------------
# HTTPS


async def test_https(
    anyio_backend: str, tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    async with AsyncConnectionPool(ssl_context=client_ssl_context) as pool:
        for url in (tls_server.url, tls_server.localhost_url):
            response = await pool.request("GET", f"{url}/")
            assert (response.status, response.content) == (200, HELLO)
            assert response.extensions["http_version"] == b"HTTP/1.1"
            stream = response.extensions["network_stream"]
            assert stream.get_extra_info("ssl_object").version().startswith("TLS")
        assert len(pool.connections) == 2  # 127.0.0.1 and localhost are different origins


async def test_https_untrusted_certificate(anyio_backend: str, tls_server: Any) -> None:
    async with AsyncConnectionPool() as pool:  # the default context does not trust the test CA
        with pytest.raises(httpcore.ConnectError):
            await pool.request("GET", f"{tls_server.url}/")
        assert pool.connections == []


# --------------------------------------------------------------------------------------------
# Proxies


async def test_forward_proxy(anyio_backend: str, server: Any, http_proxy: Any) -> None:
    async with AsyncHTTPProxy(proxy_url=http_proxy.url) as proxy:
        for _ in range(2):
            response = await proxy.request("GET", f"{server.url}/")
            assert (response.status, response.content) == (200, HELLO)
        assert http_proxy.forwards == 2
        assert http_proxy.connects == 0
        assert http_proxy.connections == 1  # the connection to the proxy is kept alive
        assert http_proxy.request_lines[0] == f"GET {server.url}/ HTTP/1.1"
        assert repr(proxy) == (
            "<AsyncHTTPProxy [Requests: 0 active, 0 queued | Connections: 0 active, 1 idle]>"
        )


async def test_tunnel_proxy(
    anyio_backend: str, tls_server: Any, http_proxy: Any, client_ssl_context: ssl.SSLContext
) -> None:
    async with AsyncHTTPProxy(proxy_url=http_proxy.url, ssl_context=client_ssl_context) as proxy:
        for _ in range(2):
            response = await proxy.request("GET", f"{tls_server.url}/")
            assert (response.status, response.content) == (200, HELLO)
        assert http_proxy.connects == 1  # one tunnel, reused
        assert http_proxy.forwards == 0
        assert http_proxy.request_lines == [f"CONNECT 127.0.0.1:{tls_server.port} HTTP/1.1"]


async def test_proxy_through_pool_argument(
    anyio_backend: str,
    server: Any,
    tls_server: Any,
    http_proxy: Any,
    client_ssl_context: ssl.SSLContext,
) -> None:
    pool = AsyncConnectionPool(proxy=httpcore.Proxy(http_proxy.url), ssl_context=client_ssl_context)
    async with pool:
        assert (await pool.request("GET", f"{server.url}/")).content == HELLO
        assert (await pool.request("GET", f"{tls_server.url}/")).content == HELLO
    assert (http_proxy.forwards, http_proxy.connects) == (1, 1)


@pytest.mark.parametrize("target", ["forward", "tunnel"])
async def test_proxy_auth(
    anyio_backend: str,
    target: str,
    server: Any,
    tls_server: Any,
    http_proxy_auth: Any,
    client_ssl_context: ssl.SSLContext,
) -> None:
    url = f"{server.url}/" if target == "forward" else f"{tls_server.url}/"
    async with AsyncHTTPProxy(
        proxy_url=http_proxy_auth.url, proxy_auth=("user", "pass"), ssl_context=client_ssl_context
    ) as proxy:
        response = await proxy.request("GET", url)
        assert (response.status, response.content) == (200, HELLO)
    assert ("Proxy-Authorization", "Basic dXNlcjpwYXNz") in http_proxy_auth.last_headers

    async with AsyncHTTPProxy(
        proxy_url=http_proxy_auth.url, ssl_context=client_ssl_context
    ) as proxy:
        if target == "forward":
            response = await proxy.request("GET", url)
            assert response.status == 407
        else:
            with pytest.raises(httpcore.ProxyError, match="407"):
                await proxy.request("GET", url)
            assert proxy.connections == []


async def test_https_proxy(
    anyio_backend: str,
    server: Any,
    tls_server: Any,
    https_proxy: Any,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """TLS to the proxy, and for https targets TLS inside that TLS."""
    async with AsyncHTTPProxy(
        proxy_url=https_proxy.url,
        proxy_ssl_context=client_ssl_context,
        ssl_context=client_ssl_context,
    ) as proxy:
        assert (await proxy.request("GET", f"{server.url}/")).content == HELLO
        assert (await proxy.request("GET", f"{tls_server.url}/")).content == HELLO
    assert (https_proxy.forwards, https_proxy.connects) == (1, 1)


# --------------------------------------------------------------------------------------------
# Trace callbacks


async def test_trace_callback_coroutine(
    anyio_backend: str, tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    events: List[Tuple[str, Dict[str, Any]]] = []

    async def trace(name: str, info: Dict[str, Any]) -> None:
        await anyio.sleep(0)  # a real coroutine that suspends
        events.append((name, info))

    async with AsyncConnectionPool(ssl_context=client_ssl_context) as pool:
        await pool.request("GET", f"{tls_server.url}/", extensions={"trace": trace})
    steps = [
        "connection.connect_tcp",
        "connection.start_tls",
        "http11.send_request_headers",
        "http11.send_request_body",
        "http11.receive_response_headers",
        "http11.receive_response_body",
        "http11.response_closed",
    ]
    expected = [f"{step}.{phase}" for step in steps for phase in ("started", "complete")]
    assert [name for name, _ in events] == expected
    info = dict(events)
    assert info["connection.connect_tcp.started"]["port"] == tls_server.port
    assert info["connection.start_tls.started"]["server_hostname"] == "127.0.0.1"
    assert info["http11.receive_response_headers.complete"]["return_value"][:2] == (
        b"HTTP/1.1",
        200,
    )


async def test_trace_through_tunnel(
    anyio_backend: str, tls_server: Any, http_proxy: Any, client_ssl_context: ssl.SSLContext
) -> None:
    names: List[str] = []

    async def trace(name: str, info: Dict[str, Any]) -> None:
        names.append(name)

    async with AsyncHTTPProxy(proxy_url=http_proxy.url, ssl_context=client_ssl_context) as proxy:
        await proxy.request("GET", f"{tls_server.url}/", extensions={"trace": trace})
    assert names[:2] == ["connection.connect_tcp.started", "connection.connect_tcp.complete"]
    assert "proxy.start_tls.started" in names
    assert names.index("proxy.start_tls.complete") < names.index(
        "http11.receive_response_body.started"
    )
    assert names[-1] == "http11.response_closed.complete"


async def test_sync_trace_callback_on_async_pool(anyio_backend: str, server: Any) -> None:
    def trace(name: str, info: Dict[str, Any]) -> None:
        pass

    async with AsyncConnectionPool() as pool:
        with pytest.raises(TypeError) as exc_info:
            await pool.request("GET", f"{server.url}/", extensions={"trace": trace})
        assert str(exc_info.value) == (
            "If you're using an asynchronous interface, the callback of the `trace` extension "
            "should be an asynchronous function rather than a normal function."
        )
        assert pool.connections == []
        assert (await pool.request("GET", f"{server.url}/")).status == 200


# --------------------------------------------------------------------------------------------
# Unsupported environments (API.md §9)


def test_unsupported_async_environment(server: Any) -> None:
    """Driving the coroutine by hand, outside any event loop."""
    pool = AsyncConnectionPool()
    coroutine = pool.request("GET", f"{server.url}/")
    with pytest.raises(RuntimeError) as exc_info:
        coroutine.send(None)
    assert str(exc_info.value) == "Running under an unsupported async environment."
    assert pool.connections == []
    assert repr(pool) == (
        "<AsyncConnectionPool [Requests: 0 active, 0 queued | Connections: 0 active, 0 idle]>"
    )


def test_unsupported_environment_with_explicit_backend(server: Any) -> None:
    pool = AsyncConnectionPool(network_backend=httpcore.AnyIOBackend())
    coroutine = pool.request("GET", f"{server.url}/")
    with pytest.raises(RuntimeError):
        coroutine.send(None)
    coroutine.close()


def test_async_pool_construction_does_no_io() -> None:
    # No event loop is needed to build (or repr) the async classes.
    pool = AsyncConnectionPool(max_connections=3)
    assert repr(pool) == (
        "<AsyncConnectionPool [Requests: 0 active, 0 queued | Connections: 0 active, 0 idle]>"
    )
    proxy = AsyncHTTPProxy(proxy_url="http://127.0.0.1:1")
    assert repr(proxy).startswith("<AsyncHTTPProxy [")
