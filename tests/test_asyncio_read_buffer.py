"""The native asyncio backend reads every socket of a thread into one buffer (a
`BufferedProtocol`), so that no read allocates, maps and unmaps a 256 KiB object."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, List

import pytest

pytest.importorskip("anyio")

from httpcore.aio import _asyncio


def test_protocols_of_a_thread_share_one_buffer_and_hand_out_copies() -> None:
    first, second = _asyncio._Protocol(), _asyncio._Protocol()
    buffer = first.get_buffer(-1)
    assert second.get_buffer(-1) is buffer
    assert len(buffer) == _asyncio.READ_BUFFER_SIZE
    buffer[:5] = b"hello"
    first.buffer_updated(5)
    buffer[:3] = b"abc"  # the next read, for another connection
    second.buffer_updated(3)
    assert list(first.chunks) == [b"hello"] and type(first.chunks[0]) is bytes
    assert list(second.chunks) == [b"abc"]
    assert (first.buffered, second.buffered) == (5, 3)


def test_each_thread_has_its_own_buffer() -> None:
    seen: List[Any] = []
    thread = threading.Thread(target=lambda: seen.append(_asyncio._Protocol().get_buffer(-1)))
    thread.start()
    thread.join()
    assert seen[0] is not _asyncio._Protocol().get_buffer(-1)


def test_reads_through_the_shared_buffer_keep_each_connection_apart(raw_server: Any) -> None:
    # Two servers answering at once: every chunk lands in the shared buffer in turn.
    bodies = [bytes([65 + n]) * 300_000 for n in range(2)]
    servers = [
        raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        for body in bodies
    ]

    async def main() -> List[bytes]:
        backend = _asyncio.AsyncIOBackend()
        streams = [await backend.connect_tcp(srv.host, srv.port, timeout=5) for srv in servers]
        for stream in streams:
            await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)

        async def read_all(stream: Any) -> bytes:
            data = b""
            while True:
                chunk = await stream.read(65536, timeout=5)
                if not chunk:
                    return data
                data += chunk

        try:
            return list(await asyncio.gather(*(read_all(stream) for stream in streams)))
        finally:
            for stream in streams:
                await stream.aclose()

    received = asyncio.run(main())
    for data, body in zip(received, bodies):
        assert data.endswith(b"\r\n\r\n" + body)


@pytest.mark.parametrize("size", [3 * _asyncio.HIGH_WATER])
def test_a_tls_download_that_fills_the_buffer_resumes_when_read(
    tls_server: Any, client_ssl_context: Any, size: int
) -> None:
    # The reader falls behind: reading pauses at HIGH_WATER and must resume as the caller reads
    # (it once paused the raw transport and resumed the TLS one, and the download stalled).
    async def main() -> int:
        backend = _asyncio.AsyncIOBackend()
        stream: Any = await backend.connect_tcp(tls_server.host, tls_server.port, timeout=5)
        stream = await stream.start_tls(client_ssl_context, server_hostname="localhost", timeout=5)
        try:
            request = b"GET /bytes/%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % size
            await stream.write(request, timeout=5)
            received = len(await stream.read(65536, timeout=5))
            # Before Python 3.11 TLS runs in memory over the plain stream, whose protocol pauses.
            protocol = getattr(stream, "_inner", stream)._protocol
            for _ in range(500):  # until the protocol has paused reading (at most 5 s)
                if protocol.read_paused:
                    break
                await asyncio.sleep(0.01)
            assert protocol.read_paused
            while True:
                chunk = await stream.read(65536, timeout=5)
                if not chunk:
                    return received
                received += len(chunk)
                if received >= size:  # the head came first, so the body is all here
                    return received
        finally:
            await stream.aclose()

    assert asyncio.run(main()) >= size
