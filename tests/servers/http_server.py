"""Hypercorn serving `servers.app.app` on 127.0.0.1, in the shared background loop."""

from __future__ import annotations

import asyncio
import http.client
import logging
import socket
import ssl
import time
from typing import Optional

from hypercorn.asyncio import serve
from hypercorn.config import Config

from .app import app
from .loop import BackgroundLoop

logger = logging.getLogger("tests.servers.hypercorn")


def bind_listening_socket(host: str = "127.0.0.1") -> socket.socket:
    """A listening TCP socket on an ephemeral port (connections queue until someone accepts)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    return sock


class HTTPServer:
    """One hypercorn instance; `.url` is ``http://127.0.0.1:PORT`` or ``https://...``.

    Plain: HTTP/1.1 and h2c (prior knowledge or Upgrade). TLS: ALPN ``h2`` and ``http/1.1``.
    With ``uds=path`` it listens on that Unix socket instead (``.port`` is None, ``.url`` is
    ``http://localhost``: the host only fills the Host header).
    """

    def __init__(
        self,
        bg: BackgroundLoop,
        certfile: Optional[str] = None,
        client_context: Optional[ssl.SSLContext] = None,
        uds: Optional[str] = None,
    ) -> None:
        self._bg = bg
        self.host = "127.0.0.1" if uds is None else "localhost"
        self.uds = uds
        self._client_context = client_context
        self.scheme = "https" if certfile else "http"
        if uds is None:
            sock = bind_listening_socket(self.host)
            self.port: Optional[int] = sock.getsockname()[1]
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(uds)
            sock.listen(128)
            self.port = None

        config = Config()
        # hypercorn takes ownership of the file descriptor (socket.socket(fileno=...)).
        config.bind = [f"fd://{sock.detach()}"]
        if certfile:
            config.certfile = certfile
            config.keyfile = certfile
            config.alpn_protocols = ["h2", "http/1.1"]
        config.errorlog = logger
        config.accesslog = None
        config.graceful_timeout = 1.0
        config.keep_alive_timeout = 5.0
        self._shutdown: Optional[asyncio.Event] = None
        self._serving = bg.submit(self._serve(config))
        self._wait_ready()

    async def _serve(self, config: Config) -> None:
        self._shutdown = asyncio.Event()
        await serve(app, config, shutdown_trigger=self._shutdown.wait)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        if self.port is None:
            return f"{self.scheme}://{self.host}"
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def localhost_url(self) -> str:
        return f"{self.scheme}://localhost:{self.port}"

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._serving.done():
                self._serving.result()  # raises the startup error
                raise RuntimeError("hypercorn exited during startup")
            conn: http.client.HTTPConnection
            if self.uds is not None:
                conn = _UnixHTTPConnection(self.uds)
            elif self.scheme == "https":
                conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=1.0, context=self._client_context
                )
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=1.0)
            try:
                conn.request("GET", "/")
                if conn.getresponse().status == 200:
                    return
            except (OSError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
            finally:
                conn.close()

    def has_stopped(self) -> bool:
        """Whether hypercorn stopped serving (a crash: `close` was not called)."""
        return self._serving.done()

    def stop_reason(self) -> str:
        if not self._serving.done():
            return "still serving"
        error = self._serving.exception()
        return "it returned" if error is None else repr(error)

    def close(self) -> None:
        shutdown = self._shutdown
        if shutdown is not None:
            self._bg.loop.call_soon_threadsafe(shutdown.set)
        try:
            self._serving.result(timeout=10.0)
        except Exception:
            logger.exception("hypercorn did not shut down cleanly")

    def __repr__(self) -> str:
        return f"<HTTPServer {self.url}>"


class _UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket (for the readiness check)."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=1.0)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(1.0)
        sock.connect(self._path)
        self.sock = sock
