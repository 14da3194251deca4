"""The sync TLS stream itself (`httpcore.base._sync_tls`), used by several threads at once.

Against the scripted TLS servers of tests/servers/raw.py: a reader and a writer thread at once,
each call with its own timeout, the transport never read (or written) by two threads at once, a
write that needs ciphertext waiting for the thread reading, the end of the stream, introspection.
(Through a pool: tests/test_sync_tls_threads.py.)
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from typing import Any, Callable, List, Optional

import pytest
from servers.raw import reset_during_upload, stall
from test_leaks import no_leaks

import httpcore
from httpcore.base._backends import NetworkStream
from httpcore.base._sync_tls import SocketTransport, SyncTLSStream, TLSinTLSStream

pytestmark = pytest.mark.timeout(90)


class Recording(NetworkStream):
    """A transport that records how many threads read it (and write it) at once, and holds
    each call a moment so that the threads' calls overlap."""

    def __init__(self, inner: NetworkStream) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self.reading = self.writing = 0
        self.most_reading = self.most_writing = 0
        self.overlaps = 0  # reads and writes at the same time

    def _enter(self, reading: bool) -> None:
        with self._lock:
            if reading:
                self.reading += 1
                self.most_reading = max(self.most_reading, self.reading)
            else:
                self.writing += 1
                self.most_writing = max(self.most_writing, self.writing)
            if self.reading and self.writing:
                self.overlaps += 1

    def _leave(self, reading: bool) -> None:
        with self._lock:
            if reading:
                self.reading -= 1
            else:
                self.writing -= 1

    def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        self._enter(True)
        try:
            time.sleep(0.0005)
            return self.inner.read(max_bytes, timeout)
        finally:
            self._leave(True)

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self._enter(False)
        try:
            time.sleep(0.0005)
            self.inner.write(buffer, timeout)
        finally:
            self._leave(False)

    def close(self) -> None:
        self.inner.close()

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


def _echo(conn: socket.socket, server: Any) -> None:
    while True:
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)


def _connect(port: int, context: ssl.SSLContext, record: bool = False) -> Any:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    transport: NetworkStream = SocketTransport(sock)
    if record:
        transport = Recording(transport)
    return SyncTLSStream.handshake(transport, context, "localhost", timeout=5)


def _run(*functions: Callable[[], Any]) -> List[Any]:
    """Run the functions in threads at once; their results or exceptions."""
    results: List[Any] = [None] * len(functions)

    def run(index: int) -> None:
        try:
            results[index] = functions[index]()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(functions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_a_reader_and_a_writer_thread_share_a_tls_stream(
    raw_server: Callable[..., Any], client_ssl_context: ssl.SSLContext
) -> None:
    srv = raw_server(_echo, tls=True, alpn=None)
    with no_leaks():
        stream = _connect(srv.port, client_ssl_context, record=True)
        payload = os.urandom(2_000_000)

        def write() -> None:
            for start in range(0, len(payload), 20_000):
                stream.write(payload[start : start + 20_000], timeout=10)

        def read() -> bytes:
            received = bytearray()
            while len(received) < len(payload):
                data = stream.read(65536, timeout=10)
                assert data
                received += data
            return bytes(received)

        written, echoed = _run(write, read)
        assert written is None
        assert echoed == payload
        transport = stream._transport
        assert transport.most_reading == 1
        assert transport.most_writing == 1
        assert transport.overlaps > 0  # the test did what it says
        stream.close()
        srv.close()


def test_a_second_reader_waits_for_the_one_reading_the_transport(
    raw_server: Callable[..., Any], client_ssl_context: ssl.SSLContext
) -> None:
    srv = raw_server(_echo, tls=True, alpn=None)
    with no_leaks():
        stream = _connect(srv.port, client_ssl_context, record=True)
        total = 600_000
        received: List[bytes] = []
        lock = threading.Lock()

        def read() -> None:
            while True:
                with lock:
                    if sum(map(len, received)) >= total:
                        return
                data = stream.read(4096, timeout=5)
                with lock:
                    received.append(data)

        def write() -> None:
            for _ in range(total // 10_000):
                stream.write(b"z" * 10_000, timeout=5)

        results = _run(read, read, read, write)
        # A reader may time out waiting once everything has been read by the others.
        assert all(r is None or isinstance(r, httpcore.ReadTimeout) for r in results)
        assert b"".join(received) == b"z" * total
        assert stream._transport.most_reading == 1
        stream.close()
        srv.close()


def test_a_write_and_a_read_each_keep_their_own_timeout(
    raw_server: Callable[..., Any], client_ssl_context: ssl.SSLContext
) -> None:
    """The server reads and writes nothing after the handshake: a reader thread waits (2 s)
    while a writer fills the socket buffers; the write times out after its own 0.2 s."""
    srv = raw_server(stall, tls=True, alpn=None)
    with no_leaks():
        stream = _connect(srv.port, client_ssl_context)

        def read() -> float:
            started = time.monotonic()
            with pytest.raises(httpcore.ReadTimeout):
                stream.read(100, timeout=2)
            return time.monotonic() - started

        def write() -> float:
            time.sleep(0.1)  # the reader is waiting by now
            started = time.monotonic()
            with pytest.raises(httpcore.WriteTimeout):
                stream.write(b"x" * (64 * 1024 * 1024), timeout=0.2)
            return time.monotonic() - started

        read_time, write_time = _run(read, write)
        assert 1.9 <= read_time < 5
        assert 0.19 <= write_time < 1.5
        # Part of a record was sent: the stream refuses to go on with the rest lost.
        with pytest.raises(httpcore.WriteError, match="timed out"):
            stream.write(b"more", timeout=5)
        stream.close()
        srv.close()


def test_end_of_stream_while_another_thread_writes(
    raw_server: Callable[..., Any], client_ssl_context: ssl.SSLContext
) -> None:
    """The server answers the first bytes and closes (close_notify, then FIN): the reader gets
    the data then b"", not an error."""

    def answer_and_close(conn: ssl.SSLSocket, server: Any) -> None:
        conn.recv(100)
        conn.sendall(b"bye")
        conn.unwrap().close()

    srv = raw_server(answer_and_close, tls=True, alpn=None)
    with no_leaks():
        stream = _connect(srv.port, client_ssl_context)
        stream.write(b"hello")
        assert stream.read(100, timeout=5) == b"bye"
        assert stream.read(100, timeout=5) == b""
        assert stream.read(100, timeout=5) == b""  # and again
        assert stream.get_extra_info("is_readable") is True
        stream.close()
        with pytest.raises(httpcore.ReadError):
            stream.read(100)
        with pytest.raises(httpcore.WriteError):
            stream.write(b"x")
        srv.close()


def test_stream_introspection(
    raw_server: Callable[..., Any], client_ssl_context: ssl.SSLContext
) -> None:
    srv = raw_server(_echo, tls=True, alpn=None)
    with no_leaks():
        raw = httpcore.SyncBackend().connect_tcp("127.0.0.1", srv.port)
        stream = raw.start_tls(client_ssl_context, server_hostname="localhost", timeout=5)
        assert type(stream) is SyncTLSStream
        sock = stream.get_extra_info("socket")
        assert type(sock) is socket.socket  # the raw socket: TLS runs in memory
        assert repr(stream) == f"<SyncTLSStream fd={sock.fileno()}>"
        assert isinstance(stream.get_extra_info("ssl_object"), ssl.SSLObject)
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", srv.port)
        stream.write(b"a" * 5000)
        first = stream.read(10, timeout=5)
        assert first == b"a" * 10
        # The rest of the record is decrypted and buffered: readable, though the socket is not.
        assert stream.get_extra_info("is_readable") is True
        rest = b""
        while len(rest) < 4990:
            rest += stream.read(65536, timeout=5)
        assert stream.get_extra_info("is_readable") is False
        stream.write(b"ab")  # echoed in one record
        assert stream.read(1, timeout=5) == b"a"
        assert stream.get_extra_info("is_readable") is True  # one byte left inside
        assert stream.read(1, timeout=5) == b"b"
        assert stream.get_extra_info("is_readable") is False
        stream.close()
        assert stream.get_extra_info("is_readable") is True
        srv.close()


def test_a_failed_inner_handshake_closes_the_connection(
    raw_server: Callable[..., Any], client_ssl_context: ssl.SSLContext
) -> None:
    srv = raw_server(_echo, tls=True, alpn=None)
    with no_leaks():
        stream = _connect(srv.port, client_ssl_context)
        # The echo server bounces the inner ClientHello back: not a ServerHello.
        with pytest.raises(httpcore.ConnectError):
            TLSinTLSStream.handshake(stream, client_ssl_context, "localhost", timeout=5)
        with pytest.raises(httpcore.ReadError):
            stream.read(1)
        srv.close()


class WantsReadFirst:
    """Stands in for the SSL object under a `SyncTLSStream`: its first `write` asks for more
    ciphertext (`SSLWantReadError`, as during a TLS 1.2 renegotiation), later ones write."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.refused = 0

    def write(self, data: Any) -> int:
        if not self.refused:
            self.refused += 1
            raise ssl.SSLWantReadError("wants read")
        return self._real.write(data)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.001)


def _settle(stream: Any) -> None:
    """A round trip, so that the TLS 1.3 session tickets sent after the handshake are read."""
    stream.write(b"settle", timeout=5)
    assert stream.read(100, timeout=5) == b"settle"


def test_a_write_that_must_read_waits_for_the_thread_reading(
    raw_server: Callable[..., Any], client_ssl_context: ssl.SSLContext
) -> None:
    """A reader thread waits on the socket; a write needs ciphertext first: it waits for the
    reader to bring some in (rather than reading the socket too), then writes."""
    srv = raw_server(_echo, tls=True, alpn=None)
    with no_leaks():
        stream = _connect(srv.port, client_ssl_context, record=True)
        _settle(stream)
        fake = stream._ssl = WantsReadFirst(stream._ssl)
        transport = stream._transport
        results: List[Any] = []
        reader = threading.Thread(target=lambda: results.append(stream.read(100, timeout=5)))
        reader.start()
        _until(lambda: transport.reading == 1)
        writer = threading.Thread(target=lambda: stream.write(b"ping", timeout=5))
        writer.start()
        _until(lambda: fake.refused == 1)
        assert writer.is_alive()  # waiting for the reader's ciphertext
        stream.write(b"wake", timeout=5)  # echoed: the reader feeds it in, the writer goes on
        writer.join(5)
        reader.join(5)
        assert not writer.is_alive() and not reader.is_alive()
        echoed = results[0]
        while len(echoed) < 8:
            echoed += stream.read(100, timeout=5)
        assert echoed == b"wakeping"
        assert transport.most_reading == 1
        stream.close()
        srv.close()


def test_a_write_that_must_read_keeps_its_own_timeout(
    raw_server: Callable[..., Any], client_ssl_context: ssl.SSLContext
) -> None:
    """Nothing comes: the write waiting for the reader's ciphertext times out after its own
    0.3 s; the reader goes on waiting for its 2 s."""
    srv = raw_server(_echo, tls=True, alpn=None)
    with no_leaks():
        stream = _connect(srv.port, client_ssl_context, record=True)
        _settle(stream)
        stream._ssl = WantsReadFirst(stream._ssl)
        transport = stream._transport

        def read() -> float:
            started = time.monotonic()
            with pytest.raises(httpcore.ReadTimeout):
                stream.read(100, timeout=2)
            return time.monotonic() - started

        def write() -> float:
            _until(lambda: transport.reading == 1)
            started = time.monotonic()
            with pytest.raises(httpcore.WriteTimeout):
                stream.write(b"ping", timeout=0.3)
            return time.monotonic() - started

        read_time, write_time = _run(read, write)
        assert 0.29 <= write_time < 1.5
        assert 1.9 <= read_time < 5
        assert transport.most_reading == 1
        stream.close()
        srv.close()


def test_socket_transport_timeouts(raw_server: Callable[..., Any]) -> None:
    """Each call waits for its own timeout (a negative one is no time at all), and the
    transport's write sends everything or times out."""
    srv = raw_server(stall)
    with no_leaks():
        transport = SocketTransport(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
        assert transport.get_extra_info("is_readable") is False
        for timeout in (0.1, 0.0, -1.0):
            started = time.monotonic()
            with pytest.raises(httpcore.ReadTimeout, match="timed out"):
                transport.read(100, timeout=timeout)
            assert time.monotonic() - started < 1.5
        started = time.monotonic()
        with pytest.raises(httpcore.WriteTimeout, match="timed out"):
            transport.write(b"x" * (64 * 1024 * 1024), timeout=0.2)
        assert 0.19 <= time.monotonic() - started < 1.5
        started = time.monotonic()
        with pytest.raises(httpcore.WriteTimeout):
            transport.write(b"x" * (64 * 1024 * 1024), timeout=0.05)
        assert time.monotonic() - started < 0.8  # each wait is what is left, never more
        transport.write(b"")  # nothing to send: no wait
        assert repr(transport).startswith("<SocketTransport fd=")
        transport.close()
        assert transport.get_extra_info("is_readable") is True
        with pytest.raises(httpcore.ReadError):
            transport.read(1, timeout=1)
        with pytest.raises(httpcore.WriteError):
            transport.write(b"x", timeout=1)
        srv.close()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_shutdown_ends_another_thread_s_read(
    raw_server: Callable[..., Any], client_ssl_context: ssl.SSLContext, tls: bool
) -> None:
    """What a failed HTTP/2 connection does to the thread reading it: `shutdown()` ends a
    read waiting without a timeout (as the end of the stream, or with TLS possibly a reset
    from the peer), and leaves closing to `close()`; shutting down again, or after closing,
    is harmless."""
    srv = raw_server(stall, tls=tls, alpn=None)
    with no_leaks():
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        stream: Any = SocketTransport(sock)
        if tls:
            stream = SyncTLSStream.handshake(stream, client_ssl_context, "127.0.0.1", 5)
        reading = threading.Event()

        def read() -> bytes:
            reading.set()
            data: bytes = stream.read(100, timeout=None)
            return data

        def shut_down() -> None:
            assert reading.wait(10)
            # The read is waiting, or about to: either way it ends with the end of the stream.
            stream.shutdown()

        data, _ = _run(read, shut_down)
        assert data == b"" or (tls and isinstance(data, httpcore.ReadError))
        assert sock.fileno() >= 0  # not closed
        stream.shutdown()
        stream.close()
        stream.shutdown()
        assert sock.fileno() == -1
        srv.close()


class HeldWrites(Recording):
    """A transport whose writes wait, once `held` is set, until `release` is: a send stuck on
    a full network, for as long as the test says."""

    def __init__(self, inner: NetworkStream) -> None:
        super().__init__(inner)
        self.held = threading.Event()
        self.release = threading.Event()

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        if self.held.is_set():
            self._enter(False)
            try:
                self.release.wait(10)
            finally:
                self._leave(False)
        self.inner.write(buffer, timeout)


def test_a_writer_waits_its_turn_while_another_thread_sends(
    raw_server: Callable[..., Any], client_ssl_context: ssl.SSLContext
) -> None:
    """One thread's send is stuck; another thread's write waits for its turn, within its own
    timeout, and says so when that runs out: it does not return with its records unsent. Once
    the first send goes on, both writes' bytes arrive, in order."""
    srv = raw_server(_echo, tls=True, alpn=None)
    with no_leaks():
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        transport = HeldWrites(SocketTransport(sock))
        stream = SyncTLSStream.handshake(transport, client_ssl_context, "localhost", timeout=5)
        _settle(stream)
        transport.held.set()
        first = threading.Thread(target=lambda: stream.write(b"first", timeout=5))
        first.start()
        _until(lambda: transport.writing == 1)
        started = time.monotonic()
        with pytest.raises(httpcore.WriteTimeout):
            stream.write(b"second", timeout=0.2)
        assert 0.19 <= time.monotonic() - started < 2
        transport.held.clear()
        transport.release.set()
        first.join(5)
        assert not first.is_alive()
        echoed = b""
        while len(echoed) < 11:
            echoed += stream.read(100, timeout=5)
        assert echoed == b"firstsecond"  # the second's records went out with the first's
        stream.close()
        srv.close()


class _NoSocket(NetworkStream):
    def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        return b""  # pragma: no cover

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        pass  # pragma: no cover

    def close(self) -> None:
        pass  # pragma: no cover


def test_repr_without_a_socket() -> None:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    ssl_object = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="x")
    stream = SyncTLSStream(_NoSocket(), ssl_object, incoming, outgoing)
    assert repr(stream) == "<SyncTLSStream fd=-1>"


class FailingWritesAfterFirst(Recording):
    """A transport whose writes fail (with `error`) after the first: a peer gone, or not
    reading, by the time our TLS alert is sent."""

    def __init__(self, inner: NetworkStream, error: Exception) -> None:
        super().__init__(inner)
        self.error = error
        self.writes = 0

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self.writes += 1
        if self.writes > 1:
            raise self.error
        self.inner.write(buffer, timeout)


@pytest.mark.parametrize(
    "error", [httpcore.WriteError("peer gone"), httpcore.WriteTimeout("timed out")]
)
def test_a_failed_handshake_reports_the_tls_error_when_its_alert_cannot_be_sent(
    raw_server: Callable[..., Any], error: Exception
) -> None:
    srv = raw_server(_echo, tls=True, alpn=None)
    untrusting = ssl.create_default_context()  # the test CA is not among its roots
    with no_leaks():
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        transport = FailingWritesAfterFirst(SocketTransport(sock), error)
        with pytest.raises(httpcore.ConnectError) as info:
            SyncTLSStream.handshake(transport, untrusting, "localhost", timeout=5)
        assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
        assert transport.writes == 2  # the ClientHello, then the alert that failed
        srv.close()


def _count_then_answer(conn: socket.socket, server: Any) -> None:
    received = 0
    while True:
        data = conn.recv(1024 * 1024)
        if not data:
            break
        received += len(data)
    conn.sendall(b"%d" % received)


def test_socket_transport_writes_all_of_a_big_buffer(raw_server: Callable[..., Any]) -> None:
    """More than the socket buffers hold: the first send takes part, the rest follows as the
    server reads, all of it."""
    srv = raw_server(_count_then_answer)
    with no_leaks():
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        transport = SocketTransport(sock)
        transport.write(b"x" * (64 * 1024 * 1024), timeout=10)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            data = transport.read(100, timeout=10)
            if not data:
                break
            answer += data
        assert answer == b"%d" % (64 * 1024 * 1024)
        transport.close()
        srv.close()


def test_socket_transport_write_to_a_reset_connection_is_a_write_error(
    raw_server: Callable[..., Any],
) -> None:
    srv = raw_server(reset_during_upload)
    with no_leaks():
        transport = SocketTransport(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
        with pytest.raises(httpcore.WriteError):
            transport.write(b"x" * (64 * 1024 * 1024), timeout=10)
        transport.close()
        srv.close()


def test_a_tls_read_waits_no_longer_than_its_timeout(
    raw_server: Callable[..., Any], client_ssl_context: ssl.SSLContext
) -> None:
    srv = raw_server(stall, tls=True, alpn=None)
    with no_leaks():
        stream = _connect(srv.port, client_ssl_context)
        started = time.monotonic()
        with pytest.raises(httpcore.ReadTimeout):
            stream.read(100, timeout=0.05)
        assert time.monotonic() - started < 0.8
        stream.close()
        srv.close()


def _tail_after(gate: threading.Event) -> Callable[[socket.socket, Any], None]:
    """A handler that reads nothing until `gate` opens, then all of it, and answers the last
    4 bytes."""

    def handler(conn: socket.socket, server: Any) -> None:
        gate.wait(10)
        tail = b""
        while True:
            data = conn.recv(1024 * 1024)
            if not data:
                break
            tail = (tail + data)[-4:]
        conn.sendall(tail)

    return handler


def test_socket_transport_write_into_full_buffers_sends_every_byte(
    raw_server: Callable[..., Any],
) -> None:
    """A write whose first send finds the socket buffers full (the server reads nothing yet)
    waits, then sends all of it, from its first byte."""
    gate = threading.Event()
    srv = raw_server(_tail_after(gate))
    with no_leaks():
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        transport = SocketTransport(sock)
        with pytest.raises(httpcore.WriteTimeout):
            transport.write(b"x" * (64 * 1024 * 1024), timeout=0.2)
        while True:  # to the brim: the next send cannot take a byte
            try:
                sock.send(b"x" * 65536)
            except BlockingIOError:
                break
        opener = threading.Timer(0.1, gate.set)
        opener.start()
        try:
            transport.write(b"tail", timeout=10)
        finally:
            opener.join()
        sock.shutdown(socket.SHUT_WR)
        assert transport.read(100, timeout=10) == b"tail"
        transport.close()
        srv.close()


def test_socket_transport_is_readable_while_another_thread_polls(
    raw_server: Callable[..., Any],
) -> None:
    """A poll object cannot be polled by two threads: asked while a reader waits on it, the
    transport answers with a poll object of its own."""
    srv = raw_server(stall)
    with no_leaks():
        transport = SocketTransport(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
        reader = threading.Thread(target=lambda: transport._readable.poll(3000))
        reader.start()
        try:

            def polled_elsewhere() -> bool:
                try:
                    transport._readable.poll(0)
                except RuntimeError:
                    return True
                return False

            _until(polled_elsewhere)
            assert transport.get_extra_info("is_readable") is False
        finally:
            reader.join(10)
        transport.close()
        srv.close()


def test_a_handshake_failing_before_any_io_closes_the_transport(
    raw_server: Callable[..., Any], client_ssl_context: ssl.SSLContext
) -> None:
    srv = raw_server(stall)
    with no_leaks():
        transport = SocketTransport(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
        with pytest.raises(ValueError):
            SyncTLSStream.handshake(transport, client_ssl_context, server_hostname=".", timeout=5)
        assert transport.get_extra_info("socket").fileno() == -1
        srv.close()
