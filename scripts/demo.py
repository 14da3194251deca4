"""A tour of httpcore against a server this script starts on 127.0.0.1 (no internet needed).

It starts hypercorn (HTTP/1.1 and HTTP/2, plain and TLS with a throwaway CA from trustme), then
uses the sync pool, the asyncio and trio pools, HTTP/2 multiplexing and streaming, printing what
each did and how fast.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import tempfile
import threading
import time
from typing import Any, Awaitable, Callable, Dict

import trustme

import httpcore

Scope = Dict[str, Any]
Receive = Callable[[], Awaitable[Dict[str, Any]]]
Send = Callable[[Dict[str, Any]], Awaitable[None]]

BODY = b"x" * 2048


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """`/` answers 2 kB; `/big/<n>` streams n MiB; `/echo` echoes the request body."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/echo":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    if path.startswith("/big/"):
        chunk = b"y" * 65536
        count = int(path.rsplit("/", 1)[1]) * 16
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(count):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(ca: trustme.CA) -> tuple[str, str]:
    """Start hypercorn in a thread; return the http:// and https:// base URLs."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    cert = ca.issue_cert("127.0.0.1", "localhost")
    tmp = tempfile.mkdtemp(prefix="httpcore-demo-")
    certfile, keyfile = f"{tmp}/cert.pem", f"{tmp}/key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)

    plain_port, tls_port = free_port(), free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{plain_port}"]
    config.insecure_bind = []
    tls_config = Config()
    tls_config.bind = [f"127.0.0.1:{tls_port}"]
    tls_config.certfile, tls_config.keyfile = certfile, keyfile
    for c in (config, tls_config):
        c.loglevel = "WARNING"
        c.accesslog = None

    def run() -> None:
        async def both() -> None:
            forever = asyncio.Event()  # a shutdown trigger keeps hypercorn off signal handlers
            await asyncio.gather(
                serve(app, config, shutdown_trigger=forever.wait),  # type: ignore[arg-type]
                serve(app, tls_config, shutdown_trigger=forever.wait),  # type: ignore[arg-type]
            )

        asyncio.run(both())

    threading.Thread(target=run, daemon=True).start()
    for port in (plain_port, tls_port):
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
    return f"http://127.0.0.1:{plain_port}", f"https://127.0.0.1:{tls_port}"


def rate(count: int, started: float) -> str:
    return f"{count / (time.perf_counter() - started):8.0f} req/s"


def main() -> None:
    ca = trustme.CA()
    http_url, https_url = start_server(ca)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    print(f"httpcore {httpcore.__version__}; server on {http_url} and {https_url}\n")

    with httpcore.ConnectionPool(ssl_context=context) as pool:
        response = pool.request("GET", https_url + "/")
        version = response.extensions["http_version"].decode()
        print(
            f"sync     GET /        -> {response.status} {version}, {len(response.content)} bytes"
        )
        started = time.perf_counter()
        for _ in range(500):
            pool.request("GET", http_url + "/")
        print(f"sync     500 GETs on one keep-alive connection: {rate(500, started)}")
        response = pool.request("POST", http_url + "/echo", content=iter([b"chunked ", b"upload"]))
        print(f"sync     POST /echo (chunked upload) -> {response.content!r}")
        with pool.stream("GET", http_url + "/big/16") as response:
            started = time.perf_counter()
            size = sum(len(chunk) for chunk in response.iter_stream())
        seconds = time.perf_counter() - started
        print(f"sync     streamed {size >> 20} MiB at {size / seconds / 2**20:.0f} MiB/s")
        print(f"         {pool}\n")

    async def tasks(label: str, gather: Callable[..., Awaitable[None]]) -> None:
        async with httpcore.AsyncConnectionPool(max_connections=10) as pool:

            async def worker() -> None:
                for _ in range(25):
                    response = await pool.request("GET", http_url + "/")
                    assert response.status == 200

            started = time.perf_counter()
            await gather(worker, 20)
            print(f"{label:8} 20 tasks x 25 GETs, 10 connections: {rate(500, started)}")
            print(f"         {pool}")

    async def asyncio_gather(worker: Callable[[], Awaitable[None]], n: int) -> None:
        await asyncio.gather(*(worker() for _ in range(n)))

    asyncio.run(tasks("asyncio", asyncio_gather))

    try:
        import trio

        async def trio_gather(worker: Callable[[], Awaitable[None]], n: int) -> None:
            async with trio.open_nursery() as nursery:
                for _ in range(n):
                    nursery.start_soon(worker)

        trio.run(tasks, "trio", trio_gather)
    except ImportError:
        print("trio     (not installed: pip install 'httpcore[trio]')")

    async def http2() -> None:
        async with httpcore.AsyncConnectionPool(ssl_context=context, http2=True) as pool:
            started = time.perf_counter()
            responses = await asyncio.gather(
                *(pool.request("GET", https_url + "/") for _ in range(100))
            )
            versions = {r.extensions["http_version"].decode() for r in responses}
            print(
                f"\nhttp2    100 concurrent GETs: {rate(100, started)}, over {versions}, "
                f"{len(pool.connections)} connection(s)"
            )
            print(f"         {pool.connections}")

    try:
        asyncio.run(http2())
    except Exception as exc:  # the HTTP/2 capability may be missing or still in progress
        print(f"\nhttp2    not available: {exc!r}")


if __name__ == "__main__":
    main()
