"""The world of `test_proxy_tls_chaos.py` and `test_proxy_h2_chaos.py`: a misbehaving proxy on
127.0.0.1 (`TLSChaosProxy`) that is an `https://` proxy (TLS to the proxy itself) or a plain
one, and the faults it acts out (`FAULTS`), each with the outcome API.md documents for it.

All the proxy's TLS runs in memory (`proxy_tls_chaos_links.TLSLink`), so a fault says which
records go out: its own TLS (the outer session of an HTTPS proxy) and, standing in for an
https target inside the tunnel, the target's TLS (the inner session, whose records travel
inside the outer ones). It can cut a flight in half, corrupt one byte of one outer record,
put inner bytes in the same outer record as the CONNECT reply, send records of one byte, and
end a connection with close_notify (then FIN), close_notify alone, a bare FIN or a reset.

It speaks HTTP CONNECT, HTTP forwarding (absolute-form requests, answered by itself) and
SOCKS5 (plain listener only). A tunnel to one of `real_ports` (hypercorn) is relayed byte for
byte; an HTTP/2 fault (`h2_*`) then hits the server->client direction after `N` bytes that
follow `gate.release()`: the test holds the relay (`gate.hold()`) while its requests go out,
so that no response can be whole when the fault comes. The relay keeps the target's TLS record
framing in view, to corrupt a byte in the middle of a record.

Each connection is recorded (`Record`: fault, protocol, target port, credentials, request
lines, marks such as "stalling" or "closed idle" a test waits for, bounded, rather than sleep).
"""

from __future__ import annotations

import collections
import dataclasses
import socket
import ssl
import struct
import threading
from typing import Deque, Dict, FrozenSet, List, Optional, Tuple, Type

from proxy_chaos_world import CONNECT_OK, DISCONNECTED, LOST, OK_RESPONSE, TLS_ALERT
from proxy_tls_chaos_links import Gate, Link, Reader, SocketLink, TLSLink, header
from servers.threaded import REUSE_ADDRESS, ThreadedListener

import httpcore

SOCKET_TIMEOUT = 5.0
REFUSED = b"HTTP/1.1 407 Proxy Authentication Required\r\n"
CUT_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
CUT_BODY = b"x" * 100
INCOMPLETE = "peer closed connection without sending complete message body"
Errors = Tuple[Type[BaseException], ...]


@dataclasses.dataclass(frozen=True)
class Fault:
    """What the proxy does wrong, and the outcome API.md documents for it: `errors` (empty:
    the request succeeds), `message` (exact or a substring), the timeout made short for it,
    the target it needs (`https`: a tunnel, `http`: forwarded), and how many proxy
    connections the case opens before its follow-up request."""

    errors: Errors = ()
    message: str = ""
    exact: bool = False
    short: str = ""  # "connect" | "read"
    target: str = "https"
    connections: int = 1


def _e(
    error: Type[BaseException],
    message: str = "",
    exact: bool = False,
    short: str = "",
    target: str = "https",
) -> Fault:
    return Fault((error,), message, exact, short, target)


CE, RE = httpcore.ConnectError, httpcore.ReadError
RPE = httpcore.RemoteProtocolError
FAULTS: Dict[str, Fault] = {
    # -- the proxy's own TLS handshake (§5.3/§5.4: TLS with proxy_ssl_context; §6, §8) --
    "hs_untrusted": _e(CE, "CERTIFICATE_VERIFY_FAILED"),
    "hs_alert": _e(CE, "ALERT_HANDSHAKE_FAILURE"),
    "hs_cut_fin": _e(CE),
    "hs_rst": _e(CE),
    "hs_stall": _e(httpcore.ConnectTimeout, short="connect"),
    # -- the CONNECT exchange (§5.4) --
    "connect_notify_only": _e(RPE, DISCONNECTED, True),  # no reply: close_notify, no FIN
    "reply_407": _e(httpcore.ProxyError, "407 Proxy Authentication Required", True),
    # Its body delimited by the end of the connection: close_notify, no FIN.
    "reply_407_eof_notify": _e(httpcore.ProxyError, "407 Proxy Authentication Required", True),
    # -- right after the CONNECT reply (the TLS to the target then fails: ConnectError) --
    "reply_close_notify": _e(CE),
    "reply_fin": _e(CE),
    "reply_rst": _e(CE),
    # close_notify and no FIN: an end all the same, without waiting for the TCP one.
    "reply_notify_only": _e(CE),
    "reply_stall": _e(httpcore.ReadTimeout, short="read"),  # half the reply, then nothing
    # The tunnel's first byte in the same outer record as the reply: a fatal alert.
    "reply_alert": _e(CE, "ALERT_HANDSHAKE_FAILURE"),
    "reply_split": Fault(),  # the reply in one-byte outer records
    "reply_corrupt": _e(RE),  # a byte of the reply's outer record flipped: a failed read
    "reply_bad_cert": _e(CE, "CERTIFICATE_VERIFY_FAILED"),  # the target's, not the proxy's
    # Every record of the proxy's after the reply carries one byte of the tunnel.
    "trickle": Fault(),
    # -- mid TLS handshake with the target, inside the tunnel --
    "inner_close_notify": _e(CE),
    "inner_fin": _e(CE),
    "inner_rst": _e(CE),
    "inner_stall": _e(httpcore.ConnectTimeout, short="connect"),
    # -- mid request (head read, body maybe on its way): nothing came back (§4.3, §8) --
    "request_close_notify": _e(RPE, DISCONNECTED, True),
    "request_fin": _e(RPE, DISCONNECTED, True),
    "request_rst": Fault(LOST),
    # -- mid response body (Content-Length 1000, 100 bytes sent) --
    "body_close_notify": _e(RPE, INCOMPLETE),
    "body_fin": _e(RPE, INCOMPLETE),
    "body_notify_only": _e(RPE, INCOMPLETE),
    "body_inner_notify": _e(RPE, INCOMPLETE),  # the target's close_notify, in the tunnel
    "body_rst": _e(RE),
    "body_corrupt": _e(RE),  # the outer record carrying the body, a byte flipped
    "body_stall": _e(httpcore.ReadTimeout, short="read"),
    # -- the connection ended while idle in the pool: the next request opens another (§3.7) --
    "idle_close_notify": Fault(connections=2),
    "idle_fin": Fault(connections=2),
    "idle_rst": Fault(connections=2),
    "idle_notify_only": Fault(connections=2),
    "idle_inner_notify": Fault(connections=2),  # the target's close_notify, the tunnel open
    # The next request on the kept connection meets the end: sent again, once (§3.7).
    "stale_close_notify": Fault(connections=2),
    # -- forwarding http:// targets through the proxy (§5.3) --
    "fwd_request_fin": _e(RPE, DISCONNECTED, True, target="http"),
    "fwd_body_close_notify": _e(RPE, INCOMPLETE, target="http"),
    "fwd_body_rst": _e(RE, target="http"),
    "fwd_body_corrupt": _e(RE, target="http"),
    "fwd_idle_close_notify": Fault(target="http", connections=2),
    "fwd_idle_notify_only": Fault(target="http", connections=2),
    "fwd_stale_rst": Fault(target="http", connections=2),
}

# HTTP/2 relayed to hypercorn: the fault hits the server->client bytes (§4.4, §8).
H2_FAULTS: Dict[str, Errors] = {
    "h2_cut": (RPE,),  # FIN (no close_notify of any TLS session)
    "h2_cut_notify": (RPE,),  # outer close_notify, then FIN (https proxies)
    "h2_reset": (RE,),
    "h2_stall": (httpcore.ReadTimeout,),
    "h2_corrupt": (RE,),  # a byte of a record of the target's TLS flipped
    "h2_corrupt_outer": (RE,),  # a byte of an HTTPS proxy's own record flipped
}


@dataclasses.dataclass
class Record:
    """What the proxy did on one accepted connection."""

    index: int
    fault: str
    protocol: str = ""  # connect | forward | socks5
    target_port: int = 0
    auth: Optional[bytes] = None  # Proxy-Authorization, or b"user:password" for SOCKS5
    arrived: List[bytes] = dataclasses.field(default_factory=list)  # request lines
    marks: List[str] = dataclasses.field(default_factory=list)
    changed: threading.Condition = dataclasses.field(default_factory=threading.Condition)

    def mark(self, name: str) -> None:
        with self.changed:
            self.marks.append(name)
            self.changed.notify_all()


@dataclasses.dataclass
class Session:
    """One accepted connection: the socket, the proxy's own TLS (if any), and the link the
    proxy's HTTP runs on (`top`)."""

    raw: SocketLink
    outer: Optional[TLSLink]
    record: Record

    @property
    def top(self) -> Link:
        return self.outer if self.outer is not None else self.raw

    def hang_up(self, how: str) -> None:
        """End the connection: `close_notify` (the proxy's own, then FIN), `notify_only` (the
        close_notify alone), `fin`, `rst`."""
        if how == "rst":
            self.raw.rst()
            return
        if how in ("close_notify", "notify_only") and self.outer is not None:
            self.raw.send(self.outer.close_notify())
        if how != "notify_only":
            self.raw.fin()

    def end(self, how: str, mark: str = "") -> None:
        """Hang up, then wait for the client to close."""
        self.hang_up(how)
        if mark:
            self.record.mark(mark)
        if how != "rst":
            self.raw.drain()

    def send_corrupted(self, inner: Optional[TLSLink], data: bytes) -> None:
        """`data` (through the target's TLS `inner`, if any) in one outer record with its
        middle byte flipped: the client's TLS to the proxy cannot authenticate it."""
        assert self.outer is not None
        payload = b"".join(inner.seal(data)) if inner is not None else data
        record = bytearray(self.outer.seal(payload)[0])
        record[len(record) // 2] ^= 0x01
        self.raw.send(bytes(record))


# -- the proxy ----------------------------------------------------------------------------------


class TLSChaosProxy:
    def __init__(
        self,
        contexts: Dict[str, ssl.SSLContext],
        tls: bool,
        real_ports: FrozenSet[int],
        h2_at: int = 4096,
        own: str = "proxy",
    ) -> None:
        """`contexts`: `proxy` (its own certificate, which the client trusts; `proxy12`: the
        same, TLS 1.2 only), `target` (the stand-in target's), `untrusted` (a certificate from
        a CA the client does not know). `own`: which one is the proxy's."""
        self.host = "127.0.0.1"
        self.contexts = contexts
        self.tls = tls
        self.own = own
        self.real_ports = real_ports
        self.h2_at = h2_at  # server->client bytes sent on before an HTTP/2 fault
        self.gate = Gate(SOCKET_TIMEOUT)
        self.records: List[Record] = []
        self.sessions: Dict[int, Session] = {}
        self.problems: List[str] = []
        self._queue: Deque[str] = collections.deque()
        self._lock = threading.Lock()
        self._listener = ThreadedListener(
            self._serve, self._admit, lock=self._lock, options=[REUSE_ADDRESS]
        )
        self.port: int = self._listener.port
        self.url = f"{'https' if tls else 'http'}://{self.host}:{self.port}"

    def push(self, fault: str) -> None:
        """The next accepted connection acts out `fault` ("" behaves)."""
        with self._lock:
            self._queue.append(fault)

    def accepted(self) -> int:
        with self._lock:
            return len(self.records)

    def end(self, index: int, how: str) -> None:
        """End the index-th connection now, from the test's thread (`close_notify`,
        `notify_only`, `fin`, `rst`): its relay then winds down as the client hangs up."""
        with self._lock:
            session = self.sessions[index]
        session.hang_up(how)
        session.record.mark("closed idle")

    def close(self) -> None:
        self._listener.stop()
        # Before the joins: a relay waiting at the gate would hold its thread past them.
        self.gate.release()
        hanging = self._listener.close()
        self.problems.extend(f"proxy thread {name} did not end" for name in hanging)

    def _admit(self, sock: socket.socket) -> Tuple[socket.socket, Record]:
        sock.settimeout(SOCKET_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        record = Record(len(self.records), self._queue.popleft() if self._queue else "")
        self.records.append(record)
        return sock, record

    def _serve(self, sock: socket.socket, record: Record) -> None:
        session = Session(SocketLink(sock), None, record)
        with self._lock:
            self.sessions[record.index] = session
        try:
            if self.tls:
                session.outer = self._handshake(session)
            if session.outer is not None or not self.tls:
                self._dispatch(session)
        except (OSError, EOFError, ValueError, ssl.SSLError):
            record.mark("client gone")
        except Exception as exc:  # pragma: no cover - a bug of the test proxy
            self.problems.append(f"connection {record.index}: {exc!r}")
        finally:
            sock.close()
            record.mark("done")

    def _handshake(self, session: Session) -> Optional[TLSLink]:
        """The proxy's own TLS handshake, or its fault (then None)."""
        raw, fault = session.raw, session.record.fault
        context = self.contexts["untrusted" if fault == "hs_untrusted" else self.own]
        outer = TLSLink(raw, context)
        if fault in ("hs_stall", "hs_rst", "hs_alert"):
            raw.recv()  # the ClientHello
            if fault == "hs_rst":
                raw.rst()
                return None
            if fault == "hs_alert":
                raw.send(TLS_ALERT)
            else:
                session.record.mark("stalling")
            raw.drain()
            return None
        if fault == "hs_cut_fin":
            flight = outer.first_flight()
            raw.send(flight[: len(flight) // 2])
            session.end("fin")
            return None
        outer.handshake()
        return outer

    def _dispatch(self, session: Session) -> None:
        rx, record = Reader(session.top), session.record
        first = rx.exact(1)
        if first == b"\x05" and not self.tls:
            record.protocol = "socks5"
            self._socks5(session, rx)
            return
        head = first + rx.until(b"\r\n\r\n")
        record.auth = header(head, b"proxy-authorization")
        method, target = head.split(b" ", 2)[:2]
        if method != b"CONNECT":
            record.protocol = "forward"
            rx.buffer[:0] = head
            self._stand_in(session, rx, None)
            return
        record.protocol = "connect"
        record.target_port = int(target.rsplit(b":", 1)[1])
        record.arrived.append(head.split(b"\r\n", 1)[0])
        if rx.buffer:
            self.problems.append(f"client spoke before the reply: {bytes(rx.buffer)!r}")
        self._reply(session)

    def _reply(self, session: Session) -> None:
        """The CONNECT reply, or its fault."""
        raw, outer, fault = session.raw, session.outer, session.record.fault
        if fault == "connect_notify_only":
            session.end("notify_only")
        elif fault == "reply_407":
            session.top.send(REFUSED + b"Content-Length: 0\r\n\r\n")
            session.end("close_notify")
        elif fault == "reply_407_eof_notify":
            session.top.send(REFUSED + b"\r\nnot for you!")
            session.end("notify_only")
        elif fault in ("reply_close_notify", "reply_fin", "reply_notify_only"):
            raw.send(b"".join(outer.seal(CONNECT_OK)) if outer else CONNECT_OK)
            session.end(fault[6:])
        elif fault == "reply_stall":
            session.top.send(CONNECT_OK[:20])
            session.record.mark("stalling")
            raw.drain()
        elif fault == "reply_rst":
            session.top.send(CONNECT_OK)
            session.top.recv()  # the ClientHello to the target
            session.end("rst")
        elif fault == "reply_corrupt":
            session.send_corrupted(None, CONNECT_OK)
            raw.drain()
        elif fault == "reply_split" and outer is not None:
            for record in outer.seal(CONNECT_OK, size=1):
                raw.send(record)
            self._tunnel(session)
        elif fault == "reply_alert":
            # Then the proxy stands in for the target: a client that dropped the alert would
            # go through.
            session.top.send(CONNECT_OK + TLS_ALERT)
            self._tunnel(session)
        else:
            session.top.send(CONNECT_OK)
            self._tunnel(session)

    def _tunnel(self, session: Session) -> None:
        record, top = session.record, session.top
        if record.target_port in self.real_ports:
            self._relay(session)
            return
        fault = record.fault
        if fault == "trickle" and session.outer is not None:
            session.outer.record_size = 1
        if fault == "inner_stall":
            top.recv()
            record.mark("stalling")
            session.raw.drain()
            return
        context = self.contexts["untrusted" if fault == "reply_bad_cert" else "target"]
        inner = TLSLink(top, context)
        if fault in ("inner_close_notify", "inner_fin", "inner_rst"):
            flight = inner.first_flight()
            top.send(flight[: len(flight) // 2])
            session.end(fault[6:])
            return
        inner.handshake()
        record.mark("tls")
        self._stand_in(session, Reader(inner), inner)

    def _stand_in(self, session: Session, rx: Reader, inner: Optional[TLSLink]) -> None:
        """Answer requests as the target (through the target's TLS `inner`, if any), or
        misbehave at the fault's point."""
        record = session.record
        fault = record.fault.replace("fwd_", "")
        link: Link = inner if inner is not None else session.top
        served = 0
        while True:
            try:
                head = rx.until(b"\r\n\r\n")
            except EOFError:
                return
            line = head.split(b"\r\n", 1)[0]
            record.arrived.append(line)
            if record.protocol == "forward":
                authority = line.split(b" ")[1].split(b"/")[2]
                record.target_port = int(authority.rsplit(b":", 1)[1])
            if fault.startswith("request_") or (fault.startswith("stale_") and served):
                session.end(fault.partition("_")[2])
                return
            rx.exact(int(header(head, b"content-length") or 0))
            if fault == "body_inner_notify" and inner is not None:
                inner.send(CUT_HEAD + CUT_BODY)
                session.top.send(inner.close_notify())
                session.raw.drain()
                return
            if fault == "body_corrupt":
                link.send(CUT_HEAD)
                session.send_corrupted(inner, CUT_BODY)
                session.raw.drain()
                return
            if fault.startswith("body_"):
                link.send(CUT_HEAD + CUT_BODY)
                if fault == "body_stall":
                    record.mark("stalling")
                    session.raw.drain()
                    return
                session.end(fault[5:])
                return
            link.send(OK_RESPONSE)
            served += 1
            if fault == "idle_inner_notify" and inner is not None:
                session.top.send(inner.close_notify())
                record.mark("closed idle")
                session.raw.drain()
                return
            if fault.startswith("idle_"):
                session.end(fault[5:], mark="closed idle")
                return

    # -- SOCKS5 (no faults of its own: a way into the tunnel) --------------------------------

    def _socks5(self, session: Session, rx: Reader) -> None:
        top, record = session.top, session.record
        methods = rx.exact(rx.exact(1)[0])
        method = b"\x02" if b"\x02" in methods else b"\x00"
        top.send(b"\x05" + method)
        if method == b"\x02":
            rx.exact(1)
            user = rx.exact(rx.exact(1)[0])
            record.auth = user + b":" + rx.exact(rx.exact(1)[0])
            top.send(b"\x01\x00")
        request = rx.exact(4)
        size = {1: 4, 4: 16}.get(request[3]) or rx.exact(1)[0]
        rx.exact(size)
        record.target_port = struct.unpack("!H", rx.exact(2))[0]
        top.send(b"\x05\x00\x00\x01\x7f\x00\x00\x01" + struct.pack("!H", self.port))
        self._tunnel(session)

    # -- relaying to the real target --------------------------------------------------------------

    def _relay(self, session: Session) -> None:
        record = session.record
        target = socket.create_connection((self.host, record.target_port), SOCKET_TIMEOUT)
        self._listener.track(target)
        up = threading.Thread(target=self._up, args=(session, target), daemon=True)
        up.start()
        try:
            self._down(session, target)
        finally:
            up.join(SOCKET_TIMEOUT)
            target.close()

    @staticmethod
    def _up(session: Session, target: socket.socket) -> None:
        """Client -> target, until the client's EOF (then a FIN to the target)."""
        try:
            while True:
                data = session.top.recv()
                if not data:
                    break
                target.sendall(data)
        except (OSError, ssl.SSLError):
            pass
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _down(self, session: Session, target: socket.socket) -> None:
        """Target -> client, whole TLS records at a time; the fault after `h2_at` bytes that
        follow the gate's release."""
        record, fault = session.record, session.record.fault
        pending = bytearray()
        sent = 0  # bytes sent on since the gate opened
        faulted = False
        while True:
            try:
                data = target.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if faulted:
                continue  # stalled: the target's bytes go nowhere
            pending += data
            chunk = bytearray()
            while len(pending) >= 5 and len(pending) >= 5 + int.from_bytes(pending[3:5], "big"):
                size = 5 + int.from_bytes(pending[3:5], "big")
                chunk += pending[:size]
                del pending[:size]
            if not chunk:
                continue
            if fault in H2_FAULTS and not self.gate.released:
                if not self.gate.wait():
                    self.problems.append(f"connection {record.index}: the gate stayed shut")
                    self.gate.release()
            if fault not in H2_FAULTS or not self.gate.released:
                session.top.send(bytes(chunk))
                continue
            if fault == "h2_corrupt":
                at = self._record_start(chunk, self.h2_at - sent)
                if at is not None and not faulted:
                    chunk[at + 5 + (int.from_bytes(chunk[at + 3 : at + 5], "big") // 2)] ^= 0x01
                    record.mark("corrupted")
                    fault = ""  # one byte, then a behaving relay
                session.top.send(bytes(chunk))
                sent += len(chunk)
                continue
            if sent + len(chunk) < self.h2_at:
                session.top.send(bytes(chunk))
                sent += len(chunk)
                continue
            session.top.send(bytes(chunk[: self.h2_at - sent]))
            if fault == "h2_corrupt_outer":
                rest = bytes(chunk[self.h2_at - sent :])
                sent += len(chunk) - len(rest)
                if rest:
                    record.mark(fault)  # (before the client can know)
                    session.send_corrupted(None, rest)
                    fault = ""  # then a behaving relay
                continue
            sent = self.h2_at
            faulted = True
            record.mark(fault)
            hang_up = {"h2_reset": "rst", "h2_cut": "fin", "h2_cut_notify": "close_notify"}
            if fault in hang_up:
                session.hang_up(hang_up[fault])
            if fault == "h2_reset":
                break
            # h2_stall: nothing more goes to the client, which times out and closes.
        if not faulted:
            # The target ended: so does the tunnel (a TLS proxy says close_notify first).
            session.hang_up("close_notify")

    @staticmethod
    def _record_start(chunk: bytearray, at_least: int) -> Optional[int]:
        """The offset of the first record in `chunk` (whole records) that starts at or after
        `at_least` and has a body, if any."""
        offset = 0
        while offset + 5 <= len(chunk):
            size = int.from_bytes(chunk[offset + 3 : offset + 5], "big")
            if offset >= at_least and size > 0:
                return offset
            offset += 5 + size
        return None
