"""One place for the accept/close bookkeeping of the threaded test servers.

`RawServer`, `StallServer`, `ChaosProxy`, `TLSChaosProxy` and `TLSChaosServer` each serve every
accepted connection in a thread of its own, and their close() must leave no socket open and no
thread running whatever a test did: `ThreadedListener` does that part for all of them, so that
the order it takes (and any fix to it) is written once.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Callable, ContextManager, List, Optional, Sequence, Tuple

SocketOption = Tuple[int, int, int]  # level, option, value: socket.setsockopt()'s arguments
REUSE_ADDRESS: SocketOption = (socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as create_server()

POLL = 0.05  # the acceptor's accept() timeout: how soon it sees the stop Event
JOIN = 5.0  # how long close() waits for each thread


class ThreadedListener:
    """A listener on 127.0.0.1 (a free port) whose acceptor thread runs `serve(*admit(sock))` in
    a daemon thread per accepted connection.

    `admit` is the owner's own bookkeeping of a new connection (an index, a record, a counter):
    it runs under `lock` (the owner's, which its other methods take too) before the
    connection's thread starts, and returns `serve`'s arguments. `track()` adds a socket for
    close() to shut down besides the accepted ones (a TLS-wrapped one, a relay's target).
    Threads are named after `name` and the port if it is given (Python's names otherwise).
    """

    def __init__(
        self,
        serve: Callable[..., object],
        admit: Callable[[socket.socket], Sequence[object]],
        *,
        lock: Optional[ContextManager[Any]] = None,
        options: Sequence[SocketOption] = (),
        backlog: Optional[int] = None,
        name: Optional[str] = None,
    ) -> None:
        self.stopping = threading.Event()
        self._serve = serve
        self._admit = admit
        self._lock: ContextManager[Any] = lock if lock is not None else threading.Lock()
        self._open: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        for level, option, value in options:  # before listen(): accepted sockets inherit some
            self.sock.setsockopt(level, option, value)
        self.sock.bind(("127.0.0.1", 0))
        if backlog is None:
            self.sock.listen()
        else:
            self.sock.listen(backlog)
        self.sock.settimeout(POLL)
        self.port: int = self.sock.getsockname()[1]
        self._name = f"{name}-{self.port}" if name else None
        self._acceptor = threading.Thread(target=self._accept_loop, name=self._name, daemon=True)
        self._acceptor.start()

    def track(self, sock: socket.socket) -> None:
        """Shut `sock` down too on close(): a thread blocked on it then returns."""
        with self._lock:
            self._open.append(sock)

    def stop(self) -> None:
        """Accept no more connections; those accepted go on."""
        self.stopping.set()
        self._acceptor.join(JOIN)
        self.sock.close()

    def close(self) -> List[str]:
        """Stop, shut every open socket down and wait for the connection threads; returns the
        names of those still running."""
        self.stop()
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in list(self._threads):
            thread.join(JOIN)
        return [thread.name for thread in self._threads if thread.is_alive()]

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:  # pragma: no cover
                if self.stopping.is_set():
                    return
                raise
            with self._lock:
                args = self._admit(conn)
                self._open.append(conn)
            name = f"{self._name}-conn-{len(self._threads)}" if self._name else None
            thread = threading.Thread(target=self._serve, args=args, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()
