"""The world of `test_proxy_chaos.py`: a misbehaving proxy on 127.0.0.1 (`ChaosProxy`) and the
faults it can act out (`FAULTS`), with the outcome API.md documents for each (`expected`).

`ChaosProxy` listens on one port and speaks whatever the client speaks: HTTP CONNECT, HTTP
forwarding (absolute-form requests), SOCKS5 (with or without username/password) and
SOCKS4/4A. Each accepted connection takes the next fault queued with `push()` (none: it
behaves). Behaving, it relays to the real target when the target port is one of
`real_ports` (hypercorn, plain or TLS), and otherwise answers by itself: a plain HTTP/1.1
responder, or over TLS (it then stands in for the target, with a certificate the client
trusts) when the client opens TLS through the tunnel. That lets the faults after the tunnel
is up hit exact points of the exchange (mid TLS handshake, mid request, mid response body).

Every connection is recorded (`Record`): the protocol, the fault, the target port, the
requests it answered, the credentials it was sent, and marks (`"stalling"`, `"closed idle"`,
...) that a test can wait for (bounded) instead of sleeping.
"""

from __future__ import annotations

import collections
import dataclasses
import selectors
import socket
import ssl
import struct
import threading
from typing import Deque, Dict, FrozenSet, List, Optional, Tuple, Type

from servers.threaded import ThreadedListener

import httpcore

OK_BODY = b"chaos ok"
OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(OK_BODY), OK_BODY)
CUT_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100
# A fatal TLS alert record (handshake_failure), as a target might send at once.
TLS_ALERT = b"\x15\x03\x03\x00\x02\x02\x28"
CONNECT_OK = b"HTTP/1.1 200 Connection established\r\n\r\n"
SOCKET_TIMEOUT = 5.0

Errors = Tuple[Type[BaseException], ...]


@dataclasses.dataclass(frozen=True)
class Fault:
    """One way for the proxy to misbehave: the protocol it applies to (`connect`, `forward`,
    `socks5`, `socks4`, or `tunnel`: after a CONNECT or SOCKS tunnel is up), whether it needs
    an https target (`tls`), and the outcome documented for it (`errors`, empty: the request
    succeeds; `message`: what the exception says, `exact` or as a substring)."""

    family: str
    errors: Errors = ()
    message: str = ""
    exact: bool = False
    tls: Optional[bool] = None  # True: https targets only; False: http only; None: either
    short: str = ""  # the timeout made short for it ("read" or "connect")
    auth: Optional[bool] = None  # True: only with credentials; False: only without


DISCONNECTED = "Server disconnected without sending a response."
LOST: Errors = (httpcore.RemoteProtocolError, httpcore.ReadError)


def _p(message: str, exact: bool = True) -> Fault:
    return Fault("socks5", (httpcore.ProxyError,), message, exact)


FAULTS: Dict[str, Fault] = {
    # -- HTTP CONNECT (API.md §5.4, §8) --
    "c_close": Fault("connect", (httpcore.RemoteProtocolError,), DISCONNECTED, True),
    "c_partial": Fault("connect", (httpcore.RemoteProtocolError,), "", False),
    "c_407": Fault("connect", (httpcore.ProxyError,), "407 Proxy Authentication Required", True),
    "c_407_body": Fault(
        "connect", (httpcore.ProxyError,), "407 Proxy Authentication Required", True
    ),
    "c_407_eof": Fault(
        "connect", (httpcore.ProxyError,), "407 Proxy Authentication Required", True
    ),
    "c_407_bare": Fault("connect", (httpcore.ProxyError,), "407 ", True),
    "c_502": Fault("connect", (httpcore.ProxyError,), "502 Bad Gateway", True),
    "c_malformed": Fault("connect", (httpcore.RemoteProtocolError,), "", False),
    # The 200 and a TLS alert in one packet (then a target that would complete the
    # handshake): the bytes read behind the reply head are the TLS session's first, so the
    # alert ends the handshake. (They were dropped once, and the request went through.)
    "c_trailing_alert": Fault(
        "connect", (httpcore.ConnectError,), "ALERT_HANDSHAKE_FAILURE", False, tls=True
    ),
    # A stalled CONNECT reply is a read like any other (§7.1: `read` covers every read).
    "c_stall": Fault("connect", (httpcore.ReadTimeout,), "", False, short="read"),
    # -- HTTP forwarding (§5.3, §3.7, §8) --
    "f_close_before": Fault("forward", (httpcore.RemoteProtocolError,), DISCONNECTED, True),
    "f_close_mid": Fault("forward", (httpcore.RemoteProtocolError,), "", False),
    "f_rst_mid": Fault("forward", (httpcore.ReadError,), "", False),
    "f_malformed": Fault("forward", (httpcore.RemoteProtocolError,), "", False),
    "f_idle_close": Fault("forward"),
    "f_stale_next": Fault("forward"),
    # -- after the tunnel (CONNECT or SOCKS) is up --
    "t_rst_handshake": Fault("tunnel", (httpcore.ConnectError,), "", False, tls=True),
    "t_tls_stall": Fault(
        "tunnel", (httpcore.ConnectTimeout,), "", False, tls=True, short="connect"
    ),
    "t_bad_cert": Fault(
        "tunnel", (httpcore.ConnectError,), "CERTIFICATE_VERIFY_FAILED", False, tls=True
    ),
    "t_rst_request": Fault("tunnel", LOST, "", False),
    "t_close_request": Fault("tunnel", LOST, "", False),
    "t_rst_body": Fault("tunnel", (httpcore.ReadError,), "", False),
    "t_close_body": Fault("tunnel", LOST, "", False),
    "t_idle_close": Fault("tunnel"),
    # One response, then the next request (on the reused tunnel) meets a close: §3.7.
    "t_stale_next": Fault("tunnel"),
    # -- SOCKS5 (§5.5, §12 item 8; a handshake timeout is ConnectTimeout) --
    "s5_version": _p("did not answer in SOCKS5", exact=False),
    "s5_no_methods": Fault(
        "socks5", (httpcore.ProxyError,), "from proxy server, but got NO ACCEPTABLE METHODS.", False
    ),
    "s5_gssapi": Fault(
        "socks5", (httpcore.ProxyError,), "from proxy server, but got GSSAPI.", False
    ),
    "s5_auth_fail": Fault(
        "socks5", (httpcore.ProxyError,), "Invalid username/password", True, auth=True
    ),
    "s5_trunc_method": _p("closed the connection during the SOCKS handshake", exact=False),
    "s5_trunc_auth": Fault(
        "socks5",
        (httpcore.ProxyError,),
        "closed the connection during the SOCKS handshake",
        False,
        auth=True,
    ),
    "s5_trunc_reply": _p("closed the connection during the SOCKS handshake", exact=False),
    "s5_bad_reply_version": _p("did not answer in SOCKS5", exact=False),
    "s5_rst": _p("The SOCKS handshake with the proxy server failed", exact=False),
    "s5_stall": Fault("socks5", (httpcore.ConnectTimeout,), "", False, short="connect"),
    "s5_code_01": _p("Proxy Server could not connect: General SOCKS server failure."),
    "s5_code_02": _p("Proxy Server could not connect: Connection not allowed by ruleset."),
    "s5_code_03": _p("Proxy Server could not connect: Network unreachable."),
    "s5_code_04": _p("Proxy Server could not connect: Host unreachable."),
    "s5_code_05": _p("Proxy Server could not connect: Connection refused."),
    "s5_code_06": _p("Proxy Server could not connect: TTL expired."),
    "s5_code_07": _p("Proxy Server could not connect: Command not supported."),
    "s5_code_08": _p("Proxy Server could not connect: Address type not supported."),
    "s5_code_09": _p("Proxy Server could not connect: UNKNOWN."),
    "s5_code_7f": _p("Proxy Server could not connect: UNKNOWN."),
    # -- SOCKS4 --
    "s4_code_5b": Fault(
        "socks4",
        (httpcore.ProxyError,),
        "Proxy Server could not connect: Request rejected or failed.",
        True,
    ),
    "s4_code_5c": Fault(
        "socks4", (httpcore.ProxyError,), "cannot connect to identd on the client.", False
    ),
    "s4_code_5d": Fault(
        "socks4", (httpcore.ProxyError,), "identd reports a different user-id.", False
    ),
    "s4_code_99": Fault(
        "socks4", (httpcore.ProxyError,), "Proxy Server could not connect: UNKNOWN.", True
    ),
    "s4_trunc": Fault(
        "socks4", (httpcore.ProxyError,), "closed the connection during the SOCKS handshake", False
    ),
    "s4_stall": Fault("socks4", (httpcore.ConnectTimeout,), "", False, short="connect"),
}


def applicable(fault: str, proxy_scheme: str, https: bool, auth: bool) -> bool:
    """Whether `fault` can happen to a request to an http(s) target through this proxy."""
    spec = FAULTS[fault]
    if spec.tls is not None and spec.tls != https:
        return False
    if spec.auth is not None and spec.auth != auth:
        return False
    if proxy_scheme.startswith("socks"):
        return spec.family in ("tunnel", proxy_scheme[:6])
    if spec.family == "tunnel" or spec.family == "connect":
        return https
    return spec.family == "forward" and not https


@dataclasses.dataclass
class Record:
    """What the proxy did on one accepted connection."""

    index: int
    fault: str
    protocol: str = ""
    target_port: int = 0
    auth: Optional[Tuple[bytes, bytes]] = None
    requests: List[bytes] = dataclasses.field(default_factory=list)  # request lines answered
    arrived: List[bytes] = dataclasses.field(default_factory=list)  # request lines received
    marks: List[str] = dataclasses.field(default_factory=list)
    sockets: List[socket.socket] = dataclasses.field(default_factory=list)
    changed: threading.Condition = dataclasses.field(default_factory=threading.Condition)

    def mark(self, name: str) -> None:
        with self.changed:
            self.marks.append(name)
            self.changed.notify_all()


class Reader:
    """Buffered reads from a socket (plain or TLS)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def _fill(self) -> None:
        data = self.sock.recv(65536)
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
            if len(self.buffer) > 1 << 20:
                raise EOFError("head too long")
            self._fill()
        end = self.buffer.index(delimiter) + len(delimiter)
        data = bytes(self.buffer[:end])
        del self.buffer[:end]
        return data

    def request(self) -> Tuple[bytes, bytes]:
        """One HTTP request (the test client sends Content-Length bodies only): head, body."""
        head = self.until(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return head, self.exact(length)


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def await_eof(sock: socket.socket) -> None:
    """Read and drop everything until the client closes (or the socket times out)."""
    try:
        while sock.recv(65536):
            pass
    except (OSError, ValueError):
        pass


def fin(sock: socket.socket) -> None:
    """Half-close, then wait for the client to close: it sees a clean EOF, never a reset."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    await_eof(sock)


class ChaosProxy:
    def __init__(
        self, good_tls: ssl.SSLContext, bad_tls: ssl.SSLContext, real_ports: FrozenSet[int]
    ) -> None:
        self.host = "127.0.0.1"
        self._good_tls, self._bad_tls = good_tls, bad_tls
        self.real_ports = real_ports
        self.records: List[Record] = []
        self.problems: List[str] = []  # the proxy's own surprises (bugs of the test)
        self._queue: Deque[str] = collections.deque()
        self._lock = threading.Lock()
        self._listener = ThreadedListener(self._serve, self._admit, lock=self._lock, backlog=64)
        self.port: int = self._listener.port

    def push(self, fault: str) -> None:
        """The next accepted connection acts out `fault` ("" behaves)."""
        with self._lock:
            self._queue.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def accepted(self) -> int:
        with self._lock:
            return len(self.records)

    def close(self) -> None:
        hanging = self._listener.close()
        self.problems.extend(f"proxy thread {name} did not end" for name in hanging)

    # -- plumbing ----------------------------------------------------------------------------

    def _admit(self, conn: socket.socket) -> Tuple[socket.socket, Record]:
        conn.settimeout(SOCKET_TIMEOUT)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fault = self._queue.popleft() if self._queue else ""
        record = Record(len(self.records), fault)
        self.records.append(record)
        return conn, record

    def _track(self, record: Record, sock: socket.socket) -> None:
        self._listener.track(sock)
        record.sockets.append(sock)

    def _serve(self, conn: socket.socket, record: Record) -> None:
        try:
            self._dispatch(Reader(conn), record)
        except (OSError, EOFError, ValueError, ssl.SSLError):
            record.mark("client gone")
        except Exception as exc:  # pragma: no cover - a bug of the test proxy
            self.problems.append(f"connection {record.index}: {exc!r}")
        finally:
            for sock in [conn, *record.sockets]:
                sock.close()
            record.mark("done")

    def _dispatch(self, rx: Reader, record: Record) -> None:
        first = rx.exact(1)
        if first == b"\x05":
            record.protocol = "socks5"
            self._socks5(rx, record)
        elif first == b"\x04":
            record.protocol = "socks4"
            self._socks4(rx, record)
        else:
            rx.buffer[:0] = first
            head = rx.until(b"\r\n\r\n")
            method, target = head.split(b" ", 2)[:2]
            if method == b"CONNECT":
                record.protocol = "connect"
                record.target_port = int(target.rsplit(b":", 1)[1])
                self._connect(rx, record)
            else:
                record.protocol = "forward"
                rx.buffer[:0] = head
                self._forward(rx, record)
        fault = FAULTS.get(record.fault)
        if fault is not None and fault.family not in (record.protocol, "tunnel"):
            self.problems.append(f"fault {record.fault} met a {record.protocol} connection")

    # -- HTTP CONNECT --------------------------------------------------------------------------

    def _connect(self, rx: Reader, record: Record) -> None:
        sock, fault = rx.sock, record.fault
        replies = {
            "c_407": b"HTTP/1.1 407 Proxy Authentication Required\r\n"
            b'Proxy-Authenticate: Basic realm="chaos"\r\nContent-Length: 0\r\n\r\n',
            "c_407_body": b"HTTP/1.1 407 Proxy Authentication Required\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 12\r\n\r\nnot for you!",
            "c_407_bare": b"HTTP/1.1 407 \r\nContent-Length: 0\r\n\r\n",
            "c_502": b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
            "c_malformed": b"HTTP/1.1 2OO Connection established\r\n\r\n",
        }
        if fault == "c_close":
            fin(sock)
        elif fault == "c_partial":
            sock.sendall(b"HTTP/1.1 200 Conn")
            fin(sock)
        elif fault == "c_407_eof":  # the body delimited by the end of the connection
            sock.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\nnot for you!")
            fin(sock)
        elif fault == "c_trailing_alert":
            # The tunnel's first bytes arrive with the reply: a fatal TLS alert. Then the proxy
            # stands in for the target, so a client that dropped those bytes would succeed.
            sock.sendall(CONNECT_OK + TLS_ALERT)
            self._tunnel(rx, record)
        elif fault == "c_stall":
            record.mark("stalling")
            await_eof(sock)
        elif fault in replies:
            sock.sendall(replies[fault])
            fin(sock)
        else:
            sock.sendall(CONNECT_OK)
            self._tunnel(rx, record)

    # -- after a tunnel is up -------------------------------------------------------------------

    def _tunnel(self, rx: Reader, record: Record) -> None:
        sock, fault = rx.sock, record.fault
        if rx.buffer:
            self.problems.append(f"client spoke before the tunnel was up: {bytes(rx.buffer)!r}")
        if record.target_port in self.real_ports and not fault:
            self._relay(sock, record)
            return
        if fault == "t_tls_stall":
            record.mark("stalling")
            await_eof(sock)
            return
        if fault == "t_rst_handshake":
            sock.recv(1)
            reset(sock)
            return
        if sock.recv(1, socket.MSG_PEEK) == b"\x16":
            context = self._bad_tls if fault == "t_bad_cert" else self._good_tls
            self._track(record, sock)
            sock = context.wrap_socket(sock, server_side=True)
            self._track(record, sock)
            record.mark("tls")
        self._serve_http(Reader(sock), record)

    def _serve_http(self, rx: Reader, record: Record) -> None:
        """Stand in for the target: answer requests, or misbehave at the fault's point."""
        sock, fault = rx.sock, record.fault
        while True:
            try:
                head, _ = rx.request()
            except EOFError:
                return
            record.arrived.append(head.split(b"\r\n", 1)[0])
            if fault == "t_stale_next" and record.requests:
                self._drop(sock)
                return
            if fault == "t_rst_request":
                reset(sock)
                return
            if fault == "t_close_request":
                self._drop(sock)
                return
            if fault in ("t_rst_body", "t_close_body"):
                sock.sendall(CUT_RESPONSE)
                reset(sock) if fault == "t_rst_body" else self._drop(sock)
                return
            record.requests.append(head.split(b"\r\n", 1)[0])
            sock.sendall(OK_RESPONSE)
            if fault == "t_idle_close":
                self._drop(sock, record)
                return

    @staticmethod
    def _drop(sock: socket.socket, record: Optional[Record] = None) -> None:
        """The TCP connection ends (FIN), without a TLS close_notify: a proxy tearing a tunnel
        down knows nothing of the TLS inside."""
        raw = sock
        if isinstance(sock, ssl.SSLSocket):
            raw = socket.socket(fileno=socket.dup(sock.fileno()))
            raw.settimeout(SOCKET_TIMEOUT)
            sock.close()
        try:
            try:
                raw.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            if record is not None:
                record.mark("closed idle")
            await_eof(raw)
        finally:
            if raw is not sock:
                raw.close()

    def _relay(self, sock: socket.socket, record: Record) -> None:
        """Relay both ways to the real target until both sides have closed."""
        target = socket.create_connection((self.host, record.target_port), timeout=SOCKET_TIMEOUT)
        target.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._track(record, target)
        try:
            peers = {sock: target, target: sock}
            with selectors.DefaultSelector() as selector:
                for one in peers:
                    selector.register(one, selectors.EVENT_READ)
                while selector.get_map() and not self._listener.stopping.is_set():
                    for key, _ in selector.select(0.1):
                        src: socket.socket = key.fileobj  # type: ignore[assignment]
                        try:
                            data = src.recv(65536)
                        except OSError:
                            data = b""
                        try:
                            if data:
                                peers[src].sendall(data)
                                continue
                            peers[src].shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        selector.unregister(src)
        finally:
            target.close()

    # -- HTTP forwarding ------------------------------------------------------------------------

    def _forward(self, rx: Reader, record: Record) -> None:
        sock, fault = rx.sock, record.fault
        while True:
            try:
                head, body = rx.request()
            except EOFError:
                return
            line, _, rest = head.partition(b"\r\n")
            method, url, version = line.split(b" ")
            authority, _, path = url.split(b"//", 1)[1].partition(b"/")
            record.target_port = int(authority.rsplit(b":", 1)[1])
            record.arrived.append(line)
            if fault == "f_stale_next" and record.requests:
                return fin(sock)
            if fault == "f_close_before":
                fin(sock)
                return
            if fault in ("f_close_mid", "f_rst_mid"):
                sock.sendall(CUT_RESPONSE)
                fin(sock) if fault == "f_close_mid" else reset(sock)
                return
            if fault == "f_malformed":
                sock.sendall(b"HTTP/1.1 200 OK\r\nNo colon in this header\r\n\r\n")
                fin(sock)
                return
            record.requests.append(line)
            if record.target_port not in self.real_ports:
                sock.sendall(OK_RESPONSE)
            else:
                # One target connection per request, closed by the target after its response.
                kept = [h for h in rest.split(b"\r\n") if not h.lower().startswith(b"connection:")]
                out = b"%s /%s %s\r\nConnection: close\r\n" % (method, path, version)
                target = socket.create_connection((self.host, record.target_port), SOCKET_TIMEOUT)
                with target:
                    target.sendall(out + b"\r\n".join(kept) + body)
                    while True:
                        data = target.recv(65536)
                        if not data:
                            break
                        sock.sendall(data)
                return fin(sock)  # the target said `Connection: close`
            if fault == "f_idle_close":
                self._drop(sock, record)
                return

    # -- SOCKS ----------------------------------------------------------------------------------

    def _socks5(self, rx: Reader, record: Record) -> None:
        sock, fault = rx.sock, record.fault
        methods = rx.exact(rx.exact(1)[0])
        early = {
            "s5_version": b"\x04\x00",
            "s5_no_methods": b"\x05\xff",
            "s5_gssapi": b"\x05\x01",
            "s5_trunc_method": b"\x05",
        }
        if fault in early:
            sock.sendall(early[fault])
            return fin(sock)
        if fault == "s5_stall":
            record.mark("stalling")
            return await_eof(sock)
        if fault == "s5_rst":
            return reset(sock)
        sock.sendall(b"\x05" + methods[:1])
        if methods[:1] == b"\x02":
            rx.exact(1)
            user = rx.exact(rx.exact(1)[0])
            record.auth = (user, rx.exact(rx.exact(1)[0]))
            if fault in ("s5_auth_fail", "s5_trunc_auth"):
                sock.sendall(b"\x01\x01" if fault == "s5_auth_fail" else b"\x01")
                return fin(sock)
            sock.sendall(b"\x01\x00")
        head = rx.exact(4)
        size = {1: 4, 4: 16}.get(head[3]) or rx.exact(1)[0]
        rx.exact(size)
        record.target_port = struct.unpack("!H", rx.exact(2))[0]
        if fault.startswith("s5_code_"):
            code = bytes([int(fault[-2:], 16)])
            sock.sendall(b"\x05" + code + b"\x00\x01\x00\x00\x00\x00\x00\x00")
            return fin(sock)
        if fault == "s5_trunc_reply":
            sock.sendall(b"\x05\x00\x00\x01\x7f\x00")
            return fin(sock)
        if fault == "s5_bad_reply_version":
            sock.sendall(b"\x04\x00\x00\x01\x7f\x00\x00\x01\x00\x50")
            return fin(sock)
        sock.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01" + struct.pack("!H", self.port))
        self._tunnel(rx, record)

    def _socks4(self, rx: Reader, record: Record) -> None:
        sock, fault = rx.sock, record.fault
        head = rx.exact(7)  # CD, DSTPORT, DSTIP
        user = rx.until(b"\x00")[:-1]
        if head[3:6] == b"\x00\x00\x00" and head[6] != 0:
            rx.until(b"\x00")  # SOCKS4A: the host name
        record.auth = (user, b"")
        record.target_port = struct.unpack("!H", head[1:3])[0]
        if fault.startswith("s4_code_"):
            sock.sendall(b"\x00" + bytes([int(fault[-2:], 16)]) + b"\x00" * 6)
            return fin(sock)
        if fault == "s4_trunc":
            sock.sendall(b"\x00\x5a\x00")
            return fin(sock)
        if fault == "s4_stall":
            record.mark("stalling")
            return await_eof(sock)
        sock.sendall(b"\x00\x5a" + b"\x00" * 6)
        self._tunnel(rx, record)
