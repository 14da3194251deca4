"""A URL without a host fails before any connect or DNS lookup (issue 10 §4)."""

from __future__ import annotations

import helpers
import pytest

import httpcore

anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api


@pytest.mark.anyio
@pytest.mark.parametrize("url", ["http:///path", "https:///", "ws:///socket"])
async def test_url_without_host(api: helpers.API, url: str) -> None:
    backend = api.backend([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    async with api.ConnectionPool(network_backend=backend) as pool:
        with pytest.raises(httpcore.UnsupportedProtocol) as info:
            await pool.request("GET", url)
        assert str(info.value) == f"Request URL is missing a host: {url!r}."
        assert pool.connections == []
    assert backend.connects == []


@pytest.mark.anyio
async def test_unix_socket_pool_needs_no_host(api: helpers.API) -> None:
    backend = api.backend([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    async with api.ConnectionPool(uds="/tmp/socket", network_backend=backend) as pool:
        response = await pool.request("GET", "http:///path")
        assert response.status == 200
    assert [c["path"] for c in backend.connects] == ["/tmp/socket"]
