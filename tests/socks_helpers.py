"""Shared by the SOCKS tests (imported by tests/test_socks_*.py): the bytes a SOCKS proxy
replies with, the asyncio/trio `anyio_backend` fixture, and a mock backend that records what is
written (`RecordingBackend`, and `mock_request` to send one request through it)."""

from __future__ import annotations

import ssl
from typing import Any, Iterable, List, Optional, Tuple

import pytest

from httpcore.base import ConnectError, MockBackend, MockStream
from httpcore.socks import SOCKSProxy

HELLO = b"Hello, world!"

# Replies of a SOCKS5 proxy (API.md §5.5).
NO_AUTH = b"\x05\x00"


USER_PASS = b"\x05\x02"


AUTH_OK = b"\x01\x00"


AUTH_FAILED = b"\x01\x01"


CONNECTED = b"\x05\x00\x00\x01\xff\x00\x00\x01\x00\x50"


REFUSED = b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00"


SOCKS4_GRANTED = b"\x00\x5a\x00\x50\x7f\x00\x00\x01"


HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Type: plain/text\r\nContent-Length: 13\r\n\r\nHello, world!"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- a mock backend that records what is written ---------------------------------------------


class RecordingStream(MockStream):
    def __init__(self, buffer: List[bytes], written: List[bytes], http2: bool = False) -> None:
        super().__init__(buffer, http2=http2)
        self.written = written
        self.tls: List[Optional[str]] = []

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self.written.append(buffer)

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Any:
        self.tls.append(server_hostname)
        return self


class RecordingBackend(MockBackend):
    def __init__(self, buffer: List[bytes], http2: bool = False, failures: int = 0) -> None:
        super().__init__(buffer, http2=http2)
        self.written: List[bytes] = []
        self.connects: List[Tuple[str, int, Optional[float]]] = []
        self.streams: List[RecordingStream] = []
        self.failures = failures
        self.sleeps: List[float] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: Optional[float] = None,
        local_address: Optional[str] = None,
        socket_options: Optional[Iterable[Any]] = None,
    ) -> Any:
        self.connects.append((host, port, timeout))
        if self.failures:
            self.failures -= 1
            raise ConnectError("refused")
        stream = RecordingStream(list(self._buffer), self.written, http2=self._http2)
        self.streams.append(stream)
        return stream

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def mock_request(
    buffer: List[bytes],
    url: str = "http://example.com/",
    proxy_url: str = "socks5://localhost:1080/",
    **kwargs: Any,
) -> Tuple[RecordingBackend, Any]:
    backend = RecordingBackend(buffer)
    with SOCKSProxy(proxy_url, network_backend=backend, **kwargs) as proxy:
        response = proxy.request("GET", url)
    return backend, response
