"""TLS for the blocking backend: an `ssl.SSLObject` over two `ssl.MemoryBIO`s, over a transport.

Why not `ssl.SSLSocket`: sync HTTP/2 reads a connection in one thread while others write it,
and OpenSSL forbids `SSL_read` and `SSL_write` on one SSL object at once (TLS 1.3 session
tickets read during a write corrupted the connection now and then). Here the SSL object only
ever runs in memory, under `_lock`; the transport is read and written outside that lock:

- One thread at a time reads the transport (`_receiving`) and feeds the incoming BIO. A thread
  that needs ciphertext while another is reading (a writer whose SSL write must read first, a
  second reader) waits for that feed (`_fed`) rather than reading too, within its own timeout.
- One thread at a time sends (`_sending`) and drains the outgoing BIO until it is empty, so
  records leave in the order the SSL object made them. A writer waits for its turn (`_sent`):
  `write()` returns once its records are sent. A reader leaves its records (a TLS alert or key
  update) to the thread sending, so a reader never waits on a blocked writer.
- The events are created only when a thread waits, and set under the lock by the thread that
  clears the flag: no wake-up is lost.
- A failed send leaves part of a record on the wire and the rest lost: later writes raise
  `WriteError` (`_broken`) rather than send what the peer could only take for garbage.

The transport is `SocketTransport` (a non-blocking socket, each call waiting with `poll()` for
its own timeout: `settimeout()` is one setting per socket, which a read and a write of two
threads would race on) or, for TLS through an HTTPS proxy, the outer `SyncTLSStream`
(`TLSinTLSStream`). The hot calls go to the C object under `SSLObject` (`_sslobj`) directly,
saving a Python frame per call.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
import threading
import time
from typing import Any, Optional

from ._backends import NetworkStream
from ._exceptions import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
)
from ._sync_backend import (
    _socket_info,
    _timed_out,
    is_socket_readable,
    tcp_readable,
    tcp_state_check,
)
from ._tls_records import PEER_ENDED, take_ready_records

__all__ = ["SocketTransport", "SyncTLSStream", "TLSinTLSStream"]

# How much ciphertext is read from the transport at a time.
_READ_SIZE = 65536
# How much plaintext a write encrypts before sending it.
_WRITE_CHUNK = 262144


def _remaining(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    return max(deadline - time.monotonic(), 0.0)


def _closed() -> OSError:
    return OSError(errno.EBADF, os.strerror(errno.EBADF))


class _NeverWait:
    """Stands in for the poll objects of a closed transport: the socket call that follows
    raises the error of a closed socket (a closed descriptor's number may be reused)."""

    @staticmethod
    def poll(timeout: Optional[float] = None) -> bool:
        return True


if hasattr(select, "poll"):

    def _poller(sock: socket.socket, events: int) -> Any:
        poller = select.poll()
        poller.register(sock, events)
        return poller

    _POLLIN, _POLLOUT = select.POLLIN, select.POLLOUT

else:  # pragma: no cover  (Windows)

    class _Select:
        def __init__(self, sock: socket.socket, events: int) -> None:
            self._sock, self._write = sock, events == _POLLOUT

        def poll(self, timeout: Optional[float] = None) -> bool:
            seconds = None if timeout is None else timeout / 1000.0
            if self._write:
                _, ready, failed = select.select([], [self._sock], [self._sock], seconds)
            else:
                ready, _, failed = select.select([self._sock], [], [self._sock], seconds)
            return bool(ready or failed)

    _poller = _Select
    _POLLIN, _POLLOUT = 1, 4


class SocketTransport(NetworkStream):
    """A connected socket in non-blocking mode: each read and write waits with `poll()` for
    its own timeout, so a read and a write of two threads never race on the socket's one
    `settimeout()` setting. The transport under `SyncTLSStream`."""

    __slots__ = (
        "_read_untimed",
        "_readable",
        "_sock",
        "_tcp_state_check",
        "_writable",
        "_write_untimed",
    )

    def __init__(
        self,
        sock: socket.socket,
        read_untimed: Optional[float] = None,
        write_untimed: Optional[float] = None,
    ) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._tcp_state_check = tcp_state_check(sock)
        # The timeouts of calls without their own: the caller's SO_RCVTIMEO and SO_SNDTIMEO
        # from `socket_options`, which a non-blocking socket would otherwise ignore.
        self._read_untimed = read_untimed
        self._write_untimed = write_untimed
        # One poll object per direction: a poll object must not be polled by two threads.
        self._readable = _poller(sock, _POLLIN)
        self._writable = _poller(sock, _POLLOUT)

    def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        if timeout is None:
            timeout = self._read_untimed
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = None if timeout is None else max(timeout, 0.0) * 1000.0
        while True:
            try:
                if self._readable.poll(wait):
                    return self._sock.recv(max_bytes)
            except BlockingIOError:
                pass  # readable, then not (another reader?): wait again
            except OSError as exc:
                raise ReadError(exc) from exc
            if deadline is not None:
                wait = (deadline - time.monotonic()) * 1000.0
                if wait <= 0:
                    timed_out = _timed_out()
                    raise ReadTimeout(timed_out) from timed_out

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        if not buffer:
            return
        try:
            sent = self._sock.send(buffer)  # what fits in the socket's buffer: usually all
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise WriteError(exc) from exc
        if sent < len(buffer):
            self._write_rest(memoryview(buffer)[sent:], timeout)

    def _write_rest(self, view: memoryview, timeout: Optional[float]) -> None:
        if timeout is None:
            timeout = self._write_untimed
        deadline = None if timeout is None else time.monotonic() + timeout
        while view:
            wait = None if deadline is None else max(deadline - time.monotonic(), 0.0) * 1000.0
            try:
                if self._writable.poll(wait):
                    view = view[self._sock.send(view) :]
                    continue
            except BlockingIOError:
                pass  # writable, then not: wait again
            except OSError as exc:
                raise WriteError(exc) from exc
            if deadline is not None and time.monotonic() >= deadline:
                timed_out = _timed_out()
                raise WriteTimeout(timed_out) from timed_out

    def close(self) -> None:
        self._readable = self._writable = _NeverWait
        self._sock.close()

    def shutdown(self) -> None:
        """End both directions without closing: a read or write blocked in another thread
        returns at once, and the descriptor stays this transport's until `close()`."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected any more, or closed

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> NetworkStream:
        return SyncTLSStream.handshake(self, ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            if self._sock.fileno() < 0:
                return True
            if self._tcp_state_check:
                return tcp_readable(self._sock)
            try:
                return bool(self._readable.poll(0))
            except RuntimeError:  # a reader is polling it: ask a poll object of our own
                return is_socket_readable(self._sock)
        return _socket_info(self._sock, info)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fd={self._sock.fileno()}>"


class SyncTLSStream(NetworkStream):
    """TLS over a transport, safe for a reader thread and a writer thread at once.

    `handshake()` makes one (`start_tls` of the sync streams calls it); see the module's
    docstring for the locking.
    """

    __slots__ = (
        "_at_eof",
        "_broken",
        "_closed",
        "_ended",
        "_fed",
        "_incoming",
        "_lock",
        "_outgoing",
        "_receiving",
        "_sending",
        "_sent",
        "_ssl",
        "_ssl_object",
        "_stash",
        "_transport",
    )

    def __init__(
        self,
        transport: NetworkStream,
        ssl_object: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self._transport = transport
        self._ssl_object = ssl_object
        # The C object under `SSLObject`, whose methods are one Python frame each.
        self._ssl: Any = getattr(ssl_object, "_sslobj", ssl_object)
        self._incoming = incoming
        self._outgoing = outgoing
        self._lock = threading.Lock()
        self._closed = False
        self._at_eof = False  # the peer ended the stream (close_notify or EOF)
        self._ended = False  # an `is_readable` check found the end (or a failure) waiting
        self._broken: Optional[BaseException] = None  # why a write of ciphertext failed
        self._receiving = False  # a thread is reading the transport (without the lock)
        self._sending = False  # a thread is writing the transport (without the lock)
        self._fed: Optional[threading.Event] = None  # set when `_receiving` goes False
        self._sent: Optional[threading.Event] = None  # set when `_sending` goes False
        self._stash = b""  # plaintext an `is_readable` check took in, for the next read

    @classmethod
    def handshake(
        cls,
        transport: NetworkStream,
        ssl_context: ssl.SSLContext,
        server_hostname: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> SyncTLSStream:
        """Run the TLS handshake over `transport`; on failure close it and raise
        `ConnectTimeout` (out of time) or `ConnectError`."""
        try:
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            ssl_object = ssl_context.wrap_bio(
                incoming, outgoing, server_side=False, server_hostname=server_hostname
            )
            stream = cls(transport, ssl_object, incoming, outgoing)
            stream._handshake(None if timeout is None else time.monotonic() + timeout)
        except (ReadTimeout, WriteTimeout) as exc:
            transport.close()
            raise ConnectTimeout(exc) from exc
        except (OSError, ReadError, WriteError) as exc:  # ssl.SSLError is an OSError
            transport.close()
            raise ConnectError(exc) from exc
        except BaseException:
            transport.close()
            raise
        return stream

    def _handshake(self, deadline: Optional[float]) -> None:
        with self._lock:
            while True:
                try:
                    self._ssl.do_handshake()
                except ssl.SSLWantReadError:
                    self._flush_locked(deadline, True)
                    self._receive_locked(deadline)
                    continue
                except ssl.SSLError:
                    try:  # let the peer see our alert, if any
                        self._flush_locked(deadline, True)
                    except (OSError, ReadError, WriteError, ReadTimeout, WriteTimeout):
                        pass
                    raise
                self._flush_locked(deadline, True)
                return

    # -- the two roles (called with the lock held; they release it around transport I/O) --

    def _receive_locked(self, deadline: Optional[float]) -> None:
        """Bring more ciphertext into the incoming BIO (or its EOF), or, while another thread
        reads the transport, wait until it has (that may be what the SSL object needs)."""
        lock = self._lock
        if self._receiving:
            event = self._fed
            if event is None:
                event = self._fed = threading.Event()
            lock.release()
            try:
                woken = event.wait(_remaining(deadline))
            finally:
                lock.acquire()
            if not woken:
                exc = _timed_out()
                raise ReadTimeout(exc) from exc
            return
        self._receiving = True
        lock.release()
        try:
            data = self._transport.read(
                _READ_SIZE, None if deadline is None else _remaining(deadline)
            )
        finally:
            lock.acquire()
            self._receiving = False
            if self._fed is not None:
                self._fed.set()
                self._fed = None
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    def _flush_locked(self, deadline: Optional[float], wait: bool) -> None:
        """Send the outgoing BIO's ciphertext. While another thread sends: a writer (`wait`)
        waits its turn, by when its records are usually sent; a reader leaves them to it."""
        lock = self._lock
        while self._sending:
            if not wait:
                return
            event = self._sent
            if event is None:
                event = self._sent = threading.Event()
            lock.release()
            try:
                woken = event.wait(_remaining(deadline))
            finally:
                lock.acquire()
            if not woken:
                exc = _timed_out()
                raise WriteTimeout(exc) from exc
        outgoing = self._outgoing
        if not outgoing.pending:
            return
        if self._broken is not None:
            # Part of a record went out and the rest is lost: what follows would be garbage.
            raise WriteError(self._broken)
        self._sending = True
        try:
            while outgoing.pending:
                data = outgoing.read()
                lock.release()
                try:
                    self._transport.write(data, None if deadline is None else _remaining(deadline))
                except BaseException as exc:
                    self._broken = exc
                    raise
                finally:
                    lock.acquire()
        finally:
            self._sending = False
            if self._sent is not None:
                self._sent.set()
                self._sent = None

    # -- NetworkStream ---------------------------------------------------------------------

    def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        incoming, sslobj = self._incoming, self._ssl
        try:
            with self._lock:
                if self._closed:
                    raise _closed()
                if self._stash:
                    kept, self._stash = self._stash[:max_bytes], self._stash[max_bytes:]
                    return kept
                while True:
                    # Skips the SSLWantReadError of a read that is bound to need ciphertext.
                    if incoming.pending or incoming.eof or sslobj.pending():
                        try:
                            data: bytes = sslobj.read(max_bytes)
                        except ssl.SSLWantReadError:
                            if incoming.eof:  # nothing more will come to complete a record
                                self._at_eof = True
                                return b""
                        else:
                            if self._outgoing.pending:
                                self._flush_locked(deadline, False)
                            if not data:
                                self._at_eof = True
                            return data
                    if self._at_eof:  # close_notify came: nothing more will
                        return b""
                    if self._outgoing.pending:  # a key update, say: the peer may wait for it
                        self._flush_locked(deadline, False)
                    self._receive_locked(deadline)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            # The end of the stream, with or without close_notify, as `ssl.SSLSocket` has it
            # (whether the message it cut short was complete is for the HTTP layer to say).
            self._at_eof = True
            return b""
        except WriteTimeout as exc:
            raise ReadTimeout(exc) from exc
        except WriteError as exc:
            raise ReadError(exc) from exc
        except OSError as exc:
            if getattr(exc, "reason", None) == "UNEXPECTED_EOF_WHILE_READING":
                self._at_eof = True
                return b""
            raise ReadError(exc) from exc

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        if not buffer:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        sslobj = self._ssl
        data: Any = buffer
        rest: Optional[memoryview] = None
        if len(buffer) > _WRITE_CHUNK:
            # A slice at a time: the ciphertext held in memory stays small, and a timeout
            # fires while sending rather than after encrypting it all.
            rest = memoryview(buffer)
            data, rest = rest[:_WRITE_CHUNK], rest[_WRITE_CHUNK:]
        try:
            with self._lock:
                if self._closed:
                    raise _closed()
                while True:
                    # All or nothing: `ssl` enables no partial writes; a memory BIO takes any.
                    try:
                        sslobj.write(data)
                    except ssl.SSLWantReadError:  # a renegotiation: the peer must speak first
                        self._flush_locked(deadline, True)
                        self._receive_locked(deadline)
                        continue
                    self._flush_locked(deadline, True)
                    if not rest:
                        return
                    data, rest = rest[:_WRITE_CHUNK], rest[_WRITE_CHUNK:]
        except ReadTimeout as exc:
            raise WriteTimeout(exc) from exc
        except ReadError as exc:
            raise WriteError(exc) from exc
        except OSError as exc:
            raise WriteError(exc) from exc

    def close(self) -> None:
        self._closed = True
        self._transport.close()

    def shutdown(self) -> None:
        """End the transport both ways without closing it (see `SocketTransport.shutdown`)."""
        shutdown = getattr(self._transport, "shutdown", None)
        if shutdown is not None:
            shutdown()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> NetworkStream:
        # HTTPS through an HTTPS proxy: the inner session's records travel in ours.
        return TLSinTLSStream.handshake(self, ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._ssl_object
        if info == "is_readable":
            if self._closed or self._at_eof or self._ended or self._stash or self._ssl.pending():
                return True  # a read returns at once
            if not self._incoming.pending and not self._transport.get_extra_info("is_readable"):
                return False
            return self._readable_records()
        if info == PEER_ENDED:
            if self._at_eof or self._ended:
                return True
            if self._stash or self._ssl.pending() > 0:
                return False  # plaintext comes first
            if self._incoming.pending or self._transport.get_extra_info("is_readable"):
                self._readable_records()
                if self._ended:
                    return True
            return self._transport.get_extra_info(PEER_ENDED) is True  # TLS in TLS: the tunnel
        return self._transport.get_extra_info(info)

    def _readable_records(self) -> bool:
        # Ciphertext is waiting: readable only if it holds plaintext or ends the stream, not
        # for a session ticket or key update (see `_tls_records`).
        lock = self._lock
        if not lock.acquire(blocking=False):
            return True  # in use by another thread: as before, say what the socket says
        try:
            if self._receiving or self._sending or self._broken is not None:
                return True
            try:
                found = take_ready_records(self._ssl, self._incoming, self._transport_ready)
            except BlockingIOError:  # undecided: as before, say what the socket says
                return True
            if found is None:
                # It ended or failed: a read must hear that from the SSL object, where
                # `read()` would otherwise skip it and wait for the socket.
                self._incoming.write_eof()
                self._ended = True
                return True
            if found:
                self._stash = found
            return found != b""
        finally:
            lock.release()

    def _transport_ready(self, max_bytes: int) -> Optional[bytes]:
        transport = self._transport
        if not transport.get_extra_info("is_readable"):
            return None
        try:
            return transport.read(max_bytes, 0.0)
        except ReadTimeout:  # readable by its own account, but nothing whole yet (TLS in TLS)
            return None
        except ReadError:
            return b""

    def __repr__(self) -> str:
        sock = self._transport.get_extra_info("socket")
        return f"<{type(self).__name__} fd={-1 if sock is None else sock.fileno()}>"


class TLSinTLSStream(SyncTLSStream):
    """A TLS session carried inside another (HTTPS through an HTTPS proxy): the transport is
    the outer `SyncTLSStream`, as safe for a reader and a writer thread as this one."""

    __slots__ = ()
