"""A minimal HTTP/3 server on qh3, for `benchmarks/http3.py --server qh3`.

qh3 is the fork of aioquic with its QUIC and TLS core in Rust (the library niquests is built
on): its CPU per request is a fraction of hypercorn's (pure-Python aioquic plus an ASGI
layer), so that on a small machine the clients, not the server, set the rate.

It answers with fixed bodies, no application framework in between:

- ``GET /``          200 ``Hello, world!`` (text/plain)
- ``GET /bytes/{n}`` ``n`` bytes of ``b"x"`` (up to 256 MiB)
- anything else      404

Run with the niquests venv's python (qh3 is installed there):
``python h3_server_qh3.py --certfile server.pem``: it binds UDP on 127.0.0.1 (port 0 unless
``--port``), prints ``port <n>`` on a line of its own once it listens, and serves until
killed (SIGTERM/SIGINT) or until its stdin closes (so it never outlives the benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any, Dict, List, Tuple

HELLO = b"Hello, world!"
FAILED_TRANSMITS: List[str] = []  # see H3Protocol.transmit
MAX_BYTES = 256 * 1024 * 1024


def respond(path: bytes) -> Tuple[int, bytes]:
    """Status and body for a GET of `path`."""
    if path == b"/":
        return 200, HELLO
    if path.startswith(b"/bytes/"):
        try:
            size = int(path[7:])
        except ValueError:
            return 404, b""
        if 0 <= size <= MAX_BYTES:
            return 200, b"x" * size
    return 404, b""


def make_protocol() -> Any:
    """The connection protocol class (built here: qh3 is imported only in the server process)."""
    from qh3.asyncio import QuicConnectionProtocol
    from qh3.h3.connection import H3Connection
    from qh3.h3.events import DataReceived, HeadersReceived
    from qh3.quic.connection import QuicConnectionError
    from qh3.quic.events import ProtocolNegotiated, QuicEvent

    class H3Protocol(QuicConnectionProtocol):  # type: ignore[misc]
        """One QUIC connection: answers each request when its stream ends."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._h3: Any = None
            self._paths: Dict[int, bytes] = {}  # stream id -> path, until the request ends

        def transmit(self) -> None:
            # qh3 2.1.0 fails to build a packet ("packet builder capacity exhausted") twice
            # during the handshake with an aioquic client; the next datagram transmits again
            # and the connection completes. Counted, and reported in one line at exit.
            try:
                super().transmit()
            except QuicConnectionError as exc:
                FAILED_TRANSMITS.append(str(exc))

        def quic_event_received(self, event: QuicEvent) -> None:
            if isinstance(event, ProtocolNegotiated):
                self._h3 = H3Connection(self._quic)
            if self._h3 is None:
                return
            for h3_event in self._h3.handle_event(event):
                if isinstance(h3_event, HeadersReceived):
                    path = b"/"
                    for name, value in h3_event.headers:
                        if name == b":path":
                            path = value
                    self._paths[h3_event.stream_id] = path
                    if h3_event.stream_ended:
                        self._answer(h3_event.stream_id)
                elif isinstance(h3_event, DataReceived) and h3_event.stream_ended:
                    self._answer(h3_event.stream_id)
            # The protocol transmits after this handler returns (datagram_received does).

        def _answer(self, stream_id: int) -> None:
            path = self._paths.pop(stream_id, None)
            if path is None:
                return
            status, body = respond(path)
            headers: List[Tuple[bytes, bytes]] = [
                (b":status", str(status).encode()),
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ]
            self._h3.send_headers(stream_id, headers, end_stream=not body)
            if body:
                self._h3.send_data(stream_id, body, end_stream=True)

    return H3Protocol


def set_max_streams(count: int) -> None:
    """Make qh3 grant `count` concurrent bidirectional streams per connection.

    qh3 2.1.0 hard-codes 100 (the `local_max_streams_bidi` argument of its Rust core, not a
    configuration field); aioquic, so hypercorn, grants 128. With exactly 100, a client sending
    batches of 100 waits for MAX_STREAMS credit between batches, and niquests' sync client then
    spins (whole seconds of CPU per batch, sometimes "reserved stream is missing"). Patched
    where qh3 calls the core, so that the server matches hypercorn.
    """
    import qh3.quic.connection as connection

    core = connection.QuicConnectionCore
    index = 21  # local_max_streams_bidi, see qh3/_hazmat.pyi

    def patched(*args: Any) -> Any:
        if len(args) == 28 and args[index] == 100:
            args = (*args[:index], count, *args[index + 1 :])
        return core(*args)

    setattr(connection, "QuicConnectionCore", patched)  # noqa: B010 (a module, not typed here)


async def serve(certfile: str, keyfile: str, port: int) -> None:
    from qh3.asyncio import serve as qh3_serve
    from qh3.h3.connection import H3_ALPN
    from qh3.quic.configuration import QuicConfiguration

    # qh3's H3Connection always announces SETTINGS_H3_DATAGRAM=1, which RFC 9297 allows only
    # with the max_datagram_frame_size transport parameter: aioquic clients close otherwise.
    configuration = QuicConfiguration(
        alpn_protocols=H3_ALPN, is_client=False, max_datagram_frame_size=65536
    )
    configuration.load_cert_chain(certfile, keyfile)
    server = await qh3_serve(
        "127.0.0.1", port, configuration=configuration, create_protocol=make_protocol()
    )
    bound = server._transport.get_extra_info("sockname")[1]
    print(f"port {bound}", flush=True)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Stop when the parent goes away, too: it holds our stdin's write end.
    stdin = sys.stdin.fileno()
    loop.add_reader(stdin, lambda: None if os.read(stdin, 1) else stop.set())
    try:
        await stop.wait()
    finally:
        server.close()
        if FAILED_TRANSMITS:
            print(
                f"qh3 server: {len(FAILED_TRANSMITS)} failed transmits (handshake, retried): "
                f"{FAILED_TRANSMITS[0]}",
                file=sys.stderr,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--certfile", required=True, help="PEM: certificate chain (and key)")
    parser.add_argument("--keyfile", help="PEM private key (default: in --certfile)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--max-streams",
        type=int,
        default=128,
        help="concurrent request streams per connection (default 128, as aioquic/hypercorn; "
        "qh3's own is 100)",
    )
    args = parser.parse_args()
    if args.max_streams != 100:
        set_max_streams(args.max_streams)
    asyncio.run(serve(args.certfile, args.keyfile or args.certfile, args.port))


if __name__ == "__main__":
    main()
