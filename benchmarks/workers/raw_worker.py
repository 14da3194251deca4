"""Raw-socket reference: hand-written request bytes, Content-Length parsing, blocking reads
(GETs, over TLS a blocking `ssl.SSLSocket`; for uploads the head, then the body in one
`sendall`).

This is roughly the ceiling for a pure-Python HTTP/1.1 client on one connection: no header
validation, no pool, no state machine.
"""

from __future__ import annotations

import argparse
import socket
import ssl
from typing import Optional
from urllib.parse import urlsplit

from common import Result, check_size, main, run_sync

CHUNK = 1024 * 1024  # a 64 KiB read size halves throughput on loopback


class RawConnection:
    def __init__(self, url: str, cafile: Optional[str] = None) -> None:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if parts.scheme == "https":
            # A blocking `ssl.SSLSocket`, offering ALPN http/1.1 as the Python clients do.
            context = ssl.create_default_context(cafile=cafile)
            context.set_alpn_protocols(["http/1.1"])
            sock = context.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.request = f"GET {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        self.post_head = f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
        self.buffer = b""
        self.scratch = bytearray(CHUNK)

    def get(self) -> int:
        self.sock.sendall(self.request)
        return self.response()

    def post(self, body: bytes) -> int:
        """Send `body` as the head's one write and the body's one `sendall`; read the answer."""
        sock = self.sock
        sock.sendall(self.post_head + b"Content-Length: %d\r\n\r\n" % len(body))
        sock.sendall(body)
        self.response()
        return len(body)

    def response(self) -> int:
        """Read a response; its body's length."""
        sock = self.sock
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        while end < 0:
            data = sock.recv(CHUNK)
            if not data:
                raise ConnectionError("server closed the connection")
            buffer += data
            end = buffer.find(b"\r\n\r\n")
        head = buffer[:end].lower()
        start = head.find(b"\r\ncontent-length:")
        if start < 0:
            raise ValueError("no Content-Length")
        stop = head.find(b"\r\n", start + 2)
        length = int(head[start + 17 : stop if stop >= 0 else end])
        body_start = end + 4
        have = len(buffer) - body_start
        if have >= length:
            self.buffer = buffer[body_start + length :]
            return length
        self.buffer = b""
        remaining = length - have
        view = memoryview(self.scratch)
        recv_into = sock.recv_into
        while remaining > 0:
            n = recv_into(view, min(remaining, CHUNK))
            if not n:
                raise ConnectionError("server closed the connection mid-body")
            remaining -= n
        return length


def measure(args: argparse.Namespace) -> Result:
    connection = RawConnection(args.url, args.cafile)
    size = args.size

    def one() -> int:
        return check_size(connection.get(), size)

    if args.scenario == "upload":
        body = bytes(size)
        return run_sync(lambda: connection.post(body), args, unit="MB/s")
    if args.scenario in ("seq", "https-seq"):
        return run_sync(one, args)
    if args.scenario == "stream":
        return run_sync(one, args, unit="MB/s")
    raise ValueError(f"raw worker has no scenario {args.scenario!r}")


if __name__ == "__main__":
    main(measure, {"version": "-"})
