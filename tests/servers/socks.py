"""SOCKS proxies: pproxy in one subprocess with one listener per proxy.

Listeners bind port 0; pproxy prints ``Serving on ipv4 127.0.0.1:PORT by socks5`` for each (in
the order given), which is how the ports are read back.

pproxy is started with ``--auth=-1``: by default it remembers an authenticated client IP for 30
days and then lets that IP in *without* credentials, which would make every auth test pass after
the first one. The event loop is created explicitly before ``pproxy.server.main()`` runs, since
that calls ``asyncio.get_event_loop()`` outside a running loop (deprecated in 3.12+).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from typing import IO, List, Optional, Sequence, Tuple

LAUNCHER = (
    "import asyncio, sys; asyncio.set_event_loop(asyncio.new_event_loop()); "
    "sys.argv[0] = 'pproxy'; import pproxy.server; pproxy.server.main()"
)
SERVING = re.compile(r"Serving on \S+ 127\.0\.0\.1:(\d+) by (\S+)")


class SocksProxy:
    def __init__(self, scheme: str, port: int, auth: Optional[Tuple[str, str]]) -> None:
        self.scheme = scheme
        self.host = "127.0.0.1"
        self.port = port
        self.auth = auth

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"<SocksProxy {self.url} auth={self.auth}>"


class PproxyProcess:
    """One pproxy process; ``specs`` are (scheme, auth) pairs, one listener each.

    e.g. ``[("socks5", None), ("socks5", ("user", "pass"))]``; ``.proxies`` follows that order.
    """

    def __init__(
        self, specs: Sequence[Tuple[str, Optional[Tuple[str, str]]]], timeout: float = 15.0
    ) -> None:
        args = [sys.executable, "-u", "-c", LAUNCHER, "--auth=-1"]
        for scheme, auth in specs:
            fragment = f"#{auth[0]}:{auth[1]}" if auth else ""
            args += ["-l", f"{scheme}://127.0.0.1:0{fragment}"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore"}
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.output: List[str] = []
        self.proxies: List[SocksProxy] = []
        assert self.process.stdout is not None
        ports = self._read_ports(self.process.stdout, len(specs), timeout)
        for (scheme, auth), port in zip(specs, ports):
            self.proxies.append(SocksProxy(scheme, port, auth))
        # Keep draining the output so pproxy never blocks on a full pipe.
        self._drain = threading.Thread(
            target=self._drain_output, args=(self.process.stdout,), daemon=True
        )
        self._drain.start()
        for proxy in self.proxies:
            _wait_connectable(proxy.host, proxy.port, timeout)

    def _read_ports(self, stream: IO[bytes], count: int, timeout: float) -> List[int]:
        ports: List[int] = []
        deadline = time.monotonic() + timeout

        def reader() -> None:
            for raw in iter(stream.readline, b""):
                line = raw.decode(errors="replace").rstrip()
                self.output.append(line)
                match = SERVING.search(line)
                if match:
                    ports.append(int(match.group(1)))
                if len(ports) == count or "failed" in line:
                    return

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        thread.join(max(0.0, deadline - time.monotonic()))
        if len(ports) != count:
            self.close()
            raise RuntimeError(f"pproxy did not start: {self.output!r}")
        return ports

    def _drain_output(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.output.append(raw.decode(errors="replace").rstrip())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5.0)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.process.kill()
                self.process.wait(5.0)
        drain = getattr(self, "_drain", None)
        if drain is not None:
            drain.join(5.0)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _wait_connectable(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
