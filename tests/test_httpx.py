"""httpx 0.28, unchanged, on top of this httpcore: sync and async (asyncio and trio) clients
against the local servers, HTTPS, HTTP/2, proxies, and the mapping of httpcore's exceptions
to httpx's."""

from __future__ import annotations

import socket
import ssl
from typing import Any, AsyncIterator, Callable, Iterator

import anyio
import httpx
import pytest

HELLO = b"Hello, world!"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


def closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # type: ignore[no-any-return]


def silent_server(raw_server: Callable[..., Any]) -> Any:
    """A TCP server that accepts and reads but never answers (so TLS never completes)."""

    def handler(sock: socket.socket, server: Any) -> None:
        while sock.recv(65536):
            pass

    return raw_server(handler)


def test_httpx_uses_this_httpcore() -> None:
    import httpcore

    transport = httpx.HTTPTransport()
    assert type(transport._pool) is httpcore.ConnectionPool
    assert type(httpx.AsyncHTTPTransport()._pool) is httpcore.AsyncConnectionPool


# --------------------------------------------------------------------------------------------
# Sync client


def test_client_get_post_stream(server: Any) -> None:
    with httpx.Client() as client:
        response = client.get(f"{server.url}/")
        assert (response.status_code, response.content) == (200, HELLO)
        assert response.http_version == "HTTP/1.1"

        response = client.post(f"{server.url}/echo", content=b"payload")
        assert response.content == b"payload"

        response = client.post(f"{server.url}/echo", json={"a": 1})
        assert response.json() == {"a": 1}

        def chunks() -> Iterator[bytes]:
            yield b"abc"
            yield b"def"

        response = client.post(f"{server.url}/echo", content=chunks())
        assert response.content == b"abcdef"

        with client.stream("GET", f"{server.url}/stream/10/1000") as response:
            assert response.status_code == 200
            assert sum(len(chunk) for chunk in response.iter_bytes()) == 10_000

        pool = client._transport._pool  # type: ignore[attr-defined]
        assert len(pool.connections) == 1  # all over one keep-alive connection


def test_client_https(tls_server: Any, client_ssl_context: ssl.SSLContext) -> None:
    with httpx.Client(verify=client_ssl_context) as client:
        response = client.get(f"{tls_server.url}/")
        assert (response.status_code, response.content) == (200, HELLO)
        assert response.http_version == "HTTP/1.1"
        response = client.get(f"{tls_server.localhost_url}/http_version")
        assert response.text == "1.1"


def test_client_https_untrusted(tls_server: Any) -> None:
    with httpx.Client() as client:
        with pytest.raises(httpx.ConnectError):
            client.get(f"{tls_server.url}/")


def test_client_http2(tls_server: Any, client_ssl_context: ssl.SSLContext) -> None:
    with httpx.Client(verify=client_ssl_context, http2=True) as client:
        response = client.get(f"{tls_server.url}/")
        assert (response.status_code, response.content) == (200, HELLO)
        assert response.http_version == "HTTP/2"
        assert client.get(f"{tls_server.url}/http_version").text == "2"


def test_client_forward_proxy(server: Any, http_proxy: Any) -> None:
    with httpx.Client(proxy=http_proxy.url) as client:
        response = client.get(f"{server.url}/")
        assert (response.status_code, response.content) == (200, HELLO)
    assert (http_proxy.forwards, http_proxy.connects) == (1, 0)


def test_client_tunnel_proxy(
    tls_server: Any, http_proxy: Any, client_ssl_context: ssl.SSLContext
) -> None:
    with httpx.Client(proxy=http_proxy.url, verify=client_ssl_context) as client:
        response = client.get(f"{tls_server.url}/")
        assert (response.status_code, response.content) == (200, HELLO)
    assert (http_proxy.forwards, http_proxy.connects) == (0, 1)


def test_client_proxy_auth(
    server: Any, tls_server: Any, http_proxy_auth: Any, client_ssl_context: ssl.SSLContext
) -> None:
    proxy_url = http_proxy_auth.url.replace("http://", "http://user:pass@")
    with httpx.Client(proxy=proxy_url, verify=client_ssl_context) as client:
        assert client.get(f"{server.url}/").content == HELLO
        assert client.get(f"{tls_server.url}/").content == HELLO
    with httpx.Client(proxy=http_proxy_auth.url, verify=client_ssl_context) as client:
        assert client.get(f"{server.url}/").status_code == 407
        with pytest.raises(httpx.ProxyError):
            client.get(f"{tls_server.url}/")


def test_client_read_timeout(server: Any) -> None:
    with httpx.Client(timeout=httpx.Timeout(5.0, read=0.05)) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"{server.url}/slow/2000")
        assert client.get(f"{server.url}/").status_code == 200


def test_client_connect_timeout(raw_server: Callable[..., Any]) -> None:
    server = silent_server(raw_server)
    with httpx.Client(timeout=httpx.Timeout(5.0, connect=0.05)) as client:
        with pytest.raises(httpx.ConnectTimeout):
            client.get(f"https://127.0.0.1:{server.port}/")


def test_client_pool_timeout(server: Any) -> None:
    limits = httpx.Limits(max_connections=1)
    with httpx.Client(limits=limits, timeout=httpx.Timeout(5.0, pool=0.05)) as client:
        with client.stream("GET", f"{server.url}/"):
            with pytest.raises(httpx.PoolTimeout):
                client.get(f"{server.url}/")
        assert client.get(f"{server.url}/").status_code == 200


def test_client_connect_error() -> None:
    with httpx.Client() as client:
        with pytest.raises(httpx.ConnectError):
            client.get(f"http://127.0.0.1:{closed_port()}/")


def test_client_remote_protocol_error(raw_server: Callable[..., Any]) -> None:
    server = raw_server(b"this is not HTTP\r\n\r\n")
    with httpx.Client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(server.url)


# --------------------------------------------------------------------------------------------
# Async client, under asyncio and trio


@pytest.mark.anyio
async def test_async_client_get_post_stream(anyio_backend: str, server: Any) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{server.url}/")
        assert (response.status_code, response.content) == (200, HELLO)

        response = await client.post(f"{server.url}/echo", content=b"payload")
        assert response.content == b"payload"

        async def chunks() -> AsyncIterator[bytes]:
            yield b"abc"
            yield b"def"

        response = await client.post(f"{server.url}/echo", content=chunks())
        assert response.content == b"abcdef"

        async with client.stream("GET", f"{server.url}/stream/10/1000") as response:
            total = 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
            assert total == 10_000


@pytest.mark.anyio
async def test_async_client_concurrent(anyio_backend: str, server: Any) -> None:
    limits = httpx.Limits(max_connections=5)
    async with httpx.AsyncClient(limits=limits) as client:
        results = []

        async def one(index: int) -> None:
            response = await client.get(f"{server.url}/bytes/{index}")
            results.append(len(response.content) == index)

        async with anyio.create_task_group() as tg:
            for index in range(30):
                tg.start_soon(one, index)
        assert results == [True] * 30
        # All 30 tasks reach the pool before a connection is up: 5 are opened, all kept.
        assert len(client._transport._pool.connections) == 5  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_async_client_https(
    anyio_backend: str, tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    async with httpx.AsyncClient(verify=client_ssl_context) as client:
        response = await client.get(f"{tls_server.url}/")
        assert (response.status_code, response.content) == (200, HELLO)
        assert response.http_version == "HTTP/1.1"


@pytest.mark.anyio
async def test_async_client_http2(
    anyio_backend: str, tls_server: Any, client_ssl_context: ssl.SSLContext
) -> None:
    async with httpx.AsyncClient(verify=client_ssl_context, http2=True) as client:
        responses = []

        async def one() -> None:
            responses.append(await client.get(f"{tls_server.url}/http_version"))

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(one)
        assert [(r.http_version, r.text) for r in responses] == [("HTTP/2", "2")] * 5
        assert len(client._transport._pool.connections) == 1  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_async_client_proxies(
    anyio_backend: str,
    server: Any,
    tls_server: Any,
    http_proxy: Any,
    client_ssl_context: ssl.SSLContext,
) -> None:
    async with httpx.AsyncClient(proxy=http_proxy.url, verify=client_ssl_context) as client:
        assert (await client.get(f"{server.url}/")).content == HELLO
        assert (await client.get(f"{tls_server.url}/")).content == HELLO
    assert (http_proxy.forwards, http_proxy.connects) == (1, 1)


@pytest.mark.anyio
async def test_async_client_timeouts_and_errors(
    anyio_backend: str, server: Any, raw_server: Callable[..., Any]
) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.05)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{server.url}/slow/2000")
        assert (await client.get(f"{server.url}/")).status_code == 200

    silent = silent_server(raw_server)
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=0.05)) as client:
        with pytest.raises(httpx.ConnectTimeout):
            await client.get(f"https://127.0.0.1:{silent.port}/")

    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(5.0, pool=0.05)) as client:
        async with client.stream("GET", f"{server.url}/"):
            with pytest.raises(httpx.PoolTimeout):
                await client.get(f"{server.url}/")
        assert (await client.get(f"{server.url}/")).status_code == 200

    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{closed_port()}/")
