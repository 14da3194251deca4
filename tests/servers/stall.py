"""A TCP server that accepts connections and reads nothing until told to (`stall_server` fixture).

For write timeouts: its accepted sockets have a small receive buffer, so a client's upload soon
blocks in the client's socket write. ``drain()`` makes it read every connection to EOF (so a
client that closed its socket is seen doing so: ``wait_closed(n)``); it drains by itself after
``hold`` seconds (so that a client ignoring its write timeout fails soon rather than hangs).

Attributes: ``.host``, ``.port``, ``.url``, ``.connections`` (accepted), ``.received`` (bytes
read per connection, once drained).
"""

from __future__ import annotations

import socket
import threading
from typing import List, Tuple

from .threaded import ThreadedListener

RCVBUF = 4096


class StallServer:
    def __init__(self, hold: float = 6.0) -> None:
        self.hold = hold
        self.host = "127.0.0.1"
        self.connections = 0
        self.received: List[int] = []
        self._closed_count = 0
        self._condition = threading.Condition()
        self._drain = threading.Event()
        self._listener = ThreadedListener(
            self._serve,
            self._admit,
            lock=self._condition,
            # Set before listen(): accepted sockets inherit it (and the TCP window it allows).
            options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)],
            backlog=16,
        )
        self.port: int = self._listener.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def drain(self) -> None:
        """From now on, read every connection to EOF."""
        self._drain.set()

    def wait_closed(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until ``count`` connections were drained to EOF (the client closed them)."""
        with self._condition:
            return self._condition.wait_for(lambda: self._closed_count >= count, timeout)

    def close(self) -> None:
        self._drain.set()
        self._listener.close()

    def _admit(self, conn: socket.socket) -> Tuple[socket.socket, int]:
        self.connections += 1
        index = len(self.received)
        self.received.append(0)
        return conn, index

    def _serve(self, conn: socket.socket, index: int) -> None:
        try:
            self._drain.wait(self.hold)
            conn.settimeout(10)
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                with self._condition:
                    self.received[index] += len(data)
            with self._condition:
                self._closed_count += 1
                self._condition.notify_all()
        except OSError:
            pass
        finally:
            conn.close()
