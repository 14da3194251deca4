"""The byte streams the proxy of `proxy_tls_chaos_world.py` talks over: a plain socket
(`SocketLink`), and TLS in memory over another link (`TLSLink`: an `ssl.SSLObject` over two
`MemoryBIO`s, server side), which lets a fault decide what each record carries, cut a flight
in half, corrupt a record, or end a session with or without its close_notify. `Reader` gives
buffered reads (HTTP heads, SOCKS fields) from a link; `Gate` holds a relay (bounded)."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from typing import List, Optional, Union


class SocketLink:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def recv(self) -> bytes:
        return self.sock.recv(65536)

    def send(self, data: bytes) -> None:
        if data:
            self.sock.sendall(data)

    def fin(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def rst(self) -> None:
        """A TCP reset (SO_LINGER 0); a thread blocked reading the socket wakes up first."""
        try:
            self.sock.shutdown(socket.SHUT_RD)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.sock.close()

    def drain(self) -> None:
        """Read and drop until the client closes (or the socket times out)."""
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass


Link = Union[SocketLink, "TLSLink"]


class TLSLink:
    """Server-side TLS in memory over `lower`; `recv`/`send` plaintext. The SSL object is
    used under a lock (a relay reads it in one thread and writes it in another)."""

    def __init__(self, lower: Link, context: ssl.SSLContext) -> None:
        self.lower = lower
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self._lock = threading.Lock()
        self._sending = threading.Lock()
        self.record_size = 16384  # plaintext bytes per record that `send` makes

    def _feed(self) -> bool:
        data = self.lower.recv()
        with self._lock:
            if data:
                self.incoming.write(data)
            else:
                self.incoming.write_eof()
        return bool(data)

    def first_flight(self) -> bytes:
        """Read the ClientHello; the server's first flight, made and not sent."""
        while True:
            if not self._feed():
                raise EOFError("EOF before the ClientHello")
            with self._lock:
                try:
                    self.tls.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                flight = self.outgoing.read()
            if flight:
                return flight

    def handshake(self) -> None:
        while True:
            with self._lock:
                try:
                    self.tls.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
                except ssl.SSLError:
                    self.lower.send(self.outgoing.read())  # our alert
                    raise
                out = self.outgoing.read()
            self.lower.send(out)  # a flight, or TLS 1.3 session tickets
            if done:
                return
            if not self._feed():
                raise EOFError("EOF during the handshake")

    def recv(self) -> bytes:
        while True:
            with self._lock:
                try:
                    return self.tls.read(65536)
                except ssl.SSLWantReadError:
                    pass
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return b""
            self._feed()

    def seal(self, plaintext: bytes, size: int = 16384) -> List[bytes]:
        """`plaintext` as records of at most `size` bytes, one item each, not sent."""
        records = []
        with self._lock:
            for i in range(0, len(plaintext), size):
                self.tls.write(plaintext[i : i + size])
                records.append(self.outgoing.read())
        return records

    def send(self, data: bytes) -> None:
        with self._sending:
            self.lower.send(b"".join(self.seal(data, self.record_size)))

    def close_notify(self) -> bytes:
        with self._lock:
            try:
                self.tls.unwrap()
            except ssl.SSLError:
                pass  # it would wait for the client's, which nobody reads
            return self.outgoing.read()


class Reader:
    """Buffered reads from a link."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.buffer = bytearray()

    def _fill(self) -> None:
        data = self.link.recv()
        if not data:
            raise EOFError("client closed")
        self.buffer += data

    def exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def until(self, delimiter: bytes) -> bytes:
        while delimiter not in self.buffer:
            self._fill()
        end = self.buffer.index(delimiter) + len(delimiter)
        return self.exact(end)


def header(head: bytes, name: bytes) -> Optional[bytes]:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


class Gate:
    """Holds a relay's server->client bytes until released (a wait of at most `limit`)."""

    def __init__(self, limit: float) -> None:
        self._open = threading.Event()
        self._open.set()
        self._limit = limit
        self.released = False

    def hold(self) -> None:
        self.released = False
        self._open.clear()

    def release(self) -> None:
        self.released = True
        self._open.set()

    def wait(self) -> bool:
        return self._open.wait(self._limit)
