"""Hypercorn serving `servers.app.app` over TLS (HTTP/1.1, h2) *and* HTTP/3 (QUIC), on one
port number (TCP and UDP), in the shared background loop.

Hypercorn adds `Alt-Svc: h3=":PORT"; ma=3600` to its responses over TCP when it serves QUIC:
that is what the Alt-Svc discovery tests rely on. `.url` works for both TCP and HTTP/3 (prior
knowledge) since both listen on `.port`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Optional, Tuple

from hypercorn.config import Config

from .http_server import HTTPServer, bind_listening_socket, logger
from .loop import BackgroundLoop


def bind_tcp_and_udp(host: str = "127.0.0.1") -> Tuple[socket.socket, socket.socket]:
    """A listening TCP socket and a UDP socket bound to the same port number."""
    for _ in range(50):
        tcp = bind_listening_socket(host)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind((host, tcp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            continue
        return tcp, udp
    raise RuntimeError("no port free for both TCP and UDP")


class HTTP3Server(HTTPServer):
    """Hypercorn with TLS over TCP and HTTP/3 over UDP on `.port`."""

    def __init__(
        self,
        bg: BackgroundLoop,
        certfile: str,
        client_context: Optional[ssl.SSLContext] = None,
        alt_svc: bool = True,
    ) -> None:
        self._bg = bg
        self.host = "127.0.0.1"
        self.uds = None
        self._client_context = client_context
        self.scheme = "https"
        tcp, udp = bind_tcp_and_udp(self.host)
        self.port = tcp.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{tcp.detach()}"]
        config.quic_bind = [f"fd://{udp.detach()}"]
        config.certfile = certfile
        config.keyfile = certfile
        config.alpn_protocols = ["h2", "http/1.1"]
        if not alt_svc:
            config.alt_svc_headers = ["clear"]
        config.errorlog = logger
        config.accesslog = None
        config.graceful_timeout = 1.0
        config.keep_alive_timeout = 5.0
        self._shutdown: Optional[asyncio.Event] = None
        self._serving = bg.submit(self._serve(config))
        self._wait_ready()
        # The UDP socket came by file descriptor: hypercorn could not know its address for
        # the Alt-Svc header, so tell it.
        if alt_svc:
            config._quic_addresses = [(self.host, self.port)]

    def __repr__(self) -> str:
        return f"<HTTP3Server {self.url} (+ QUIC)>"
