"""Whether an idle TLS connection has anything for a reader, for the streams that run TLS in
memory (`SyncTLSStream`, `MemoryTLSStream`).

A socket that polls readable under TLS may hold records that carry no application data: a TLS
1.3 session ticket or key update that the server sent after the last response. A pool that took
that for "the server closed or spoke out of turn" would discard a healthy connection. So when
the socket polls readable, the records waiting are taken in without blocking; only plaintext, an
end of stream or an error makes the stream readable. Plaintext found that way is handed back to
be kept for the next read.

The same check answers `PEER_ENDED`, an extra-info key of these streams (and of the native
asyncio one) for HTTP/2: whether the peer has ended the stream, as far as can be known without
waiting. HTTP/2 cannot use readability for that (a PING is plaintext too), and a TLS peer may
end with close_notify and no FIN, which the TCP state does not show.
"""

from __future__ import annotations

import ssl
from typing import Any, Callable, Optional

__all__ = ["PEER_ENDED", "take_ready_records"]

#: `get_extra_info(PEER_ENDED)`: True once the peer is known to have ended the stream
#: (internal; streams that cannot tell answer None).
PEER_ENDED = "httpcore.peer_ended"

# Bounds the work of one check on a peer that keeps sending: more rounds than this and the
# stream is reported readable (the pool then closes it, as it would have before).
_ROUNDS = 8
_READ_SIZE = 65536


def take_ready_records(
    ssl_object: Any,
    incoming: ssl.MemoryBIO,
    read_ready: Callable[[int], Optional[bytes]],
) -> Optional[bytes]:
    """Feed `incoming` what `read_ready` has now (it returns None when nothing is waiting,
    b"" at EOF, or raises `BlockingIOError` when it cannot tell) and let `ssl_object` process
    it.

    Returns b"" when nothing for a reader came (the stream is not readable), the plaintext that
    came (non-empty: it belongs to the next read), or None when the stream ended or failed (a
    read returns at once, with b"" or an error, once the SSL object is asked). Raises
    `BlockingIOError` when it cannot tell without waiting: `read_ready` could not, or the peer
    sent more than one check takes in.
    """
    for _ in range(_ROUNDS):
        try:
            data: bytes = ssl_object.read(_READ_SIZE)
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLError, OSError):  # close_notify, EOF, a corrupt record, an alert
            return None
        else:
            return data or None
        if incoming.eof:
            return None
        chunk = read_ready(_READ_SIZE)
        if chunk is None:
            return b""
        if chunk:
            incoming.write(chunk)
        else:
            incoming.write_eof()
    raise BlockingIOError
