"""A scriptable threaded TCP server for protocol edge cases (`raw_server` fixture).

``RawServer(handler)`` where ``handler`` is one of

- ``bytes``: for each connection, read one request (head up to ``\\r\\n\\r\\n`` plus a
  Content-Length or chunked body), send the bytes, close;
- a list of ``bytes``: one response per request on the same (keep-alive) connection, in order;
  then close. Every connection replays the same list;
- a callable ``handler(conn, server)`` with full control of the accepted socket (already
  TLS-wrapped with ``tls=True``); ``server.read_request(conn)`` reads (and records) one request.

Attributes: ``.host``, ``.port``, ``.url``, ``.connections`` (accepted connections),
``.requests`` (per connection: all raw bytes read by the server on it, in accept order),
``.messages`` (each complete request read, in order), ``.errors`` (exceptions raised by handlers or
TLS handshakes; the fixture fails the test if any is not a plain connection error).

Each accepted socket has a timeout (``conn_timeout``, 10 s) so nothing blocks forever; ``close()``
shuts every open connection down and joins all threads (a callable handler blocked on something
other than its socket, e.g. an Event without timeout, is not interrupted: close() then raises
after 5 s). After the last response the bytes/list modes send TLS close_notify, half-close and
drain the client for up to 1 s before closing, so the client sees a clean EOF, not a reset.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import threading
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from .threaded import REUSE_ADDRESS, ThreadedListener

RawHandler = Union[bytes, Sequence[bytes], Callable[[socket.socket, "RawServer"], None]]

MAX_HEAD = 1024 * 1024


class RequestReadError(Exception):
    pass


class RawServer:
    def __init__(
        self,
        handler: RawHandler,
        *,
        tls: bool = False,
        ssl_context: Optional[ssl.SSLContext] = None,
        conn_timeout: float = 10.0,
    ) -> None:
        if tls and ssl_context is None:
            raise ValueError("tls=True needs a server ssl_context")
        self.handler = handler
        self.host = "127.0.0.1"
        self.tls = tls
        self._ssl_context = ssl_context if tls else None
        self.conn_timeout = conn_timeout
        self.connections = 0
        self._data: List[bytearray] = []
        self.messages: List[bytes] = []
        self.errors: List[BaseException] = []
        self._pending: Dict[int, bytes] = {}
        self._index_by_socket: Dict[int, int] = {}  # id(socket) -> connection index
        self._lock = threading.Lock()
        self._listener = ThreadedListener(
            self._serve_connection,
            self._admit,
            lock=self._lock,
            options=[REUSE_ADDRESS],
            backlog=64,
            name="raw-server",
        )
        self._stopping = self._listener.stopping
        self.port: int = self._listener.port

    # -- public ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def requests(self) -> List[bytes]:
        with self._lock:
            return [bytes(data) for data in self._data]

    def read_request(self, conn: socket.socket) -> Optional[bytes]:
        """Read one request (head + Content-Length/chunked body) from ``conn`` and record it.

        Returns None on a clean EOF before any byte of a new request; raises RequestReadError if
        the peer closes in the middle of a request.
        """
        index = self._index_of(conn)
        with self._lock:
            buffer = self._pending.pop(index, b"")
        reader = _Reader(conn, buffer, lambda data: self._record(index, data))
        head = reader.read_until(b"\r\n\r\n", MAX_HEAD)
        if head is None:
            return None
        body = b""
        lines = head.split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            if b":" in line:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = reader.read_chunked()
        elif b"content-length" in headers:
            body = reader.read_exactly(int(headers[b"content-length"]))
        message = head + body
        with self._lock:
            self.messages.append(message)
            if reader.buffer:  # pipelined bytes: kept for the next read_request()
                self._pending[index] = reader.buffer
        return message

    def close(self) -> None:
        hanging = self._listener.close()
        if hanging:  # pragma: no cover
            raise RuntimeError(f"raw server threads still running: {hanging}")

    def __repr__(self) -> str:
        return f"<RawServer {self.url} connections={self.connections}>"

    # -- internals ------------------------------------------------------------------------------

    def _index_of(self, conn: socket.socket) -> int:
        with self._lock:
            index = self._index_by_socket.get(id(conn))
        if index is None:
            raise ValueError("not a connection accepted by this server")
        return index

    def _record(self, index: int, data: bytes) -> None:
        with self._lock:
            self._data[index] += data

    def _admit(self, conn: socket.socket) -> Tuple[socket.socket, int]:
        index = len(self._data)
        self._data.append(bytearray())
        self.connections += 1
        return conn, index

    def _serve_connection(self, conn: socket.socket, index: int) -> None:
        sock = conn
        try:
            conn.settimeout(self.conn_timeout)
            if self._ssl_context is not None:
                sock = self._ssl_context.wrap_socket(conn, server_side=True)
                self._listener.track(sock)
            with self._lock:
                self._index_by_socket[id(sock)] = index
            self._handle(sock)
        except (OSError, RequestReadError) as exc:
            # Includes ssl.SSLError and timeouts: the client hung up, rejected our certificate...
            if not self._stopping.is_set():
                with self._lock:
                    self.errors.append(exc)
        except BaseException as exc:
            with self._lock:
                self.errors.append(exc)
        finally:
            with self._lock:
                self._pending.pop(index, None)
                self._index_by_socket.pop(id(sock), None)
            _close_quietly(sock)
            if sock is not conn:
                _close_quietly(conn)

    def _handle(self, sock: socket.socket) -> None:
        handler = self.handler
        if callable(handler):
            handler(sock, self)
            return
        responses = [handler] if isinstance(handler, (bytes, bytearray)) else list(handler)
        for response in responses:
            if self.read_request(sock) is None:
                return
            sock.sendall(response)
        _graceful_close(sock)


class _Reader:
    def __init__(self, sock: socket.socket, buffer: bytes, record: Callable[[bytes], None]) -> None:
        self.sock = sock
        self.buffer = buffer
        self.record = record

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.record(data)
        self.buffer += data
        return True

    def read_until(self, delimiter: bytes, limit: int) -> Optional[bytes]:
        while delimiter not in self.buffer:
            if len(self.buffer) > limit:
                raise RequestReadError("request head too large")
            if not self._fill():
                if self.buffer:
                    raise RequestReadError(f"EOF in request head: {self.buffer!r}")
                return None
        index = self.buffer.index(delimiter) + len(delimiter)
        result, self.buffer = self.buffer[:index], self.buffer[index:]
        return result

    def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise RequestReadError("EOF in request body")
        result, self.buffer = self.buffer[:size], self.buffer[size:]
        return result

    def _line(self) -> bytes:
        line = self.read_until(b"\r\n", MAX_HEAD)
        if line is None:
            raise RequestReadError("EOF in chunked body")
        return line

    def read_chunked(self) -> bytes:
        parts: List[bytes] = []
        while True:
            size_line = self._line()
            parts.append(size_line)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers, up to the empty line
                    line = self._line()
                    parts.append(line)
                    if line == b"\r\n":
                        return b"".join(parts)
            parts.append(self.read_exactly(size + 2))


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:  # pragma: no cover
        pass


def _graceful_close(sock: socket.socket, linger: float = 1.0) -> None:
    """Close after the response so the client sees a clean EOF rather than a reset.

    TLS: send close_notify. Then half-close and drain what the client still sends (up to
    ``linger`` seconds) so unread data does not turn our close() into a RST.
    """
    try:
        sock.settimeout(linger)
        if isinstance(sock, ssl.SSLSocket):
            try:
                sock = sock.unwrap()
            except (OSError, ValueError):
                return
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    except OSError:
        pass


# -- handlers for network faults (pass them to RawServer / raw_server) ------------------------


def stall(conn: socket.socket, server: RawServer) -> None:
    """Accept, then neither read nor write until the server closes (or ``conn_timeout``):
    a client writing a large body fills the socket buffers and its write times out."""
    server._stopping.wait(server.conn_timeout)


def read_then_stall(conn: socket.socket, server: RawServer) -> None:
    """Read one request and never answer it: the client's read times out."""
    server.read_request(conn)
    stall(conn, server)


def reset(conn: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets a TCP reset, not a FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def reset_after(data: bytes) -> Callable[[socket.socket, RawServer], None]:
    """A handler that reads one request, sends ``data`` (e.g. a response cut short) and
    resets the connection."""

    def handler(conn: socket.socket, server: RawServer) -> None:
        server.read_request(conn)
        conn.sendall(data)
        reset(conn)

    return handler


def reset_during_upload(conn: socket.socket, server: RawServer) -> None:
    """Read the first bytes of a request, then reset the connection (the client is still
    writing its body)."""
    conn.recv(65536)
    reset(conn)


_TCP_STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}


def sockets_to(port: int, ignore: Sequence[socket.socket] = ()) -> List[Tuple[str, str]]:
    """This process's open TCP sockets whose peer port is ``port`` (but those in ``ignore``),
    as (state, remote address in /proc notation), read from /proc (Linux only).

    Unlike a count of descriptors, this does not see the sockets that a server running in this
    process accepted (their peer port is the client's), so it is free of races with them.
    """
    ignored = {str(os.fstat(sock.fileno()).st_ino) for sock in ignore if sock.fileno() >= 0}
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[len("socket:[") : -1] not in ignored:
            inodes.add(link[len("socket:[") : -1])
    found: List[Tuple[str, str]] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    fields = line.split()
                    remote, state, inode = fields[2], fields[3], fields[9]
                    if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == port:
                        found.append((_TCP_STATES.get(state, state), remote))
        except FileNotFoundError:  # pragma: no cover  (no IPv6)
            continue
    return found
