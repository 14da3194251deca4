"""TLS run by an `ssl.SSLObject` over memory buffers, on top of any async stream.

Used by the asyncio backend (every TLS before Python 3.11, and TLS through an HTTPS proxy) and
by the trio backend (all TLS). Keeping TLS out of the transport means a write that is cancelled
halfway loses nothing: the plaintext is either still ours or already encrypted and handed to
the stream below, which keeps whatever it had not sent (see `resume_write`).
"""

from __future__ import annotations

import ssl
from typing import Any, Optional

from httpcore.base._backends import AsyncNetworkStream
from httpcore.base._exceptions import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
)
from httpcore.base._tls_records import PEER_ENDED, take_ready_records

__all__ = ["MemoryTLSStream"]


class MemoryTLSStream(AsyncNetworkStream):
    """TLS over memory BIOs, on top of another stream."""

    def __init__(
        self,
        inner: AsyncNetworkStream,
        ssl_object: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self._inner = inner
        self._ssl_object = ssl_object
        self._incoming = incoming
        self._outgoing = outgoing
        self._writing = False
        # Plaintext of a cancelled write that the SSL object had not taken yet.
        self._unsent = b""
        self._stash = b""  # plaintext an `is_readable` check took in, for the next read
        self._ended = False  # an `is_readable` check found the end (or a failure) waiting

    @classmethod
    async def handshake(
        cls,
        inner: AsyncNetworkStream,
        ssl_context: ssl.SSLContext,
        server_hostname: Optional[str],
        timeout: Optional[float],
    ) -> MemoryTLSStream:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        ssl_object = ssl_context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
        stream = cls(inner, ssl_object, incoming, outgoing)
        try:
            await stream._run(ssl_object.do_handshake, timeout)
        except (ReadTimeout, WriteTimeout) as exc:
            await inner.aclose()
            raise ConnectTimeout(exc) from exc
        except (ssl.SSLError, ReadError, WriteError) as exc:
            await inner.aclose()
            raise ConnectError(exc) from exc
        except BaseException:
            await inner.aclose()
            raise
        return stream

    @property
    def resumable_writes(self) -> bool:
        """Whether a cancelled write can be finished by `resume_write` (if the stream below can)."""
        return bool(getattr(self._inner, "resumable_writes", False))

    async def _flush(self, timeout: Optional[float]) -> None:
        # Loops: records produced while the stream below was busy go out in order, and
        # never from two tasks at once (a reader only flushes when no write is under way).
        while True:
            data = self._outgoing.read()
            if not data:
                return
            await self._inner.write(data, timeout)

    async def _receive(self, timeout: Optional[float]) -> None:
        data = await self._inner.read(65536, timeout)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    async def _run(
        self, operation: Any, timeout: Optional[float], *args: Any, reading: bool = False
    ) -> Any:
        while True:
            try:
                result = operation(*args)
            except ssl.SSLWantReadError:
                if not (reading and self._writing):
                    await self._flush(timeout)
                await self._receive(timeout)
                continue
            if not (reading and self._writing):
                await self._flush(timeout)
            return result

    async def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        if self._stash:
            data, self._stash = self._stash[:max_bytes], self._stash[max_bytes:]
            return data
        try:
            return await self._run(  # type: ignore[no-any-return]
                self._ssl_object.read, timeout, max_bytes, reading=True
            )
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            # A close without close_notify is an EOF like any other: whether the message it
            # cut short was complete is for the HTTP layer to decide.
            return b""
        except ssl.SSLError as exc:
            raise ReadError(exc) from exc

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        view = memoryview(buffer)
        self._writing = True
        try:
            while view:
                try:
                    written = self._ssl_object.write(view)
                except ssl.SSLWantReadError:
                    await self._flush(timeout)
                    await self._receive(timeout)
                    continue
                # Taken: from here on the ciphertext is what remains to be sent.
                view = view[written:]
            await self._flush(timeout)
        except ssl.SSLError as exc:
            raise WriteError(exc) from exc
        except BaseException:
            self._unsent = bytes(view)
            raise
        finally:
            self._writing = False

    async def resume_write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        """Finish a cancelled `write()`, then write `buffer`, without being cancelled.

        Only valid when `resumable_writes` is true.
        """
        data, self._unsent = self._unsent + buffer, b""
        self._writing = True
        try:
            if data:
                self._ssl_object.write(data)
            await self._inner.resume_write(self._outgoing.read(), timeout)  # type: ignore[attr-defined]
        except ssl.SSLError as exc:  # including a renegotiation it cannot wait for here
            raise WriteError(exc) from exc
        finally:
            self._writing = False

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> AsyncNetworkStream:
        return await MemoryTLSStream.handshake(self, ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._ssl_object
        if info == "is_readable":
            if self._stash or self._ended or self._ssl_object.pending() > 0:
                return True
            if not self._incoming.pending and not self._inner.get_extra_info("is_readable"):
                return False
            # Ciphertext is waiting: readable only if it holds plaintext or ends the stream,
            # not for a session ticket or key update (see `_tls_records`).
            read_nowait = getattr(self._inner, "read_nowait", None)
            if read_nowait is None or self._writing:
                return True
            try:
                found = take_ready_records(self._ssl_object, self._incoming, read_nowait)
            except BlockingIOError:  # undecided: as before, say what the socket says
                return True
            if found:
                self._stash = found
            elif found is None:
                self._ended = True
            return found != b""  # None: ended or failed, which a read hears first
        if info == PEER_ENDED:
            if self._ended:
                return True
            if self._stash or self._ssl_object.pending():
                return False  # plaintext comes first
            self.get_extra_info("is_readable")  # takes in the records waiting
            return self._ended or self._inner.get_extra_info(PEER_ENDED) is True
        return self._inner.get_extra_info(info)

    def read_nowait(self, max_bytes: int) -> Optional[bytes]:
        """What a read would return without waiting, or None when nothing is waiting; raises
        `BlockingIOError` when only a read can tell (internal: for the readability check of
        TLS run inside this TLS)."""
        if not self._stash and not self._ssl_object.pending():
            if not self.get_extra_info("is_readable"):
                return None
            if not self._stash and not self._ssl_object.pending():
                raise BlockingIOError  # ended, failed or busy writing
        if self._stash:
            data, self._stash = self._stash[:max_bytes], self._stash[max_bytes:]
            return data
        try:
            return self._ssl_object.read(max_bytes)
        except ssl.SSLError as exc:
            raise BlockingIOError from exc
