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
from typing import List, Optional, Tuple

import hypercorn.protocol.quic
from aioquic.quic.events import QuicEvent
from hypercorn.config import Config
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.events import StreamClosed
from hypercorn.protocol.h3 import H3Protocol

from .http_server import HTTPServer, bind_listening_socket, logger
from .loop import BackgroundLoop


class _StopTolerantH3Protocol(H3Protocol):
    """hypercorn's HTTP/3 server minus one fault: it ignores a client's STOP_SENDING, so its
    app's next write on that stream raises in aioquic ("Cannot send data after the stream was
    reset", or "... on a finished stream" once aioquic dropped it) and the exception ends the
    server's whole UDP side: every later test sharing it then times out. A client may stop a
    response it no longer wants at any time (RFC 9000 section 3.5, a read timeout does); what
    the app still writes there is discarded, as a server should.

    Any other exception is kept in the config's `quic_errors` (`HTTP3Server.has_stopped`)
    before it ends the UDP side, which nothing else would tell."""

    async def handle(self, quic_event: QuicEvent) -> None:
        try:
            await super().handle(quic_event)
        except Exception as exc:
            getattr(self.config, "quic_errors", []).append(exc)
            raise

    async def stream_send(self, event: StreamEvent) -> None:
        try:
            await super().stream_send(event)
        except (RuntimeError, ValueError, AssertionError) as exc:
            # aioquic 1.0 says it with an assertion: "cannot call write() after reset()".
            stopped = "Cannot send data" in str(exc) or "after reset()" in str(exc)
            if isinstance(event, StreamClosed) or not stopped:
                getattr(self.config, "quic_errors", []).append(exc)
                raise
            logger.debug("stream %d was stopped by the client: %s", event.stream_id, exc)
        except Exception as exc:
            getattr(self.config, "quic_errors", []).append(exc)
            raise


# hypercorn's QUIC protocol creates its HTTP/3 protocol by this module-level name; hypercorn
# serves only the tests in this process.
hypercorn.protocol.quic.H3Protocol = _StopTolerantH3Protocol  # type: ignore[misc]


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
        self.quic_errors: List[BaseException] = []
        config.quic_errors = self.quic_errors  # type: ignore[attr-defined]
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

    def has_stopped(self) -> bool:
        """Whether hypercorn stopped serving, or its UDP side did (see _StopTolerantH3Protocol)."""
        return bool(self.quic_errors) or super().has_stopped()

    def stop_reason(self) -> str:
        if self.quic_errors:
            return f"its UDP side failed: {self.quic_errors[0]!r}"
        return super().stop_reason()

    def __repr__(self) -> str:
        return f"<HTTP3Server {self.url} (+ QUIC)>"
