"""Shared fixtures: local test servers and proxies (all on 127.0.0.1, no internet).

Session-scoped (started once, on first use, torn down at the end of the session):

- ``ca``: a ``trustme.CA``; ``client_ssl_context`` (per test): ``ssl.create_default_context()``
  trusting it. Server certificates cover ``localhost``, ``127.0.0.1`` and ``::1``.
- ``server``: hypercorn, HTTP/1.1 + h2c (prior knowledge), ``.url``/``.host``/``.port``.
- ``tls_server``: the same app over TLS with ALPN h2/http/1.1; also ``.localhost_url``.
- ``http_proxy``, ``http_proxy_auth`` (Basic user/pass), ``https_proxy`` (TLS listener):
  see tests/servers/proxy.py. Their counters are reset before every test.
- ``socks5_proxy``, ``socks5_auth_proxy`` (user/pass), ``socks4_proxy``: pproxy subprocess.

Per test: ``raw_server(handler, tls=False)`` factory, see tests/servers/raw.py (with
``ssl_context=`` to serve TLS with a context of the test's own); ``stall_server``, a server that
reads nothing until drained (tests/servers/stall.py); ``uds_server``, hypercorn on a Unix socket.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import pytest
import trustme
from h2servers import H2Server
from servers import (
    BackgroundLoop,
    HTTPProxy,
    HTTPServer,
    PproxyProcess,
    RawHandler,
    RawServer,
    RequestReadError,
    SocksProxy,
    StallServer,
)

PROXY_AUTH: Tuple[str, str] = ("user", "pass")

_started_proxies: List[HTTPProxy] = []


def make_server_ssl_context(
    certfile: str, alpn: Optional[Sequence[str]] = ("http/1.1",)
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def client_ssl_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture(scope="session")
def trust(ca: trustme.CA) -> ssl.SSLContext:
    """A client context trusting the test CA only (made once: loading the system's CAs is
    slow)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(context)
    return context


@pytest.fixture(scope="session")
def server_cert_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PEM file with the private key and certificate chain for localhost/127.0.0.1/::1."""
    cert = ca.issue_cert("localhost", "127.0.0.1", "::1")
    path: Path = tmp_path_factory.mktemp("certs") / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="session")
def background_loop() -> Iterator[BackgroundLoop]:
    """The asyncio loop thread hosting hypercorn and the HTTP proxies."""
    bg = BackgroundLoop()
    yield bg
    bg.close()


@pytest.fixture(scope="session")
def server(background_loop: BackgroundLoop) -> Iterator[HTTPServer]:
    srv = HTTPServer(background_loop)
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def tls_server(
    background_loop: BackgroundLoop, server_cert_file: str, ca: trustme.CA
) -> Iterator[HTTPServer]:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    srv = HTTPServer(background_loop, certfile=server_cert_file, client_context=context)
    yield srv
    srv.close()


@pytest.fixture
def h2_server() -> Iterator[Callable[..., H2Server]]:
    """Starts scripted HTTP/2 servers (`h2servers.H2Server(**options)`); closes them at the end
    and raises the first error one of them hit (a bug in the test server)."""
    servers: List[H2Server] = []

    def start(**kwargs: Any) -> H2Server:
        srv = H2Server(**kwargs)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.close()
    for srv in servers:
        if srv.errors:
            raise srv.errors[0]


@pytest.fixture
def raw_server(server_cert_file: str) -> Iterator[Callable[..., RawServer]]:
    servers: List[RawServer] = []

    def start(
        handler: RawHandler,
        *,
        tls: bool = False,
        alpn: Optional[Sequence[str]] = ("http/1.1",),
        conn_timeout: float = 10.0,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> RawServer:
        context = ssl_context
        if tls and context is None:
            context = make_server_ssl_context(server_cert_file, alpn)
        srv = RawServer(handler, tls=tls, ssl_context=context, conn_timeout=conn_timeout)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.close()
    # Connection errors (client hung up, rejected the certificate...) are expected; anything
    # else (e.g. an AssertionError in a callable handler) fails the test.
    expected = (OSError, RequestReadError)
    unexpected = [exc for srv in servers for exc in srv.errors if not isinstance(exc, expected)]
    if unexpected:
        raise unexpected[0]


@pytest.fixture
def stall_server() -> Iterator[StallServer]:
    srv = StallServer()
    yield srv
    srv.close()


@pytest.fixture
def uds_server(
    background_loop: BackgroundLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HTTPServer]:
    """Hypercorn (the `server` app) listening on a Unix socket: ``.uds`` is its path."""
    # A short directory: Unix socket paths are limited to ~100 bytes.
    path = tmp_path_factory.mktemp("uds") / "s.sock"
    srv = HTTPServer(background_loop, uds=str(path))
    yield srv
    srv.close()


def _proxy(
    bg: BackgroundLoop,
    auth: Optional[Tuple[str, str]] = None,
    ssl_context: Optional[ssl.SSLContext] = None,
) -> Iterator[HTTPProxy]:
    proxy = HTTPProxy(bg, auth=auth, ssl_context=ssl_context)
    _started_proxies.append(proxy)
    yield proxy
    _started_proxies.remove(proxy)
    proxy.close()


@pytest.fixture(scope="session")
def http_proxy(background_loop: BackgroundLoop) -> Iterator[HTTPProxy]:
    yield from _proxy(background_loop)


@pytest.fixture(scope="session")
def http_proxy_auth(background_loop: BackgroundLoop) -> Iterator[HTTPProxy]:
    yield from _proxy(background_loop, auth=PROXY_AUTH)


@pytest.fixture(scope="session")
def https_proxy(background_loop: BackgroundLoop, server_cert_file: str) -> Iterator[HTTPProxy]:
    context = make_server_ssl_context(server_cert_file, alpn=None)
    yield from _proxy(background_loop, ssl_context=context)


@pytest.fixture(autouse=True)
def _reset_proxy_counters() -> None:
    for proxy in _started_proxies:
        proxy.reset()


@pytest.fixture(scope="session")
def _pproxy() -> Iterator[PproxyProcess]:
    process = PproxyProcess([("socks5", None), ("socks5", PROXY_AUTH), ("socks4", None)])
    yield process
    process.close()


@pytest.fixture(scope="session")
def socks5_proxy(_pproxy: PproxyProcess) -> SocksProxy:
    return _pproxy.proxies[0]


@pytest.fixture(scope="session")
def socks5_auth_proxy(_pproxy: PproxyProcess) -> SocksProxy:
    return _pproxy.proxies[1]


@pytest.fixture(scope="session")
def socks4_proxy(_pproxy: PproxyProcess) -> SocksProxy:
    return _pproxy.proxies[2]
