"""A misbehaving TLS server for tests/test_tls_chaos.py, in a background thread on 127.0.0.1.

TLS runs in an `ssl.SSLObject` over two `ssl.MemoryBIO`s and the socket is plain, so a script
controls every record: `Conn.seal()` encrypts plaintext into records (one `write()` each) that
the script may send whole, cut, corrupt, split across TCP writes or hold back, and it ends the
connection as it likes: close_notify alone, close_notify then FIN, a bare FIN, a reset (RST),
a fatal alert (made by the server's own SSL object: fed a corrupted record, it answers with
one, encrypted like any record of the session).

One `Script` per accepted connection, by accept order (`scripts[n]`; connections past the list
get `calm`, which answers every request `200 calm`). The server records what it did in
`events` (per connection, in order), so the test can judge from it: `("request", path)` for
each request received, `("late", n)` for `n` request bytes received on a connection after it
was closed (reused stale connection), `("ended", how)` once a connection is finished.
"""

from __future__ import annotations

import _ssl
import ctypes
import socket
import ssl
import struct
import threading
from typing import Callable, Dict, List, Optional, Tuple

import h2.config
import h2.connection
import h2.events
from servers.threaded import REUSE_ADDRESS, ThreadedListener

Script = Callable[["Conn"], None]

HEAD_END = b"\r\n\r\n"
BODY_RECORD = 512  # plaintext bytes per record of a response the scripts cut
IO_TIMEOUT = 5.0  # no server socket call waits longer (the client gone, a test failing)


class Closed(Exception):
    """The client ended the connection (EOF, reset, TLS error)."""


class Conn:
    """One accepted connection: TLS in memory over a plain socket, driven by a script."""

    def __init__(self, server: TLSChaosServer, sock: socket.socket, index: int) -> None:
        self.server = server
        self.sock = sock
        self.index = index
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = server.context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self._plain = b""  # decrypted, not yet parsed
        self.done = False  # the script ended the connection
        self.h2: Optional[h2.connection.H2Connection] = None
        self.split = False  # send() makes one TCP write per byte

    # -- events ------------------------------------------------------------------------------

    def note(self, *event: object) -> None:
        with self.server.lock:
            self.server.events.setdefault(self.index, []).append(event)

    # -- the socket ----------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.split:
            self.send_split(data)
        else:
            self.sock.sendall(data)

    def send_split(self, data: bytes) -> None:
        """One TCP write per byte: every record split at every byte boundary."""
        for i in range(len(data)):
            self.sock.sendall(data[i : i + 1])

    def recv(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except OSError:
            return b""

    def fin(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def rst(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        self.done = True
        self.note("ended", "rst")

    # -- TLS --------------------------------------------------------------------------------

    def flush(self) -> bytes:
        """The records the SSL object has made and nobody sent yet."""
        return self.outgoing.read()

    def handshake(self) -> bytes:
        """Run the handshake; return what the server made after its last flight (TLS 1.3
        session tickets), unsent."""
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self.send(self.flush())
                data = self.recv()
                if not data:
                    raise Closed("EOF during the handshake") from None
                self.incoming.write(data)
                continue
            except ssl.SSLError as exc:
                self.send(self.flush())
                raise Closed(str(exc)) from exc
            return self.flush()

    def seal(self, plaintext: bytes, size: int = 16384) -> List[bytes]:
        """Encrypt `plaintext` into records of at most `size` plaintext bytes, one per item."""
        records = []
        for i in range(0, len(plaintext), size):
            self.tls.write(plaintext[i : i + size])
            records.append(self.flush())
        return records

    def close_notify(self) -> bytes:
        try:
            self.tls.unwrap()
        except ssl.SSLError:
            pass  # it waits for the client's close_notify, which we do not read
        return self.flush()

    def fatal_alert(self) -> bytes:
        """A fatal alert of this session: the SSL object's answer to a corrupted record."""
        self.incoming.write(b"\x17\x03\x03\x00\x20" + b"\x5a" * 32)
        try:
            self.tls.read(1)
        except ssl.SSLError:
            pass
        alert = self.flush()
        assert alert, "the SSL object made no alert"
        return alert

    def new_ticket(self) -> bytes:
        """A TLS 1.3 NewSessionTicket, made now (OpenSSL's SSL_new_session_ticket)."""
        lib = ctypes.CDLL(_ssl.__file__)
        lib.SSL_is_server.argtypes = [ctypes.c_void_p]
        lib.SSL_get_version.argtypes = [ctypes.c_void_p]
        lib.SSL_get_version.restype = ctypes.c_char_p
        lib.SSL_new_session_ticket.argtypes = [ctypes.c_void_p]
        # `_ssl._SSLSocket` begins with PyObject_HEAD, then the socket weakref, then `SSL *`.
        sslobj = self.tls._sslobj  # type: ignore[attr-defined]
        ptr = ctypes.c_void_p.from_address(id(sslobj) + 3 * ctypes.sizeof(ctypes.c_void_p))
        assert lib.SSL_is_server(ptr.value) == 1
        assert lib.SSL_get_version(ptr.value).decode() == self.tls.version()
        assert lib.SSL_new_session_ticket(ptr.value) == 1
        self.tls.do_handshake()
        ticket = self.flush()
        assert ticket, "no ticket made"
        return ticket

    def read_plain(self) -> bytes:
        """Decrypted bytes from the client; b"" once it ended the connection."""
        while True:
            try:
                return self.tls.read(65536)
            except ssl.SSLWantReadError:
                pending = self.flush()  # a key update's answer, say
                if pending:
                    self.send(pending)
                data = self.recv()
                if not data:
                    return b""
                self.incoming.write(data)
            except ssl.SSLError:
                return b""

    # -- HTTP/1.1 ------------------------------------------------------------------------------

    def request(self) -> Optional[str]:
        """The path of the next request (all the client sends is GET), None at its EOF."""
        while HEAD_END not in self._plain:
            data = self.read_plain()
            if not data:
                return None
            self._plain += data
        head, self._plain = self._plain.split(HEAD_END, 1)
        path = head.split(b" ", 2)[1].decode()
        self.note("request", path)
        return path

    def drain(self, closed: bool = True) -> None:
        """Wait for the client to end the connection. If the script `closed` it, a record the
        client sends, too long to be an alert (close_notify), is noted as `late`: a request
        on a stale connection."""
        late = b""
        while True:
            data = self.recv()
            if not data:
                break
            late += data
        while closed and len(late) >= 5:
            length = int.from_bytes(late[3:5], "big")
            if length > 40:
                self.note("late", length)
            late = late[5 + length :]

    # -- HTTP/2 ------------------------------------------------------------------------------

    def h2_start(self) -> None:
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.h2.initiate_connection()
        self.send(b"".join(self.seal(self.h2.data_to_send())))

    def h2_requests(self, count: int) -> List[int]:
        """Read until `count` requests have arrived whole; their stream ids."""
        assert self.h2 is not None
        streams: List[int] = []
        while len(streams) < count:
            data = self.read_plain()
            if not data:
                raise Closed("EOF before the requests")
            for event in self.h2.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    headers = dict(event.headers)
                    self.note("request", headers[b":path"].decode())
                    if event.stream_ended:
                        streams.append(event.stream_id)
            pending = self.h2.data_to_send()
            if pending:
                self.send(b"".join(self.seal(pending)))
        return streams

    def h2_response(self, stream_id: int, body: bytes) -> bytes:
        """The plaintext frames of a whole response (not sent)."""
        assert self.h2 is not None
        headers = [(":status", "200"), ("content-length", str(len(body)))]
        self.h2.send_headers(stream_id, headers)
        self.h2.send_data(stream_id, body, end_stream=True)
        return self.h2.data_to_send()


def calm(conn: Conn) -> None:
    """Answer every request `200 calm` (HTTP/1.1 or, by ALPN, HTTP/2)."""
    conn.send(conn.handshake())
    if conn.tls.selected_alpn_protocol() == "h2":
        conn.h2_start()
        assert conn.h2 is not None
        while True:
            for stream_id in conn.h2_requests(1):
                conn.send(b"".join(conn.seal(conn.h2_response(stream_id, b"calm"))))
    while conn.request() is not None:
        conn.send(b"".join(conn.seal(response(b"calm"))))


def response(body: bytes, kind: str = "length", head_only: bool = False) -> bytes:
    """An HTTP/1.1 response: Content-Length (`length`), `chunked` (two chunks) or
    close-delimited (`close`) framing."""
    if kind == "length":
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
        return head if head_only else head + body
    if kind == "chunked":
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        half = len(body) // 2
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:half], body[half:]) if c)
        return head if head_only else head + chunks + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
    return head if head_only else head + body


class TLSChaosServer:
    """Accepts on 127.0.0.1; runs `scripts[n]` (or `calm`) for the n-th connection."""

    def __init__(self, context: ssl.SSLContext, scripts: List[Script]) -> None:
        self.context = context
        self.scripts = scripts
        self.lock = threading.Lock()
        self.events: Dict[int, List[Tuple[object, ...]]] = {}
        self.errors: List[BaseException] = []
        self.accepted = 0
        self.signals: Dict[str, threading.Event] = {}
        self._listener = ThreadedListener(
            self._run, self._admit, lock=self.lock, options=[REUSE_ADDRESS]
        )
        self.listener = self._listener.sock
        self.port: int = self._listener.port
        self.url = f"https://127.0.0.1:{self.port}"

    def signal(self, name: str) -> threading.Event:
        with self.lock:
            return self.signals.setdefault(name, threading.Event())

    def _admit(self, sock: socket.socket) -> Tuple[Script, socket.socket, int]:
        sock.settimeout(IO_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        index = self.accepted
        self.accepted += 1
        script = self.scripts[index] if index < len(self.scripts) else calm
        return script, sock, index

    def _run(self, script: Script, sock: socket.socket, index: int) -> None:
        conn = Conn(self, sock, index)
        try:
            script(conn)
            how = "script"
        except (Closed, OSError, ssl.SSLError) as exc:
            how = f"client: {exc!r}"
        except BaseException as exc:  # pragma: no cover - a bug of the test server
            self.errors.append(exc)
            how = "error"
        if not conn.done:
            conn.note("ended", how)
        sock.close()

    def ended(self) -> int:
        """How many connections have finished."""
        with self.lock:
            return sum(any(e[0] == "ended" for e in evs) for evs in self.events.values())

    def close(self) -> None:
        self._listener.close()
        for signal in self.signals.values():
            signal.set()
