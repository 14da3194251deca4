"""What the hand-written aioquic test servers share (`h3_chaos_server.ChaosServer`,
`h3_cancel_world.CancelServer`): one UDP endpoint on 127.0.0.1 in the shared background loop,
a `QuicConnection` per client (a new one when a new client comes from the port of an earlier
one), aioquic's timers, and sending what aioquic has to send.

A subclass says what a peer holds (`new_peer`) and what its events mean (`handle_events`); it
may drop datagrams before any peer sees them (`admit`), forget a peer (`alive`), or hold what a
peer would send (`may_send`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, Dict, Generic, List, Optional, Protocol, Tuple, TypeVar

from aioquic._buffer import Buffer
from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicHeader, pull_quic_header

try:
    from aioquic.quic.packet import QuicPacketType

    INITIAL: object = QuicPacketType.INITIAL
except ImportError:  # aioquic 1.0 and 1.1: the header's first byte, masked
    from aioquic.quic.packet import PACKET_TYPE_INITIAL as INITIAL

Address = Tuple[str, int]
T = TypeVar("T")


class LoopRunner(Protocol):
    """The shared background loop (`tests/servers/loop.py`), as far as the servers use it."""

    def run(self, coro: Coroutine[Any, Any, T], timeout: Optional[float] = 10.0) -> T: ...


class QuicPeer:
    """One client connection."""

    def __init__(self, quic: QuicConnection, address: Address, number: int) -> None:
        self.quic = quic
        self.address = address
        self.number = number  # 1 for the server's first connection, and so on
        self.timer: Optional[asyncio.TimerHandle] = None
        # The destination connection ids of the client's Initial packets.
        self.connection_ids = (quic.original_destination_connection_id, quic.host_cid)


P = TypeVar("P", bound=QuicPeer)


class QuicServer(asyncio.DatagramProtocol, Generic[P]):
    """The UDP side of a test server (module docstring). `start()` binds it."""

    def __init__(self, bg: LoopRunner, certfile: str) -> None:
        self._bg = bg
        self._config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
        self._config.load_cert_chain(certfile, keyfile=certfile)
        self._peers: Dict[Address, P] = {}
        self._transport: Optional[asyncio.DatagramTransport] = None
        self.connections = 0  # how many clients connected so far
        self.errors: List[BaseException] = []
        self.port = 0
        self.url = ""

    def start(self) -> None:
        self._bg.run(self._start())
        assert self._transport is not None
        self.port = self._transport.get_extra_info("sockname")[1]
        self.url = f"https://127.0.0.1:{self.port}"

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))

    # -- what subclasses say --------------------------------------------------------------------

    def new_quic(self, header: QuicHeader) -> QuicConnection:
        return QuicConnection(
            configuration=self._config, original_destination_connection_id=header.destination_cid
        )

    def new_peer(self, quic: QuicConnection, address: Address, number: int) -> P:
        raise NotImplementedError

    def handle_events(self, peer: P) -> None:
        raise NotImplementedError

    def admit(self, header: QuicHeader) -> bool:
        """Whether a datagram is looked at all."""
        return True

    def alive(self, peer: P) -> bool:
        """Whether the peer still receives, sends and runs its timers."""
        return True

    def may_send(self, peer: P) -> bool:
        return self.alive(peer)

    # -- receiving ------------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self._transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=8)
        except ValueError:
            return
        if not self.admit(header):
            return
        peer = self._peers.get(addr)
        if peer is None or (
            # A new client on the port of an earlier one (the kernel reuses ephemeral ports).
            header.packet_type == INITIAL and header.destination_cid not in peer.connection_ids
        ):
            self.connections += 1
            peer = self._peers[addr] = self.new_peer(self.new_quic(header), addr, self.connections)
        if not self.alive(peer):
            return
        peer.quic.receive_datagram(data, addr, now=asyncio.get_running_loop().time())
        self.handle_events(peer)
        self.transmit(peer)

    # -- sending --------------------------------------------------------------------------------

    def transmit(self, peer: P) -> None:
        if not self.may_send(peer):
            return
        loop = asyncio.get_running_loop()
        assert self._transport is not None
        for data, addr in peer.quic.datagrams_to_send(now=loop.time()):
            self._transport.sendto(data, addr)
        if peer.timer is not None:
            peer.timer.cancel()
            peer.timer = None
        at = peer.quic.get_timer()
        if at is not None:
            peer.timer = loop.call_at(at, self._on_timer, peer)

    def _on_timer(self, peer: P) -> None:
        peer.timer = None
        if not self.alive(peer):
            return
        peer.quic.handle_timer(now=asyncio.get_running_loop().time())
        self.handle_events(peer)
        self.transmit(peer)

    def close(self) -> None:
        async def stop() -> None:
            for peer in self._peers.values():
                if peer.timer is not None:
                    peer.timer.cancel()
            if self._transport is not None:
                self._transport.close()

        self._bg.run(stop())
