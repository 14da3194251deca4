"""Small misbehaving HTTP/2 servers (h2c, prior knowledge) for the HTTP/2 tests.

`H2Server` listens on 127.0.0.1 and serves each connection in its own thread with the `h2`
library (server side). Its options reproduce what real servers do to clients:

- ``max_requests``: like nginx's ``keepalive_requests`` (default 1000 there): after that many
  requests on a connection, GOAWAY with the last accepted stream id; the accepted streams are
  still answered, later ones ignored, then the connection is closed (with a lingering close).
- ``hold``: on the first connection, answer nothing until this many requests arrived (so that
  several are in flight when something happens).
- ``lower_streams_to`` / ``lower_after`` (first connection only): once ``lower_after``
  requests are in flight, lower SETTINGS_MAX_CONCURRENT_STREAMS to ``lower_streams_to``;
  nothing is answered before the client acknowledged it. Streams opened beyond the new limit
  are counted in ``violations``
  (h2 itself also rejects them, breaking the connection).
- ``refuse_held``: when the ``hold`` is reached, send a GOAWAY that refuses the newest
  ``refuse_held`` of the held requests (they are never answered), answer the others, close.
- ``ping``: before each response, send a PING and answer only once it is acknowledged.
- ``stall``: once a ``/stall`` request arrived, stop reading (``stalled`` is set) until the
  test sets ``resume``; then answer it. The server also opens its flow-control windows wide
  and keeps a small socket receive buffer, so that an upload soon blocks in the client's
  socket write rather than on HTTP/2 flow control.
- ``drop_on_resume``: with ``stall``, drop the connection (unread data and all) when the test
  sets ``resume``, instead of answering.
- ``ssl_context``: serve over TLS with it (it should offer ALPN ``h2``).
- ``conn_timeout``: the timeout of each accepted socket (20 s); the connection is dropped when
  a read from the client takes longer.

Protocol errors raised by the server's `h2` (that is: the client sent something malformed)
are counted in ``protocol_errors``; request body sizes are recorded in ``bodies`` by path (in
``partial_bodies`` for requests the client reset).

Paths: ``/reset`` is answered with RST_STREAM (CANCEL); ``/die`` gets response headers and
part of the body, then the connection is dropped; anything else gets 200 and the body
``b"ok <path>"``.
"""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Dict, List, Optional, Set

import h2.config
import h2.connection
import h2.events
import h2.settings
import hyperframe.frame

WIDE_WINDOW = 2**31 - 1


class H2Server:
    def __init__(
        self,
        *,
        max_requests: Optional[int] = None,
        max_concurrent_streams: int = 128,
        hold: int = 0,
        refuse_held: int = 0,
        lower_streams_to: Optional[int] = None,
        lower_after: int = 0,
        ping: bool = False,
        stall: bool = False,
        drop_on_resume: bool = False,
        ssl_context: Optional[ssl.SSLContext] = None,
        conn_timeout: float = 20.0,
    ) -> None:
        self.conn_timeout = conn_timeout
        self.max_requests = max_requests
        self.max_concurrent_streams = max_concurrent_streams
        self.hold = hold
        self.refuse_held = refuse_held
        self.lower_streams_to = lower_streams_to
        self.lower_after = lower_after
        self.ping = ping
        self.stall = stall
        self.drop_on_resume = drop_on_resume
        self.ssl_context = ssl_context
        self.stalled = threading.Event()
        self.resume = threading.Event()
        self.protocol_errors = 0
        self.bodies: Dict[bytes, int] = {}
        self.partial_bodies: Dict[bytes, int] = {}  # of requests reset by the client
        self.errors: List[BaseException] = []
        self.connections = 0
        self.requests = 0
        self.goaways = 0
        self.violations = 0
        self.pings_acked = 0
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if stall:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        scheme = "http" if ssl_context is None else "https"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._closed = False
        self._threads: List[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepter.start()

    def close(self) -> None:
        self._closed = True
        self.resume.set()
        try:
            # Wake up accept().
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            pass
        self._sock.close()
        self._accepter.join(5)
        for thread in list(self._threads):
            thread.join(5)

    def __enter__(self) -> H2Server:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            if self._closed:
                sock.close()
                return
            with self._lock:
                self.connections += 1
                number = self.connections
            thread = threading.Thread(target=self._serve, args=(sock, number), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        sock.settimeout(self.conn_timeout)
        try:
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
            _Connection(self, sock, first=number == 1).run()
        except h2.exceptions.ProtocolError:
            with self._lock:
                self.protocol_errors += 1
        except OSError:
            pass  # the client went away or broke off
        except BaseException as exc:  # pragma: no cover - a bug in the test server
            self.errors.append(exc)
        finally:
            sock.close()


class _Connection:
    def __init__(self, server: H2Server, sock: socket.socket, first: bool) -> None:
        self.server = server
        self.sock = sock
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.hold = server.hold if first else 0
        self.lower_to = server.lower_streams_to if first else None
        self.received = 0  # request HEADERS seen, ignored ones included
        self.accepted = 0
        self.goaway_last: Optional[int] = None
        self.paths: Dict[int, bytes] = {}
        self.ready: List[int] = []  # complete requests not answered yet
        self.open: Set[int] = set()  # accepted, not answered
        self.lowered = False
        self.limit_acked = False
        self.ping_waiting: Dict[bytes, int] = {}
        self.received_bytes: Dict[int, int] = {}
        self.stall_now = False

    def send(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def run(self) -> None:
        server = self.server
        settings = {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: server.max_concurrent_streams}
        if server.stall:
            settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = WIDE_WINDOW
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values=settings)
        self.h2.initiate_connection()
        if server.stall:
            self.h2.increment_flow_control_window(WIDE_WINDOW - 65535)
        self.send()
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            for event in self.h2.receive_data(data):
                if self.on_event(event):
                    return
            if self.stall_now:
                self.stall_now = False
                self.send()
                server.stalled.set()
                if not server.resume.wait(server.conn_timeout + 10):
                    raise RuntimeError("the test never resumed the stalled server")
                if server.drop_on_resume:
                    return
            self.answer_ready()
            self.send()
            if self.goaway_last is not None and not self.open:
                self.linger_close()
                return

    def on_event(self, event: h2.events.Event) -> bool:
        server = self.server
        if isinstance(event, h2.events.RequestReceived):
            self.received += 1
            stream_id = event.stream_id
            if self.goaway_last is not None and stream_id > self.goaway_last:
                return False  # refused by the GOAWAY: never answered
            if self.limit_acked and len(self.open) >= (self.lower_to or 0):
                with server._lock:
                    server.violations += 1
            self.accepted += 1
            with server._lock:
                server.requests += 1
            self.open.add(stream_id)
            self.paths[stream_id] = dict(event.headers)[b":path"]
            self.received_bytes[stream_id] = 0
            if server.stall and self.paths[stream_id] == b"/stall":
                self.stall_now = True
            if server.max_requests is not None and self.accepted == server.max_requests:
                self.goaway(stream_id)
            if self.lower_to is not None and not self.lowered:
                if len(self.open) >= server.lower_after:
                    self.lowered = True
                    self.h2.update_settings(
                        {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.lower_to}
                    )
        elif isinstance(event, h2.events.DataReceived):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if event.stream_id in self.received_bytes:
                self.received_bytes[event.stream_id] += len(event.data)
        elif isinstance(event, h2.events.StreamEnded):
            if event.stream_id in self.paths:
                with server._lock:
                    server.bodies[self.paths[event.stream_id]] = self.received_bytes[
                        event.stream_id
                    ]
            if event.stream_id in self.open:
                self.ready.append(event.stream_id)
        elif isinstance(event, h2.events.SettingsAcknowledged):
            if self.lowered:
                self.limit_acked = True
        elif isinstance(event, h2.events.PingAckReceived):
            stream_id = self.ping_waiting.pop(event.ping_data, None)
            if stream_id is not None:
                with server._lock:
                    server.pings_acked += 1
                self.respond(stream_id)
        elif isinstance(event, h2.events.StreamReset):
            if event.stream_id in self.paths:
                with server._lock:
                    server.partial_bodies[self.paths[event.stream_id]] = self.received_bytes[
                        event.stream_id
                    ]
            self.open.discard(event.stream_id)
            if event.stream_id in self.ready:
                self.ready.remove(event.stream_id)
        return False

    def goaway(self, last_stream_id: int) -> None:
        self.send()
        frame = hyperframe.frame.GoAwayFrame(stream_id=0, last_stream_id=last_stream_id)
        self.sock.sendall(frame.serialize())
        self.goaway_last = last_stream_id
        with self.server._lock:
            self.server.goaways += 1

    def answer_ready(self) -> None:
        if self.received < self.hold:
            return
        if self.hold and self.server.refuse_held and self.goaway_last is None:
            held = sorted(self.open)
            refused = held[len(held) - self.server.refuse_held :]
            self.goaway(held[len(held) - self.server.refuse_held - 1])
            for stream_id in refused:
                self.open.discard(stream_id)
                if stream_id in self.ready:
                    self.ready.remove(stream_id)
        if self.lower_to is not None and not self.limit_acked:
            return  # answers wait until the limit was lowered (and acknowledged)
        ready, self.ready = self.ready, []
        for stream_id in ready:
            if self.server.ping:
                opaque = stream_id.to_bytes(8, "big")
                self.ping_waiting[opaque] = stream_id
                self.h2.ping(opaque)
            else:
                self.respond(stream_id)

    def respond(self, stream_id: int) -> None:
        path = self.paths.pop(stream_id)
        self.open.discard(stream_id)
        if path == b"/reset":
            self.h2.reset_stream(stream_id, error_code=8)
            return
        if path == b"/die":
            self.h2.send_headers(stream_id, [(b":status", b"200"), (b"content-length", b"100")])
            self.h2.send_data(stream_id, b"x" * 10)
            self.send()
            self.sock.shutdown(socket.SHUT_RDWR)
            raise OSError("dropped the connection on purpose")
        body = b"ok " + path
        self.h2.send_headers(
            stream_id,
            [(b":status", b"200"), (b"content-length", str(len(body)).encode())],
        )
        self.h2.send_data(stream_id, body, end_stream=True)

    def linger_close(self) -> None:
        # Like nginx: stop sending, then read until the client closes (or gives up), so that
        # unread data does not turn the close into a reset that destroys sent responses.
        self.send()
        self.sock.shutdown(socket.SHUT_WR)
        self.sock.settimeout(5)
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass
