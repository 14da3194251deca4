"""The sync backend's plain sockets on Linux: blocking, with the kernel's timeouts.

`settimeout()` makes CPython poll before every `recv` and `send`; the stream instead keeps the
socket blocking and sets `SO_RCVTIMEO` / `SO_SNDTIMEO` when the caller's timeout changes. These
tests pin what that must keep: the exceptions and their causes, a zero timeout that does not
wait, one deadline for a whole write however often it waits, and writes that a signal
interrupts going on. `test_backends_sync.py` runs its tests over both streams.
"""

from __future__ import annotations

import select
import signal
import socket
import struct
import sys
import threading
import time
from typing import Any, Iterator

import backend_helpers
import pytest
from backend_helpers import Server

import httpcore.base._sync_backend as sync_backend
from httpcore.base._exceptions import ReadTimeout, WriteTimeout

# Worked out here, not read from the module's flag, so that a wrong flag fails these tests.
ON_64_BIT_LINUX = sys.platform == "linux" and struct.calcsize("@l") == 8

pytestmark = pytest.mark.skipif(
    not ON_64_BIT_LINUX, reason="the kernel's socket timeouts are used on 64-bit Linux only"
)

echo_server, stall_server = backend_helpers.echo_server, backend_helpers.stall_server
tls_echo_server, client_context, server_context, ca = (
    backend_helpers.tls_echo_server,
    backend_helpers.client_context,
    backend_helpers.server_context,
    backend_helpers.ca,
)

# More than loopback's socket buffers hold, on both sides: a write of it must wait.
HUGE = b"x" * (64 * 1024 * 1024)


def _timeouts(stream: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    sock = stream.get_extra_info("socket")
    read = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
    write = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16)
    return struct.unpack("@ll", read), struct.unpack("@ll", write)


def test_the_socket_stays_blocking_and_each_direction_keeps_its_own_timeout(
    echo_server: Server,
) -> None:
    stream = sync_backend.SyncBackend().connect_tcp("127.0.0.1", echo_server.port, timeout=5)
    try:
        assert type(stream) is sync_backend._KernelTimeoutStream
        assert stream.get_extra_info("socket").gettimeout() is None
        with pytest.raises(ReadTimeout) as info:
            stream.read(10, timeout=0.05)
        assert isinstance(info.value.__cause__, socket.timeout)
        assert str(info.value) == "timed out"
        stream.write(b"abc", timeout=2.5)
        # The kernel rounds up to its clock tick: compare with what it keeps.
        read_timeout, write_timeout = _timeouts(stream)
        assert read_timeout[0] == 0 and 50_000 <= read_timeout[1] < 70_000
        assert write_timeout[0] == 2 and 500_000 <= write_timeout[1] < 520_000
        assert stream.read(10, timeout=None) == b"abc"
        assert _timeouts(stream)[0] == (0, 0)  # zero: no timeout
    finally:
        stream.close()


def test_a_zero_timeout_does_not_wait(echo_server: Server, stall_server: Server) -> None:
    stream = sync_backend.SyncBackend().connect_tcp("127.0.0.1", echo_server.port)
    try:
        with pytest.raises(ReadTimeout):
            stream.read(10, timeout=0.2)
        with pytest.raises(ReadTimeout):
            stream.read(10, timeout=0)
        with pytest.raises(ReadTimeout):
            stream.read(10, timeout=-1.0)
        stream.write(b"ping", timeout=0)
        select.select([stream.get_extra_info("socket")], [], [], 5)
        assert stream.read(10, timeout=0) == b"ping"
        # Zero is "for ever" to the kernel: a zero timeout is never set on the socket.
        assert _timeouts(stream)[0][0] == 0 and _timeouts(stream)[0][1] >= 200_000
    finally:
        stream.close()
    stalled = sync_backend.SyncBackend().connect_tcp("127.0.0.1", stall_server.port)
    try:
        with pytest.raises(WriteTimeout) as info:
            stalled.write(HUGE, timeout=0)
        assert isinstance(info.value.__cause__, socket.timeout)
        assert _timeouts(stalled)[1] == (0, 0)
    finally:
        stalled.close()


def _slow_reader(conn: socket.socket, server: Server) -> None:
    """Read 16 KiB every 20 ms: a write into it always makes some progress."""
    while not server.stopped.wait(0.02):
        if not conn.recv(16384):
            return


def test_a_write_has_one_deadline_however_much_it_progresses() -> None:
    server = Server(_slow_reader)
    try:
        stream = sync_backend.SyncBackend().connect_tcp("127.0.0.1", server.port)
        try:
            with pytest.raises(WriteTimeout) as info:
                stream.write(HUGE, timeout=0.3)
            assert isinstance(info.value.__cause__, socket.timeout)
        finally:
            stream.close()
    finally:
        server.close()


class _EarlyTimerSocket(socket.socket):
    """A socket whose first `early` waits end after `waited` seconds, before their time, as the
    kernel's timer sometimes does when its jiffies lag the clock (on a VM): `recv`/`send`
    raise EAGAIN."""

    early = 0
    waited = 0.0

    def _end_early(self) -> None:
        self.early -= 1
        time.sleep(self.waited)  # the part of the wait the timer did count
        raise BlockingIOError(11, "Resource temporarily unavailable")

    def recv(self, *args: Any) -> bytes:
        if self.early:
            self._end_early()
        return super().recv(*args)

    def send(self, *args: Any) -> int:
        if self.early:
            self._end_early()
        return super().send(*args)


def _early_stream(port: int, early: int) -> Any:
    sock = _EarlyTimerSocket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect(("127.0.0.1", port))
    sock.early = early
    return sync_backend._KernelTimeoutStream(sock)


@pytest.mark.parametrize("early", [1, 3])
def test_a_read_waits_out_its_timeout_when_the_kernel_s_timer_ends_early(
    echo_server: Server, early: int
) -> None:
    stream = _early_stream(echo_server.port, 0)
    try:
        stream.write(b"ping", timeout=5)
        sock = stream.get_extra_info("socket")
        sock.early, sock.waited = early, 0.1
        assert stream.read(100, timeout=5) == b"ping"
        # What was left of the 5 s was set for the last wait; the next read with 5 s sets 5 s.
        (seconds, micros), _ = _timeouts(stream)
        assert 4 <= seconds + micros / 1e6 <= 5 - 0.1 * early
        stream.write(b"pong", timeout=5)
        assert stream.read(100, timeout=5) == b"pong"
        assert _timeouts(stream)[0] == (5, 0)
    finally:
        stream.close()


def test_a_read_timeout_is_never_raised_before_its_time(stall_server: Server) -> None:
    stream = _early_stream(stall_server.port, 0)
    try:
        stream.get_extra_info("socket").early = 10**9  # every wait ends at once
        started = time.monotonic()
        with pytest.raises(ReadTimeout):
            stream.read(100, timeout=0.2)
        assert time.monotonic() - started >= 0.2
    finally:
        stream.close()


def test_a_write_goes_on_when_the_kernel_s_timer_ends_early(echo_server: Server) -> None:
    stream = _early_stream(echo_server.port, 2)
    try:
        stream.write(b"ping", timeout=5)
        assert stream.read(100, timeout=5) == b"ping"
    finally:
        stream.close()


def test_without_a_timeout_of_its_own_the_caller_s_timer_ending_ends_the_call(
    echo_server: Server,
) -> None:
    # No deadline of ours to wait out: the EAGAIN is the caller's SO_SNDTIMEO/SO_RCVTIMEO.
    stream = _early_stream(echo_server.port, 1)
    try:
        with pytest.raises(WriteTimeout):
            stream.write(b"ping")
        stream.get_extra_info("socket").early = 1
        with pytest.raises(ReadTimeout):
            stream.read(100)
    finally:
        stream.close()


class _Gate:
    def __init__(self) -> None:
        self.open = threading.Event()
        self.received = 0


def _drain_after_gate(conn: socket.socket, server: Server) -> None:
    gate: _Gate = server.target
    gate.open.wait()
    while True:
        data = conn.recv(1024 * 1024)
        if not data:
            return
        gate.received += len(data)


@pytest.fixture
def gated_server() -> Iterator[Server]:
    server = Server(_drain_after_gate, target=_Gate())
    try:
        yield server
    finally:
        server.target.open.set()
        server.close()


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread() or sys.platform == "win32",
    reason="signals are delivered to the main thread",
)
# 1.0: the signal comes with less than a second left, which is still time to finish.
@pytest.mark.parametrize("timeout", [None, 10.0, 1.0])
def test_a_signal_while_a_write_waits_does_not_end_the_write(
    gated_server: Server, timeout: float | None
) -> None:
    gate: _Gate = gated_server.target
    signals = []

    def on_alarm(signum: int, frame: Any) -> None:
        signals.append(signum)
        gate.open.set()  # the server only reads from now on: the write had to wait

    previous = signal.signal(signal.SIGALRM, on_alarm)
    stream = sync_backend.SyncBackend().connect_tcp("127.0.0.1", gated_server.port)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        stream.write(HUGE, timeout=timeout)
        stream.get_extra_info("socket").shutdown(socket.SHUT_WR)
        gated_server.threads[0].join(10)
        assert signals == [signal.SIGALRM]
        assert gate.received == len(HUGE)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        stream.close()


def test_a_write_with_a_short_timeout_waits_for_room(gated_server: Server) -> None:
    """A timeout under a second is a wait, not a try: the write outlasts full socket buffers
    until the server starts reading."""
    gate: _Gate = gated_server.target
    stream = sync_backend.SyncBackend().connect_tcp("127.0.0.1", gated_server.port)
    opener = threading.Timer(0.05, gate.open.set)
    try:
        opener.start()
        stream.write(HUGE[: 32 * 1024 * 1024], timeout=0.9)
        assert gate.open.is_set()  # the write did wait for the server
        stream.get_extra_info("socket").shutdown(socket.SHUT_WR)
        gated_server.threads[0].join(10)
        assert gate.received == 32 * 1024 * 1024
    finally:
        opener.cancel()
        stream.close()


def test_timevals() -> None:
    timeval = sync_backend._timeval
    assert struct.unpack("@ll", timeval(None)) == (0, 0)
    assert struct.unpack("@ll", timeval(1.5)) == (1, 500_000)
    assert struct.unpack("@ll", timeval(0.25)) == (0, 250_000)
    assert struct.unpack("@ll", timeval(1e-9)) == (0, 1)  # never zero, which is "for ever"
    assert struct.unpack("@ll", timeval(3.0)) == (3, 0)
    assert struct.unpack("@ll", timeval(2.0**40)) == (2**31, 0)
    assert struct.unpack("@ll", timeval(float(2**31))) == (2**31, 0)
    # Microseconds stay under a million (the kernel refuses more), however close to the next
    # second the fraction is.
    assert struct.unpack("@ll", timeval(2.9999999)) == (2, 999_999)
    assert struct.unpack("@ll", timeval(0.9999999)) == (0, 999_999)


def _caller_s_timeouts(seconds: float) -> list[tuple[int, int, bytes]]:
    timeval = struct.pack("@ll", int(seconds), int(seconds % 1 * 1_000_000))
    return [
        (socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval),
        (socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval),
    ]


def test_the_caller_s_socket_timeouts_hold_over_tls(
    tls_echo_server: Server, client_context: Any
) -> None:
    """TLS hands the socket to a non-blocking transport, which the kernel's SO_RCVTIMEO would
    not end: the transport takes the caller's value for the calls without a timeout."""
    stream = sync_backend.SyncBackend().connect_tcp(
        "127.0.0.1", tls_echo_server.port, timeout=5, socket_options=_caller_s_timeouts(0.2)
    )
    tls = stream.start_tls(client_context, server_hostname="localhost", timeout=5)
    try:
        with pytest.raises(ReadTimeout):
            tls.read(10)  # the echo server has nothing to say
        tls.write(b"abc")
        assert tls.read(10, timeout=5) == b"abc"
        with pytest.raises(ReadTimeout):
            tls.read(10, timeout=None)
    finally:
        tls.close()


def test_the_caller_s_socket_timeouts_hold_for_threads_sharing_a_socket(
    echo_server: Server, stall_server: Server
) -> None:
    """Sync HTTP/2 without TLS: the stream its reader and writer threads share."""
    stream = sync_backend.SyncBackend().connect_tcp(
        "127.0.0.1", echo_server.port, timeout=5, socket_options=_caller_s_timeouts(0.2)
    )
    shared = stream.shared_by_threads()
    try:
        with pytest.raises(ReadTimeout):
            shared.read(10)
        shared.write(b"abc")
        assert shared.read(10, timeout=5) == b"abc"
    finally:
        shared.close()
    stream = sync_backend.SyncBackend().connect_tcp(
        "127.0.0.1", stall_server.port, timeout=5, socket_options=_caller_s_timeouts(0.2)
    )
    shared = stream.shared_by_threads()
    try:
        with pytest.raises(WriteTimeout):
            shared.write(HUGE)  # the stall server reads nothing
    finally:
        shared.close()


def test_the_transport_takes_the_caller_s_timeouts_only(
    tls_echo_server: Server, client_context: Any
) -> None:
    """Not the pool's: those were set on the socket by calls that had their own."""
    stream = sync_backend.SyncBackend().connect_tcp("127.0.0.1", tls_echo_server.port, timeout=5)
    tls = stream.start_tls(client_context, server_hostname="localhost", timeout=5)
    transport = tls._transport
    try:
        assert (transport._read_untimed, transport._write_untimed) == (None, None)
        shared = sync_backend.SyncBackend().connect_tcp(
            "127.0.0.1", tls_echo_server.port, timeout=5, socket_options=_caller_s_timeouts(1.5)
        )
        transport2 = shared.shared_by_threads()
        assert (transport2._read_untimed, transport2._write_untimed) == (1.5, 1.5)
        transport2.close()
    finally:
        tls.close()


def test_sync_http2_without_tls_keeps_the_caller_s_socket_timeouts(stall_server: Server) -> None:
    """Through the pool, with no timeout of its own: a server that never answers."""
    import httpcore

    with httpcore.ConnectionPool(
        http1=False, http2=True, socket_options=_caller_s_timeouts(0.2)
    ) as pool:
        with pytest.raises(httpcore.ReadTimeout):
            pool.request("GET", f"http://127.0.0.1:{stall_server.port}/")
