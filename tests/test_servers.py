"""Self-tests of the fixtures in conftest.py, using only stdlib clients (plus h2 for HTTP/2)."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import struct
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, List, Optional, Tuple

import h2.config
import h2.connection
import h2.events
import pytest
import trustme
from servers import HTTPProxy, HTTPServer, RawServer, SocksProxy

RawFactory = Callable[..., RawServer]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


# -- helpers ----------------------------------------------------------------------------------


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def recv_until_eof(sock: socket.socket) -> bytes:
    chunks: List[bytes] = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"EOF after {data!r}")
        data += chunk
    return data


def read_head(sock: socket.socket) -> Tuple[int, bytes]:
    """Read a response head byte by byte (nothing after it is consumed): (status, raw head)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += recv_exactly(sock, 1)
    return int(head.split(b" ")[1]), head


def get(
    url: str, path: str = "/", context: Optional[ssl.SSLContext] = None
) -> Tuple[int, http.client.HTTPMessage, bytes]:
    parsed = urllib.parse.urlsplit(url)
    conn: http.client.HTTPConnection
    if parsed.scheme == "https":
        conn = http.client.HTTPSConnection(
            parsed.hostname or "", parsed.port, timeout=5, context=context
        )
    else:
        conn = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def h2_request(
    sock: socket.socket, authority: str, path: str, scheme: str = "http"
) -> Tuple[int, bytes]:
    """A single HTTP/2 GET with prior knowledge over ``sock``."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    stream_id = conn.get_next_available_stream_id()
    headers = [(":method", "GET"), (":path", path), (":scheme", scheme), (":authority", authority)]
    conn.send_headers(stream_id, headers, end_stream=True)
    sock.sendall(conn.data_to_send())
    status = 0
    body = b""
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("EOF before the end of the HTTP/2 stream")
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                conn.close_connection()
                sock.sendall(conn.data_to_send())
                return status, body
        sock.sendall(conn.data_to_send())


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- certificates ----------------------------------------------------------------------------


def test_client_ssl_context(ca: trustme.CA, client_ssl_context: ssl.SSLContext) -> None:
    assert isinstance(ca, trustme.CA)
    assert client_ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert client_ssl_context.check_hostname


def test_client_ssl_context_is_fresh(client_ssl_context: ssl.SSLContext) -> None:
    # Each test gets its own context: mutate it freely.
    assert client_ssl_context.get_ca_certs()
    client_ssl_context.set_alpn_protocols(["h2"])


# -- the HTTP server --------------------------------------------------------------------------


def test_server_attributes(server: HTTPServer) -> None:
    assert server.host == "127.0.0.1"
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_server_hello(server: HTTPServer) -> None:
    status, headers, body = get(server.url, "/")
    assert status == 200
    assert body == b"Hello, world!"
    assert headers["content-type"] == "text/plain"
    assert headers["content-length"] == "13"


def test_server_head(server: HTTPServer) -> None:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.request("HEAD", "/")
    response = conn.getresponse()
    assert response.status == 200
    assert response.headers["content-length"] == "13"
    assert response.read() == b""
    conn.request("GET", "/")  # the connection is still usable
    assert conn.getresponse().read() == b"Hello, world!"
    conn.close()


def test_server_keep_alive(server: HTTPServer) -> None:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.request("GET", "/")
    assert conn.getresponse().read() == b"Hello, world!"
    sock = conn.sock
    conn.request("GET", "/bytes/3")
    assert conn.getresponse().read() == b"xxx"
    assert conn.sock is sock
    conn.close()


def test_server_echo_headers(server: HTTPServer) -> None:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.request("GET", "/echo_headers", headers={"X-Custom": "Value 1"})
    response = conn.getresponse()
    assert response.headers["content-type"] == "application/json"
    headers = json.loads(response.read())["headers"]
    conn.close()
    assert ["x-custom", "Value 1"] in headers
    assert ["host", f"127.0.0.1:{server.port}"] in headers


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_server_echo(server: HTTPServer, method: str) -> None:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.request(method, "/echo", body=b"abc" * 1000)
    response = conn.getresponse()
    assert response.status == 200
    assert response.headers["x-received-length"] == "3000"
    assert response.read() == b"abc" * 1000
    conn.close()


def test_server_echo_chunked_request(server: HTTPServer) -> None:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.request("POST", "/echo", body=iter([b"hello, ", b"world"]), encode_chunked=True)
    response = conn.getresponse()
    assert response.headers["x-received-length"] == "12"
    assert response.read() == b"hello, world"
    conn.close()


def test_server_bytes(server: HTTPServer) -> None:
    status, headers, body = get(server.url, "/bytes/100000")
    assert status == 200
    assert headers["content-length"] == "100000"
    assert body == b"x" * 100000
    assert get(server.url, "/bytes/0")[2] == b""


def test_server_stream_is_chunked(server: HTTPServer) -> None:
    with connect(server.port) as sock:
        sock.sendall(b"GET /stream/3/5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = recv_until_eof(sock)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"content-length" not in head.lower()
    assert body == b"5\r\nxxxxx\r\n" * 3 + b"0\r\n\r\n"


@pytest.mark.parametrize("code", [200, 201, 204, 304, 404, 500, 503])
def test_server_status(server: HTTPServer, code: int) -> None:
    status, _, body = get(server.url, f"/status/{code}")
    assert status == code
    assert body == b""


def test_server_unknown_path(server: HTTPServer) -> None:
    assert get(server.url, "/nope")[0] == 404


def test_server_close(server: HTTPServer) -> None:
    with connect(server.port) as sock:
        sock.sendall(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
        status, head = read_head(sock)
        assert status == 200
        assert b"\r\nconnection: close\r\n" in head.lower()
        assert recv_until_eof(sock) == b"closing"  # the server really closed the connection


def test_server_slow(server: HTTPServer) -> None:
    start = time.monotonic()
    status, _, body = get(server.url, "/slow/200")
    assert (status, body) == (200, b"ok")
    assert time.monotonic() - start >= 0.2

    conn = http.client.HTTPConnection(server.host, server.port, timeout=0.05)
    conn.request("GET", "/slow/500")
    with pytest.raises(socket.timeout):
        conn.getresponse()
    conn.close()


def test_server_http_version(server: HTTPServer) -> None:
    assert get(server.url, "/http_version")[2] == b"1.1"
    with connect(server.port) as sock:
        sock.sendall(b"GET /http_version HTTP/1.0\r\n\r\n")
        assert recv_until_eof(sock).endswith(b"\r\n\r\n1.0")


def test_server_h2c_prior_knowledge(server: HTTPServer) -> None:
    with connect(server.port) as sock:
        assert h2_request(sock, f"127.0.0.1:{server.port}", "/http_version") == (200, b"2")
    with connect(server.port) as sock:
        status, body = h2_request(sock, f"127.0.0.1:{server.port}", "/stream/4/1000")
        assert (status, body) == (200, b"x" * 4000)
    with connect(server.port) as sock:
        status, body = h2_request(sock, f"127.0.0.1:{server.port}", "/echo_headers")
        # hypercorn turns :authority into host and hides the other pseudo-headers.
        assert json.loads(body) == {"headers": [["host", f"127.0.0.1:{server.port}"]]}


# -- the TLS server ---------------------------------------------------------------------------


def test_tls_server_attributes(tls_server: HTTPServer) -> None:
    assert tls_server.url == f"https://127.0.0.1:{tls_server.port}"
    assert tls_server.localhost_url == f"https://localhost:{tls_server.port}"


@pytest.mark.parametrize("attr", ["url", "localhost_url"])
def test_tls_server_hello(
    tls_server: HTTPServer, client_ssl_context: ssl.SSLContext, attr: str
) -> None:
    status, _, body = get(getattr(tls_server, attr), "/", context=client_ssl_context)
    assert (status, body) == (200, b"Hello, world!")


def test_tls_server_untrusted(tls_server: HTTPServer) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        get(tls_server.url, "/", context=ssl.create_default_context())


@pytest.mark.parametrize(
    "offered, selected",
    [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1"), (None, None)],
)
def test_tls_server_alpn(
    tls_server: HTTPServer,
    client_ssl_context: ssl.SSLContext,
    offered: Optional[List[str]],
    selected: Optional[str],
) -> None:
    if offered:
        client_ssl_context.set_alpn_protocols(offered)
    with connect(tls_server.port) as raw:
        with client_ssl_context.wrap_socket(raw, server_hostname="localhost") as sock:
            assert sock.selected_alpn_protocol() == selected
            if selected == "h2":
                result = h2_request(sock, "localhost", "/http_version", scheme="https")
                assert result == (200, b"2")
            else:
                sock.sendall(b"GET /http_version HTTP/1.1\r\nHost: localhost\r\n\r\n")
                assert b"\r\ncontent-length: 3\r\n" in read_head(sock)[1]
                assert recv_exactly(sock, 3) == b"1.1"


# -- the raw server ---------------------------------------------------------------------------


def test_raw_server_bytes(raw_server: RawFactory) -> None:
    srv = raw_server(OK)
    assert srv.url == f"http://127.0.0.1:{srv.port}"
    assert srv.host == "127.0.0.1"
    status, _, body = get(srv.url, "/path?q=1")
    assert (status, body) == (200, b"ok")
    assert srv.connections == 1
    assert srv.requests[0].startswith(b"GET /path?q=1 HTTP/1.1\r\n")
    assert srv.requests[0].endswith(b"\r\n\r\n")
    assert srv.messages == srv.requests


def test_raw_server_bytes_closes(raw_server: RawFactory) -> None:
    srv = raw_server(OK)
    for _ in range(2):
        with connect(srv.port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert recv_until_eof(sock) == OK
    assert srv.connections == 2
    assert len(srv.requests) == 2


def test_raw_server_reads_request_bodies(raw_server: RawFactory) -> None:
    srv = raw_server(OK)
    with connect(srv.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        assert recv_until_eof(sock) == OK
    with connect(srv.port) as sock:
        chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        sock.sendall(chunked)
        assert recv_until_eof(sock) == OK
    assert srv.requests[0].endswith(b"\r\n\r\nhello")
    assert srv.requests[1] == chunked


def test_raw_server_keep_alive_list(raw_server: RawFactory) -> None:
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"
    second = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"
    srv = raw_server([first, second])
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
    conn.request("GET", "/1")
    assert conn.getresponse().read() == b"first"
    conn.request("POST", "/2", body=b"data")
    assert conn.getresponse().read() == b"second"
    conn.close()
    assert srv.connections == 1
    assert len(srv.requests) == 1
    assert srv.requests[0].startswith(b"GET /1 ")
    assert srv.requests[0].endswith(b"\r\n\r\ndata")
    assert [m.split(b" ")[1] for m in srv.messages] == [b"/1", b"/2"]


def test_raw_server_pipelined(raw_server: RawFactory) -> None:
    srv = raw_server([OK, OK])
    with connect(srv.port) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
        assert recv_until_eof(sock) == OK + OK
    assert [m.split(b" ")[1] for m in srv.messages] == [b"/a", b"/b"]


def test_raw_server_callable(raw_server: RawFactory) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        request = server.read_request(conn)
        assert request is not None
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfull")
        conn.sendall(b"garbage after the response")

    srv = raw_server(handler)
    with connect(srv.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert recv_until_eof(sock).endswith(b"fullgarbage after the response")
    assert srv.connections == 1
    assert srv.requests == [b"GET / HTTP/1.1\r\n\r\n"]


def test_raw_server_client_closes_early(raw_server: RawFactory) -> None:
    srv = raw_server(OK)
    connect(srv.port).close()
    with connect(srv.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")  # incomplete head
    deadline = time.monotonic() + 5
    while len(srv.errors) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert srv.connections == 2
    assert srv.requests == [b"", b"GET / HTTP/1.1\r\n"]


def test_raw_server_teardown_with_open_connections(raw_server: RawFactory) -> None:
    started = threading.Event()

    def handler(conn: socket.socket, server: RawServer) -> None:
        started.set()
        conn.recv(1)  # blocks until teardown shuts the connection down

    srv = raw_server(handler)
    idle = connect(srv.port)
    assert started.wait(5)
    srv.close()  # must not hang
    idle.close()


def test_raw_server_tls(raw_server: RawFactory, client_ssl_context: ssl.SSLContext) -> None:
    srv = raw_server(OK, tls=True)
    assert srv.url == f"https://127.0.0.1:{srv.port}"
    client_ssl_context.set_alpn_protocols(["h2", "http/1.1"])
    with connect(srv.port) as raw:
        with client_ssl_context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            assert sock.selected_alpn_protocol() == "http/1.1"
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert recv_until_eof(sock) == OK
    assert srv.requests[0] == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def test_raw_server_tls_alpn_h2(raw_server: RawFactory, client_ssl_context: ssl.SSLContext) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        assert isinstance(conn, ssl.SSLSocket)
        conn.sendall((conn.selected_alpn_protocol() or "").encode())

    srv = raw_server(handler, tls=True, alpn=["h2"])
    client_ssl_context.set_alpn_protocols(["h2", "http/1.1"])
    with connect(srv.port) as raw:
        with client_ssl_context.wrap_socket(raw, server_hostname="localhost") as sock:
            assert recv_until_eof(sock) == b"h2"


def test_raw_server_tls_rejected_certificate(raw_server: RawFactory) -> None:
    srv = raw_server(OK, tls=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        get(srv.url, "/", context=ssl.create_default_context())


# -- HTTP proxies -----------------------------------------------------------------------------


def proxy_opener(proxy_url: str) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy_url}))


def test_http_proxy_attributes(http_proxy: HTTPProxy, https_proxy: HTTPProxy) -> None:
    assert http_proxy.url == f"http://127.0.0.1:{http_proxy.port}"
    assert https_proxy.url == f"https://127.0.0.1:{https_proxy.port}"
    assert http_proxy.host == https_proxy.host == "127.0.0.1"
    assert (http_proxy.connects, http_proxy.forwards, http_proxy.last_headers) == (0, 0, [])


def test_http_proxy_forward(http_proxy: HTTPProxy, server: HTTPServer) -> None:
    with proxy_opener(http_proxy.url).open(server.url + "/echo_headers", timeout=5) as response:
        assert response.status == 200
        seen = json.loads(response.read())["headers"]
    assert (http_proxy.forwards, http_proxy.connects) == (1, 0)
    assert http_proxy.request_lines == [f"GET {server.url}/echo_headers HTTP/1.1"]
    assert ("Host", f"127.0.0.1:{server.port}") in http_proxy.last_headers
    assert ["host", f"127.0.0.1:{server.port}"] in seen
    assert ["connection", "close"] in seen


def test_http_proxy_forward_keep_alive(http_proxy: HTTPProxy, server: HTTPServer) -> None:
    conn = http.client.HTTPConnection(http_proxy.host, http_proxy.port, timeout=5)
    conn.request("POST", server.url + "/echo", body=b"payload")
    assert conn.getresponse().read() == b"payload"
    conn.request("GET", server.url + "/stream/3/10?x=1")  # chunked response, relayed as such
    response = conn.getresponse()
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.read() == b"x" * 30
    conn.request("HEAD", server.url + "/")
    assert conn.getresponse().read() == b""
    conn.request("GET", server.url + "/status/204")
    response = conn.getresponse()
    assert (response.status, response.read()) == (204, b"")
    conn.request("GET", server.url + "/")
    assert conn.getresponse().read() == b"Hello, world!"
    conn.close()
    assert (http_proxy.connections, http_proxy.forwards) == (1, 5)


def test_http_proxy_forward_connection_close(http_proxy: HTTPProxy, server: HTTPServer) -> None:
    with connect(http_proxy.port) as sock:
        sock.sendall(f"GET {server.url}/ HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
        raw = recv_until_eof(sock)
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nConnection: close\r\n" in raw
    assert raw.endswith(b"Hello, world!")


def test_http_proxy_forward_bad_gateway(http_proxy: HTTPProxy, raw_server: RawFactory) -> None:
    srv = raw_server(OK)
    srv.close()  # nothing listens on that port any more
    with pytest.raises(urllib.error.HTTPError) as info:
        proxy_opener(http_proxy.url).open(srv.url + "/", timeout=5)
    assert info.value.code == 502
    info.value.close()


def test_http_proxy_connect(
    http_proxy: HTTPProxy, tls_server: HTTPServer, client_ssl_context: ssl.SSLContext
) -> None:
    conn = http.client.HTTPSConnection(
        http_proxy.host, http_proxy.port, timeout=5, context=client_ssl_context
    )
    conn.set_tunnel("localhost", tls_server.port)
    conn.request("GET", "/")
    assert conn.getresponse().read() == b"Hello, world!"
    conn.request("GET", "/http_version")
    assert conn.getresponse().read() == b"1.1"
    conn.close()
    assert (http_proxy.connects, http_proxy.forwards) == (1, 0)
    # http.client sends "HTTP/1.0" before Python 3.12, "HTTP/1.1" since.
    assert http_proxy.request_lines[0].startswith(f"CONNECT localhost:{tls_server.port} HTTP/1.")
    assert len(http_proxy.request_lines) == 1


def test_http_proxy_connect_half_close(http_proxy: HTTPProxy, raw_server: RawFactory) -> None:
    def handler(conn: socket.socket, server: RawServer) -> None:
        data = recv_until_eof(conn)  # the client's half-close reaches the target
        conn.sendall(b"got " + data)

    srv = raw_server(handler)
    with connect(http_proxy.port) as sock:
        sock.sendall(f"CONNECT 127.0.0.1:{srv.port} HTTP/1.1\r\n\r\n".encode())
        assert read_head(sock)[0] == 200
        sock.sendall(b"ping")
        sock.shutdown(socket.SHUT_WR)
        assert recv_until_eof(sock) == b"got ping"


def test_http_proxy_connect_bad_gateway(http_proxy: HTTPProxy, raw_server: RawFactory) -> None:
    srv = raw_server(OK)
    srv.close()
    with connect(http_proxy.port) as sock:
        sock.sendall(f"CONNECT 127.0.0.1:{srv.port} HTTP/1.1\r\n\r\n".encode())
        assert read_head(sock)[0] == 502


def test_http_proxy_auth_required(http_proxy_auth: HTTPProxy, server: HTTPServer) -> None:
    assert http_proxy_auth.auth == ("user", "pass")
    with pytest.raises(urllib.error.HTTPError) as info:
        proxy_opener(http_proxy_auth.url).open(server.url + "/", timeout=5)
    assert info.value.code == 407
    assert info.value.headers["Proxy-Authenticate"] == 'Basic realm="proxy"'
    info.value.close()

    wrong = http_proxy_auth.url.replace("://", "://user:wrong@")
    with pytest.raises(urllib.error.HTTPError) as info:
        proxy_opener(wrong).open(server.url + "/", timeout=5)
    assert info.value.code == 407
    info.value.close()

    with connect(http_proxy_auth.port) as sock:
        sock.sendall(f"CONNECT 127.0.0.1:{server.port} HTTP/1.1\r\n\r\n".encode())
        assert read_head(sock)[0] == 407
    assert (http_proxy_auth.connects, http_proxy_auth.forwards) == (0, 0)


def test_http_proxy_auth_forward(http_proxy_auth: HTTPProxy, server: HTTPServer) -> None:
    authed = http_proxy_auth.url.replace("://", "://user:pass@")
    with proxy_opener(authed).open(server.url + "/echo_headers", timeout=5) as response:
        seen = json.loads(response.read())["headers"]
    assert ("Proxy-Authorization", basic("user", "pass")) in http_proxy_auth.last_headers
    assert not [name for name, _ in seen if name.startswith("proxy-")]  # not forwarded
    assert http_proxy_auth.forwards == 1


def test_http_proxy_auth_connect(http_proxy_auth: HTTPProxy, server: HTTPServer) -> None:
    conn = http.client.HTTPConnection(http_proxy_auth.host, http_proxy_auth.port, timeout=5)
    conn.set_tunnel(
        "127.0.0.1", server.port, headers={"Proxy-Authorization": basic("user", "pass")}
    )
    conn.request("GET", "/")
    assert conn.getresponse().read() == b"Hello, world!"
    conn.close()
    assert http_proxy_auth.connects == 1


def test_https_proxy_forward(
    https_proxy: HTTPProxy, server: HTTPServer, client_ssl_context: ssl.SSLContext
) -> None:
    conn = http.client.HTTPSConnection(
        https_proxy.host, https_proxy.port, timeout=5, context=client_ssl_context
    )
    conn.request("GET", server.url + "/")
    assert conn.getresponse().read() == b"Hello, world!"
    conn.request("GET", server.url + "/bytes/5")
    assert conn.getresponse().read() == b"xxxxx"
    conn.close()
    assert (https_proxy.connections, https_proxy.forwards) == (1, 2)


def test_https_proxy_connect_tls_in_tls(
    https_proxy: HTTPProxy, tls_server: HTTPServer, client_ssl_context: ssl.SSLContext
) -> None:
    raw = connect(https_proxy.port)
    outer = client_ssl_context.wrap_socket(raw, server_hostname="127.0.0.1")
    outer.sendall(f"CONNECT localhost:{tls_server.port} HTTP/1.1\r\n\r\n".encode())
    assert read_head(outer)[0] == 200

    # TLS over the TLS connection, with memory BIOs.
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    inner = client_ssl_context.wrap_bio(incoming, outgoing, server_hostname="localhost")

    def pump(operation: Callable[[], object]) -> object:
        while True:
            try:
                result = operation()
            except ssl.SSLWantReadError:
                outer.sendall(outgoing.read())
                data = outer.recv(65536)
                if not data:
                    incoming.write_eof()
                incoming.write(data)
                continue
            outer.sendall(outgoing.read())
            return result

    pump(inner.do_handshake)
    pump(lambda: inner.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
    response = b""
    while not response.endswith(b"Hello, world!"):
        response += pump(lambda: inner.read(65536))  # type: ignore[operator]
    assert response.startswith(b"HTTP/1.1 200 ")
    outer.close()
    assert https_proxy.connects == 1


# -- SOCKS proxies ----------------------------------------------------------------------------

HTTP_GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def socks5_connect_request(host: str, port: int) -> bytes:
    try:
        address = b"\x01" + socket.inet_aton(host)
    except OSError:
        address = b"\x03" + bytes([len(host)]) + host.encode()
    return b"\x05\x01\x00" + address + struct.pack(">H", port)


def read_socks5_reply(sock: socket.socket) -> int:
    version, reply, _, atyp = recv_exactly(sock, 4)
    assert version == 5
    size = {1: 4, 4: 16}.get(atyp) or recv_exactly(sock, 1)[0]
    recv_exactly(sock, size + 2)
    return reply


def test_socks_attributes(
    socks5_proxy: SocksProxy, socks5_auth_proxy: SocksProxy, socks4_proxy: SocksProxy
) -> None:
    assert socks5_proxy.url == f"socks5://127.0.0.1:{socks5_proxy.port}"
    assert socks4_proxy.url == f"socks4://127.0.0.1:{socks4_proxy.port}"
    assert socks5_proxy.auth is None and socks4_proxy.auth is None
    assert socks5_auth_proxy.auth == ("user", "pass")
    assert len({socks5_proxy.port, socks5_auth_proxy.port, socks4_proxy.port}) == 3


@pytest.mark.parametrize("target_host", ["127.0.0.1", "localhost"])
def test_socks5_no_auth(socks5_proxy: SocksProxy, server: HTTPServer, target_host: str) -> None:
    with connect(socks5_proxy.port) as sock:
        sock.sendall(b"\x05\x01\x00")
        assert recv_exactly(sock, 2) == b"\x05\x00"
        sock.sendall(socks5_connect_request(target_host, server.port))
        assert read_socks5_reply(sock) == 0
        sock.sendall(HTTP_GET)
        assert recv_until_eof(sock).endswith(b"Hello, world!")


def test_socks5_auth(socks5_auth_proxy: SocksProxy, server: HTTPServer) -> None:
    with connect(socks5_auth_proxy.port) as sock:
        sock.sendall(b"\x05\x02\x00\x02")
        assert recv_exactly(sock, 2) == b"\x05\x02"
        sock.sendall(b"\x01\x04user\x04pass")
        assert recv_exactly(sock, 2) == b"\x01\x00"
        sock.sendall(socks5_connect_request("127.0.0.1", server.port))
        assert read_socks5_reply(sock) == 0
        sock.sendall(HTTP_GET)
        assert recv_until_eof(sock).endswith(b"Hello, world!")


def test_socks5_auth_rejected(socks5_auth_proxy: SocksProxy, server: HTTPServer) -> None:
    # pproxy does not send failure replies: it just closes the connection.
    with connect(socks5_auth_proxy.port) as sock:
        sock.sendall(b"\x05\x02\x00\x02")
        assert recv_exactly(sock, 2) == b"\x05\x02"
        sock.sendall(b"\x01\x04user\x05wrong")
        assert sock.recv(2) in (b"", b"\x01\x01")
    # Authenticating once does not let this IP in without credentials afterwards.
    with connect(socks5_auth_proxy.port) as sock:
        sock.sendall(b"\x05\x01\x00")
        assert sock.recv(2) in (b"", b"\x05\xff")


def test_socks4(socks4_proxy: SocksProxy, server: HTTPServer) -> None:
    with connect(socks4_proxy.port) as sock:
        sock.sendall(
            b"\x04\x01" + struct.pack(">H", server.port) + socket.inet_aton("127.0.0.1") + b"\x00"
        )
        assert recv_exactly(sock, 8)[:2] == b"\x00\x5a"
        sock.sendall(HTTP_GET)
        assert recv_until_eof(sock).endswith(b"Hello, world!")
