"""HTTPProxy / AsyncHTTPProxy and ConnectionPool(proxy=...) over mock backends (API.md §5.1-5.4)."""

from __future__ import annotations

import ssl

import helpers
import pytest

import httpcore

pytestmark = pytest.mark.anyio

# The harness fixtures (sync, asyncio and trio flavours).
anyio_backend, flavour, api = helpers.anyio_backend, helpers.flavour, helpers.api

HELLO = b"HTTP/1.1 200 OK\r\nContent-Type: plain/text\r\nContent-Length: 13\r\n\r\nHello, world!"
CONNECT_OK = b"HTTP/1.1 200 Connection established\r\n\r\n"


async def test_forward_request_is_absolute_form_with_merged_headers(api):
    backend = api.backend([HELLO, HELLO])
    proxy = api.HTTPProxy(
        proxy_url="http://localhost:8080/",
        proxy_headers={"X-Proxy": "yes", "Accept": "proxy/default"},
        network_backend=backend,
    )
    async with proxy:
        response = await proxy.request(
            "GET", "http://example.com/a?b", headers={"Accept": "text/plain"}
        )
        assert response.content == b"Hello, world!"
        assert backend.connects == [
            {
                "host": "localhost",
                "port": 8080,
                "timeout": None,
                "local_address": None,
                "socket_options": None,
            }
        ]
        assert backend.streams[0].tls == []
        assert backend.streams[0].data == (
            # (h11 always writes Host first.)
            b"GET http://example.com/a?b HTTP/1.1\r\n"
            b"Host: example.com\r\n"
            b"X-Proxy: yes\r\n"
            b"Accept: text/plain\r\n"
            b"\r\n"
        )
        name = api.name("ForwardHTTPConnection")
        assert [repr(c) for c in proxy.connections] == [
            f"<{name} ['http://localhost:8080', HTTP/1.1, IDLE, Request Count: 1]>"
        ]
        assert repr(proxy) == (
            f"<{api.name('HTTPProxy')} [Requests: 0 active, 0 queued | "
            "Connections: 0 active, 1 idle]>"
        )
        conn = proxy.connections[0]
        assert conn.can_handle_request(httpcore.Origin(b"http", b"example.com", 80))
        assert not conn.can_handle_request(httpcore.Origin(b"http", b"localhost", 8080))

        # The forward connection is reused for the same remote origin.
        await proxy.request("GET", "http://example.com/c")
        assert len(backend.streams) == 1
        assert backend.streams[0].written[-1].startswith(b"GET http://example.com/c HTTP/1.1\r\n")
    assert proxy.connections == []


async def test_forward_one_connection_per_remote_origin(api):
    backend = api.backend([HELLO])
    async with api.HTTPProxy("http://localhost:8080/", network_backend=backend) as proxy:
        await proxy.request("GET", "http://a.com/")
        await proxy.request("GET", "http://b.com:8000/x")
        assert len(proxy.connections) == 2
        assert backend.streams[1].data == (
            b"GET http://b.com:8000/x HTTP/1.1\r\nHost: b.com:8000\r\n\r\n"
        )


async def test_forward_body_is_sent(api):
    backend = api.backend([HELLO])
    async with api.HTTPProxy("http://localhost:8080/", network_backend=backend) as proxy:
        await proxy.request("POST", "http://example.com/", content=b"data")
    assert backend.streams[0].data == (
        b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nContent-Length: 4\r\n\r\ndata"
    )


async def test_proxy_auth_header(api):
    backend = api.backend([HELLO])
    async with api.HTTPProxy(
        "http://localhost:8080/", proxy_auth=("user", "pass"), network_backend=backend
    ) as proxy:
        await proxy.request("GET", "http://example.com/")
    assert backend.streams[0].data == (
        b"GET http://example.com/ HTTP/1.1\r\n"
        b"Host: example.com\r\n"
        b"Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n"
    )


async def test_pool_with_proxy_forwards(api):
    backend = api.backend([HELLO])
    proxy = httpcore.Proxy(
        "http://localhost:8080/", auth=("username", "password"), headers={"X-Via": "test"}
    )
    async with api.ConnectionPool(proxy=proxy, network_backend=backend) as pool:
        await pool.request("GET", "http://example.com/", headers={"X-Via": "request"})
        assert type(pool.connections[0]).__name__ == api.name("ForwardHTTPConnection")
    assert backend.streams[0].data == (
        b"GET http://example.com/ HTTP/1.1\r\n"
        b"Host: example.com\r\n"
        b"Proxy-Authorization: Basic dXNlcm5hbWU6cGFzc3dvcmQ=\r\n"
        b"X-Via: request\r\n\r\n"
    )


async def test_tunnel_connect_bytes_and_tls(api):
    backend = api.backend([CONNECT_OK, HELLO, HELLO])
    async with api.HTTPProxy(
        "http://localhost:8080/",
        proxy_headers=[(b"Proxy-Authorization", b"Basic abc"), (b"Accept", b"text/html")],
        network_backend=backend,
    ) as proxy:
        events = []
        trace = api.trace(lambda name, info: events.append(name))
        async with proxy.stream(
            "GET", "https://example.com/", extensions={"trace": trace}
        ) as response:
            name = api.name("TunnelHTTPConnection")
            assert [repr(c) for c in proxy.connections] == [
                f"<{name} ['https://example.com:443', HTTP/1.1, ACTIVE, Request Count: 1]>"
            ]
            assert await response.aread() == b"Hello, world!"
        stream = backend.streams[0]
        assert stream.written[0] == (
            b"CONNECT example.com:443 HTTP/1.1\r\n"
            b"Host: example.com:443\r\n"
            b"Proxy-Authorization: Basic abc\r\n"
            b"Accept: text/html\r\n"
            b"\r\n"
        )
        # Proxy headers are not sent on the tunnelled request.
        assert stream.written[1] == b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
        [tls] = stream.tls
        assert tls["server_hostname"] == "example.com"
        assert isinstance(tls["ssl_context"], ssl.SSLContext)
        assert [repr(c) for c in proxy.connections] == [
            f"<{name} ['https://example.com:443', HTTP/1.1, IDLE, Request Count: 1]>"
        ]
        assert events == [
            "connection.connect_tcp.started",
            "connection.connect_tcp.complete",
            "http11.send_request_headers.started",
            "http11.send_request_headers.complete",
            "http11.send_request_body.started",
            "http11.send_request_body.complete",
            "http11.receive_response_headers.started",
            "http11.receive_response_headers.complete",
            "proxy.start_tls.started",
            "proxy.start_tls.complete",
            "http11.send_request_headers.started",
            "http11.send_request_headers.complete",
            "http11.send_request_body.started",
            "http11.send_request_body.complete",
            "http11.receive_response_headers.started",
            "http11.receive_response_headers.complete",
            "http11.receive_response_body.started",
            "http11.receive_response_body.complete",
            "http11.response_closed.started",
            "http11.response_closed.complete",
        ]

        # The tunnel is reused without another CONNECT.
        await proxy.request("GET", "https://example.com/again")
        assert len(backend.streams) == 1
        assert stream.written[2] == b"GET /again HTTP/1.1\r\nHost: example.com\r\n\r\n"


async def test_tunnel_default_connect_headers(api):
    backend = api.backend([CONNECT_OK, HELLO])
    async with api.HTTPProxy("http://localhost:8080/", network_backend=backend) as proxy:
        await proxy.request("GET", "https://example.com:8443/")
    assert backend.streams[0].written[0] == (
        b"CONNECT example.com:8443 HTTP/1.1\r\nHost: example.com:8443\r\nAccept: */*\r\n\r\n"
    )


async def test_tunnel_ssl_context_and_connect_timeout(api):
    backend = api.backend([CONNECT_OK, HELLO])
    context = ssl.create_default_context()
    async with api.HTTPProxy(
        "http://localhost:8080/", ssl_context=context, network_backend=backend
    ) as proxy:
        extensions = {"timeout": {"connect": 4.0}, "sni_hostname": "ignored.example"}
        await proxy.request("GET", "https://example.com/", extensions=extensions)
    assert backend.connects[0]["timeout"] == 4.0
    assert backend.streams[0].tls == [
        {"ssl_context": context, "server_hostname": "example.com", "timeout": 4.0}
    ]


async def test_https_proxy_uses_proxy_ssl_context(api):
    backend = api.backend([CONNECT_OK, HELLO])
    proxy_context = ssl.create_default_context()
    async with api.HTTPProxy(
        "https://localhost:8443/", proxy_ssl_context=proxy_context, network_backend=backend
    ) as proxy:
        await proxy.request("GET", "https://example.com/")
    [to_proxy, to_remote] = backend.streams[0].tls
    assert to_proxy["ssl_context"] is proxy_context
    assert to_proxy["server_hostname"] == "localhost"
    assert to_remote["server_hostname"] == "example.com"
    assert to_remote["ssl_context"] is not proxy_context


@pytest.mark.parametrize(
    "status_line, message",
    [
        (b"HTTP/1.1 403 Permission Denied\r\n\r\n", "403 Permission Denied"),
        (b"HTTP/1.1 407 \r\n\r\n", "407 "),
        (b"HTTP/1.1 407\r\n\r\n", "407 "),
    ],
)
async def test_tunnel_rejected(api, status_line, message):
    backend = api.backend([status_line])
    async with api.HTTPProxy("http://localhost:8080/", network_backend=backend) as proxy:
        with pytest.raises(httpcore.ProxyError) as exc_info:
            await proxy.request("GET", "https://example.com/")
        assert str(exc_info.value) == message
        assert proxy.connections == []
        assert backend.streams[0].closed
        assert repr(proxy) == (
            f"<{api.name('HTTPProxy')} [Requests: 0 active, 0 queued | "
            "Connections: 0 active, 0 idle]>"
        )


async def test_proxy_connect_failure_leaves_the_pool_empty(api):
    backend = api.backend([CONNECT_OK, HELLO], fail_connects=1)
    async with api.HTTPProxy("http://localhost:8080/", network_backend=backend) as proxy:
        with pytest.raises(httpcore.ConnectError):
            await proxy.request("GET", "https://example.com/")
        assert proxy.connections == []


def test_proxy_ssl_context_with_http_proxy_url(api):
    with pytest.raises(RuntimeError) as exc_info:
        api.HTTPProxy("http://localhost:8080/", proxy_ssl_context=ssl.create_default_context())
    assert str(exc_info.value) == (
        "The `proxy_ssl_context` argument is not allowed for the http scheme"
    )


def test_proxy_argument_coercion(api):
    with pytest.raises(TypeError) as exc_info:
        api.HTTPProxy(123)
    assert str(exc_info.value) == "proxy_url must be a URL, bytes, or str, but got int."
    with pytest.raises(TypeError) as exc_info:
        api.HTTPProxy("http://localhost:8080/", proxy_headers=123)
    assert str(exc_info.value) == (
        "proxy_headers must be a mapping or sequence of two-tuples, but got int."
    )
    with pytest.raises(TypeError) as exc_info:
        api.HTTPProxy("http://localhost:8080/", proxy_auth=("us\u00e9r", "pass"))
    assert str(exc_info.value) == "proxy_auth strings may not include unicode characters."


async def test_pool_with_proxy_tunnels_https(api):
    backend = api.backend([CONNECT_OK, HELLO])
    proxy = httpcore.Proxy("http://localhost:8080/", headers={"X-Proxy": "1"})
    async with api.ConnectionPool(proxy=proxy, network_backend=backend) as pool:
        response = await pool.request("GET", "https://example.com/")
        assert response.content == b"Hello, world!"
        assert type(pool.connections[0]).__name__ == api.name("TunnelHTTPConnection")
    assert backend.streams[0].written[0] == (
        b"CONNECT example.com:443 HTTP/1.1\r\n"
        b"Host: example.com:443\r\nAccept: */*\r\nX-Proxy: 1\r\n\r\n"
    )
