"""A keep-alive handler for the raw server that also sees how each connection ends.

``Responder(responses)`` is a callable ``raw_server`` handler. On every connection it answers
each request with the next of ``responses`` (the last one repeats), for as long as the client
sends requests, and counts the connections the client closed (EOF). It never closes a
connection itself, so a client that wrongly keeps a connection alive is not rescued by the
server hanging up.

- ``answer_after``: on the first ``answer_after`` connections, hold the first answer until
  all of them have a request in (a barrier, so that the requests are really concurrent).
- ``silent``: read requests, answer nothing (for read timeouts).

Attributes: ``peers`` (the client address of each connection, in accept order), ``requests``
(count), ``closed`` (connections the client closed); ``wait_closed(n)`` blocks until ``n``
connections were closed by the client (False after the timeout).
"""

from __future__ import annotations

import socket
import threading
from typing import Any, List, Optional, Sequence

from .raw import RawServer


class Responder:
    def __init__(
        self,
        responses: Sequence[bytes] = (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",),
        *,
        answer_after: int = 0,
        silent: bool = False,
    ) -> None:
        self.responses = list(responses)
        self.silent = silent
        self.peers: List[Any] = []
        self.requests = 0
        self.closed = 0
        self._condition = threading.Condition()
        self._barrier_parties = answer_after
        self._barrier: Optional[threading.Barrier] = (
            threading.Barrier(answer_after, timeout=10) if answer_after else None
        )

    def __call__(self, conn: socket.socket, server: RawServer) -> None:
        with self._condition:
            self.peers.append(conn.getpeername())
            barrier = self._barrier if len(self.peers) <= self._barrier_parties else None
        index = 0
        while True:
            request = server.read_request(conn)
            if request is None:
                with self._condition:
                    self.closed += 1
                    self._condition.notify_all()
                return
            with self._condition:
                self.requests += 1
            if self.silent:
                continue
            if index == 0 and barrier is not None:
                barrier.wait()
            conn.sendall(self.responses[min(index, len(self.responses) - 1)])
            index += 1

    def wait_closed(self, count: int, timeout: float = 5.0) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: self.closed >= count, timeout)
