"""httpx 0.28, unchanged, over a pool with HTTP/3: a transport whose pool is built with
`http3=True` (the recipe of packages/httpcore-http3/README.md and docs/http3.md)."""

from __future__ import annotations

import ssl
from typing import Any

import h3helpers
import httpx
import pytest

import httpcore

h3_server, h3_server_shared = h3helpers.h3_server, h3helpers.h3_server_shared

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


class HTTP3Transport(httpx.HTTPTransport):
    """httpx's transport over a pool that speaks HTTP/3 (as the README shows it)."""

    def __init__(self, ssl_context: ssl.SSLContext, http3_only: bool = False) -> None:
        super().__init__(verify=ssl_context)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, http1=not http3_only, http3=True
        )


class AsyncHTTP3Transport(httpx.AsyncHTTPTransport):
    def __init__(self, ssl_context: ssl.SSLContext, http3_only: bool = False) -> None:
        super().__init__(verify=ssl_context)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context, http1=not http3_only, http3=True
        )


def test_httpx_http3_prior_knowledge(h3_server: Any, client_ssl_context: ssl.SSLContext) -> None:
    transport = HTTP3Transport(client_ssl_context, http3_only=True)
    with httpx.Client(transport=transport) as client:
        response = client.get(h3_server.url + "/")
        assert response.http_version == "HTTP/3"
        assert response.text == "Hello, world!"
        response = client.post(h3_server.url + "/echo", json={"a": 1})
        assert response.json() == {"a": 1}
        with client.stream("GET", h3_server.url + "/stream/10/1000") as response:
            assert sum(len(chunk) for chunk in response.iter_bytes()) == 10_000


def test_httpx_http3_discovery(h3_server: Any, client_ssl_context: ssl.SSLContext) -> None:
    with httpx.Client(transport=HTTP3Transport(client_ssl_context)) as client:
        versions = [client.get(h3_server.url + "/").http_version for _ in range(3)]
    assert versions == ["HTTP/1.1", "HTTP/3", "HTTP/3"]


@pytest.mark.anyio
async def test_async_httpx_http3(h3_server: Any, client_ssl_context: ssl.SSLContext) -> None:
    transport = AsyncHTTP3Transport(client_ssl_context, http3_only=True)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get(h3_server.url + "/")
        assert response.http_version == "HTTP/3"
        response = await client.post(h3_server.url + "/echo", content=b"x" * 100_000)
        assert len(response.content) == 100_000


def test_httpx_maps_http3_errors(client_ssl_context: ssl.SSLContext) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        url = f"https://127.0.0.1:{sink.getsockname()[1]}/"
        transport = HTTP3Transport(client_ssl_context, http3_only=True)
        with httpx.Client(transport=transport, timeout=httpx.Timeout(5, connect=0.3)) as client:
            with pytest.raises(httpx.ConnectTimeout):
                client.get(url)
