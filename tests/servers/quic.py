"""Small HTTP/3 servers on aioquic's sans-I/O API for the cases hypercorn does not produce
(a GOAWAY, a stream reset, a server that never answers), and a UDP relay that drops packets.

All run in the shared background loop (`BackgroundLoop`) on 127.0.0.1, port 0.

`QuicTestServer(bg, certfile, behaviour)`: each request (its headers and body, once ended)
goes to `behaviour(server, conn, stream_id, headers, body)`, which answers with
`server.respond(...)`, resets with `server.reset(...)`, sends a GOAWAY, or does nothing.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Callable, Dict, List, Optional, Tuple

from aioquic.buffer import Buffer, encode_uint_var
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection, encode_frame
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import StopSendingReceived
from aioquic.quic.packet import pull_quic_header

from .loop import BackgroundLoop

Address = Tuple[str, int]
Behaviour = Callable[["QuicTestServer", "ServerConnection", int, Dict[bytes, bytes], bytes], Any]


class ServerConnection:
    """One client of the test server: its QUIC + HTTP/3 state and the requests so far."""

    def __init__(self, quic: QuicConnection, address: Address) -> None:
        self.quic = quic
        self.h3 = H3Connection(quic)
        self.address = address
        self.requests: Dict[int, Tuple[Dict[bytes, bytes], bytearray]] = {}
        self.timer: Optional[asyncio.TimerHandle] = None


class QuicTestServer(asyncio.DatagramProtocol):
    """An HTTP/3 server whose answers are decided by `behaviour` (see the module docstring)."""

    def __init__(self, bg: BackgroundLoop, certfile: str, behaviour: Behaviour) -> None:
        self._bg = bg
        self._behaviour = behaviour
        self._config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
        self._config.load_cert_chain(certfile, keyfile=certfile)
        self._connections: Dict[Address, ServerConnection] = {}
        self._transport: Optional[asyncio.DatagramTransport] = None
        self.requests: List[Tuple[int, Dict[bytes, bytes]]] = []  # (stream id, headers)
        self.stops: List[Tuple[int, int]] = []  # STOP_SENDING received: (stream id, error code)
        self.errors: List[BaseException] = []
        # A stalling server (set by a behaviour): `drop_tail` datagrams at the end of the next
        # transmission are lost; with `lazy_timers`, no timer is armed, and an overdue one is
        # only handled when a datagram comes after `timers_from` (loop time): a server whose
        # retransmission timer was lost, or set late.
        self.drop_tail = 0
        self.dropped = 0
        self.lazy_timers = False
        self.timers_from = 0.0
        bg.run(self._start())
        assert self._transport is not None
        self.port: int = self._transport.get_extra_info("sockname")[1]
        self.url = f"https://127.0.0.1:{self.port}"

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))

    def connection_made(self, transport: Any) -> None:
        self._transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        loop = asyncio.get_running_loop()
        conn = self._connections.get(addr)
        if conn is None:
            header = pull_quic_header(Buffer(data=data), host_cid_length=8)
            quic = QuicConnection(
                configuration=self._config,
                original_destination_connection_id=header.destination_cid,
            )
            conn = self._connections[addr] = ServerConnection(quic, addr)
        conn.quic.receive_datagram(data, addr, now=loop.time())
        if self.lazy_timers and loop.time() >= self.timers_from:
            at = conn.quic.get_timer()
            if at is not None and at <= loop.time():
                conn.quic.handle_timer(now=loop.time())
        try:
            self._process(conn)
        except Exception as exc:  # pragma: no cover - reported by the tests
            self.errors.append(exc)
        self.transmit(conn)

    def _process(self, conn: ServerConnection) -> None:
        while True:
            event = conn.quic.next_event()
            if event is None:
                return
            if isinstance(event, StopSendingReceived):
                self.stops.append((event.stream_id, event.error_code))
            for h3_event in conn.h3.handle_event(event):
                if isinstance(h3_event, HeadersReceived):
                    headers = dict(h3_event.headers)
                    conn.requests[h3_event.stream_id] = (headers, bytearray())
                    self.requests.append((h3_event.stream_id, headers))
                    if h3_event.stream_ended:
                        self._request_complete(conn, h3_event.stream_id)
                elif isinstance(h3_event, DataReceived):
                    entry = conn.requests.get(h3_event.stream_id)
                    if entry is not None:
                        entry[1].extend(h3_event.data)
                        if h3_event.stream_ended:
                            self._request_complete(conn, h3_event.stream_id)

    def _request_complete(self, conn: ServerConnection, stream_id: int) -> None:
        headers, body = conn.requests[stream_id]
        self._behaviour(self, conn, stream_id, headers, bytes(body))

    # -- what behaviours use ----------------------------------------------------------------

    def respond(
        self,
        conn: ServerConnection,
        stream_id: int,
        status: int = 200,
        body: bytes = b"",
        headers: Optional[List[Tuple[bytes, bytes]]] = None,
    ) -> None:
        """Answer `stream_id`; `headers` replace the default content-length (aioquic sends
        them unchecked, malformed ones included)."""
        if headers is None:
            headers = [(b"content-length", str(len(body)).encode())]
        conn.h3.send_headers(stream_id, [(b":status", str(status).encode()), *headers])
        conn.h3.send_data(stream_id, body, end_stream=True)

    def reset(self, conn: ServerConnection, stream_id: int, error_code: int = 0x10C) -> None:
        conn.quic.reset_stream(stream_id, error_code)

    def goaway(self, conn: ServerConnection, stream_id: int) -> None:
        """Send GOAWAY: requests on streams >= `stream_id` will not be processed."""
        control = conn.h3._local_control_stream_id
        assert control is not None
        frame = encode_frame(FrameType.GOAWAY, encode_uint_var(stream_id))
        conn.quic.send_stream_data(control, frame)

    def transmit(self, conn: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        assert self._transport is not None
        datagrams = conn.quic.datagrams_to_send(now=loop.time())
        if self.drop_tail and datagrams:
            kept = max(0, len(datagrams) - self.drop_tail)
            self.dropped += len(datagrams) - kept
            datagrams, self.drop_tail = datagrams[:kept], 0
        for data, addr in datagrams:
            self._transport.sendto(data, addr)
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        if self.lazy_timers:
            return
        at = conn.quic.get_timer()
        if at is not None:
            conn.timer = loop.call_at(at, self._on_timer, conn)

    def _on_timer(self, conn: ServerConnection) -> None:
        conn.timer = None
        conn.quic.handle_timer(now=asyncio.get_running_loop().time())
        self._process(conn)
        self.transmit(conn)

    def close(self) -> None:
        async def stop() -> None:
            for conn in self._connections.values():
                if conn.timer is not None:
                    conn.timer.cancel()
            if self._transport is not None:
                self._transport.close()

        self._bg.run(stop())


class DroppingRelay:
    """A UDP relay on 127.0.0.1 to `target`, dropping a share of the datagrams both ways.

    `drop` is the probability of a drop (drawn from a seeded generator, so runs repeat);
    the first `spare` datagrams each way are never dropped (the handshake goes through
    quickly, loss recovery is tested on the requests). Counts in `.dropped`/`.relayed`.
    """

    def __init__(
        self, bg: BackgroundLoop, target: Address, drop: float = 0.1, seed: int = 1, spare: int = 4
    ) -> None:
        self._bg = bg
        self._target = target
        self._drop = drop
        self._random = random.Random(seed)
        self._spare = spare
        self.dropped = 0
        self.relayed = 0
        self._front: Optional[asyncio.DatagramTransport] = None
        self._backs: Dict[Address, asyncio.DatagramTransport] = {}
        self._counts: Dict[Any, int] = {}
        self._pending: Dict[Address, List[bytes]] = {}
        self._tasks: List[Any] = []
        bg.run(self._start())
        assert self._front is not None
        self.port: int = self._front.get_extra_info("sockname")[1]

    def _keep(self, direction: Any) -> bool:
        count = self._counts[direction] = self._counts.get(direction, 0) + 1
        if count > self._spare and self._random.random() < self._drop:
            self.dropped += 1
            return False
        self.relayed += 1
        return True

    async def _start(self) -> None:
        relay = self
        loop = asyncio.get_running_loop()

        class Front(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                relay._from_client(data, addr)

        self._front, _ = await loop.create_datagram_endpoint(Front, local_addr=("127.0.0.1", 0))

    def _from_client(self, data: bytes, client: Address) -> None:
        back = self._backs.get(client)
        if back is not None:
            if self._keep(("up", client)):
                back.sendto(data)
            return
        pending = self._pending.get(client)
        if pending is not None:
            pending.append(data)
            return
        self._pending[client] = [data]
        self._tasks.append(asyncio.ensure_future(self._open_back(client)))

    async def _open_back(self, client: Address) -> None:
        relay = self
        loop = asyncio.get_running_loop()

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                if relay._keep(("down", client)) and relay._front is not None:
                    relay._front.sendto(data, client)

        back, _ = await loop.create_datagram_endpoint(Back, remote_addr=self._target)
        self._backs[client] = back
        for data in self._pending.pop(client):
            if self._keep(("up", client)):
                back.sendto(data)

    def close(self) -> None:
        async def stop() -> None:
            for back in self._backs.values():
                back.close()
            if self._front is not None:
                self._front.close()

        self._bg.run(stop())
