"""HTTP/3 vs HTTP/2 of this project: 100 concurrent GETs multiplexed on one connection.

The server is hypercorn (TLS + QUIC on one port, `tests/servers/app.py`) in a subprocess of its
own, so that client and server do not share a GIL. Run it in the development environment
(`hatch run hatch-test.py3.11:python benchmarks/http3.py`); options: `--duration S`,
`--rounds N`, `--concurrency N`. It prints requests per second, best of the rounds. Servers and
client in Python on one machine: the numbers compare the two protocols of this client under
the same server, not absolute speed. (niquests, the issue's peer, is not part of this run.)
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import trustme

import httpcore

ROOT = Path(__file__).resolve().parent.parent
ERRORS: List[BaseException] = []  # failed requests (e.g. a GOAWAY with an error), all runs


def free_port() -> int:
    """A port number free for both TCP and UDP on 127.0.0.1."""
    while True:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(port)


def start_server(certfile: str, port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "hypercorn",
        "--certfile",
        certfile,
        "--keyfile",
        certfile,
        "--bind",
        f"127.0.0.1:{port}",
        "--quic-bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "error",
        "servers.app:app",
    ]
    process = subprocess.Popen(command, cwd=ROOT / "tests")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("hypercorn did not start")


def pool_kwargs(protocol: str, context: ssl.SSLContext) -> Dict[str, Any]:
    if protocol == "h3":
        return {"ssl_context": context, "http1": False, "http2": False, "http3": True}
    return {"ssl_context": context, "http1": False, "http2": True}


async def run_asyncio(url: str, kwargs: Dict[str, Any], concurrency: int, duration: float) -> float:
    async with httpcore.AsyncConnectionPool(**kwargs) as pool:
        await pool.request("GET", url)  # connect
        done = 0
        deadline = time.monotonic() + duration

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                try:
                    response = await pool.request("GET", url)
                except httpcore.ProtocolError as exc:
                    ERRORS.append(exc)  # counted, not in the rate
                    continue
                assert response.status == 200
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.monotonic() - started)


def run_threads(url: str, kwargs: Dict[str, Any], concurrency: int, duration: float) -> float:
    with httpcore.ConnectionPool(**kwargs) as pool:
        pool.request("GET", url)
        done = [0] * concurrency
        deadline = time.monotonic() + duration
        barrier = threading.Barrier(concurrency + 1)

        def worker(index: int) -> None:
            barrier.wait()
            while time.monotonic() < deadline:
                try:
                    response = pool.request("GET", url)
                except httpcore.ProtocolError as exc:
                    ERRORS.append(exc)
                    continue
                assert response.status == 200
                done[index] += 1

        with concurrent.futures.ThreadPoolExecutor(concurrency) as executor:
            futures = [executor.submit(worker, i) for i in range(concurrency)]
            barrier.wait()
            started = time.monotonic()
            for future in futures:
                future.result()
        return sum(done) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()

    ca = trustme.CA()
    with tempfile.TemporaryDirectory() as tmp:
        certfile = os.path.join(tmp, "server.pem")
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(certfile)
        context = ssl.create_default_context()
        ca.configure_trust(context)
        port = free_port()
        server = start_server(certfile, port)
        url = f"https://127.0.0.1:{port}/"
        runs: Dict[str, Callable[[Dict[str, Any]], float]] = {
            "asyncio": lambda kw: asyncio.run(
                run_asyncio(url, kw, args.concurrency, args.duration)
            ),
            "threads": lambda kw: run_threads(url, kw, args.concurrency, args.duration),
        }
        try:
            results: Dict[str, List[float]] = {}
            for _ in range(args.rounds):
                for flavour, run in runs.items():
                    for protocol in ("h3", "h2"):
                        del ERRORS[:]
                        rate = run(pool_kwargs(protocol, context))
                        results.setdefault(f"{flavour} {protocol}", []).append(rate)
                        if ERRORS:
                            print(f"{flavour} {protocol}: {len(ERRORS)} failed: {ERRORS[0]!r}")
        finally:
            server.terminate()
            server.wait(10)
    title = f"{args.concurrency} concurrent GET / on one connection, hypercorn"
    print(f"{title}, best of {args.rounds}")
    for flavour in runs:
        h3, h2 = max(results[f"{flavour} h3"]), max(results[f"{flavour} h2"])
        print(f"{flavour:8} HTTP/3 {h3:8.0f} req/s   HTTP/2 {h2:8.0f} req/s   ratio {h3 / h2:.2f}")


if __name__ == "__main__":
    main()
