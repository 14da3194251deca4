"""Reproduce (or rule out) TLS corruption under sync HTTP/2 with several threads.

Starts the tests' hypercorn TLS server (HTTP/2 by ALPN, TLS 1.3), then runs ``--runs`` rounds;
each round opens a fresh ``ConnectionPool(http2=True)`` and has ``--threads`` threads send
``--requests`` requests each through it (``--body`` bytes up and down per request when set,
so that reads and writes overlap under flow control). Prints the failures and their count.

    hatch run python scripts/sync_tls_threads.py --runs 50
    hatch run python scripts/sync_tls_threads.py --runs 20 --threads 8 --requests 20 --body 200000
"""

from __future__ import annotations

import argparse
import collections
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Counter, List

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from servers import BackgroundLoop, HTTPServer

import httpcore


def one_round(url: str, context: ssl.SSLContext, threads: int, requests: int, body: int) -> None:
    errors: List[BaseException] = []
    payload = b"x" * body
    with httpcore.ConnectionPool(ssl_context=context, http2=True) as pool:

        def worker() -> None:
            try:
                for _ in range(requests):
                    if body:
                        response = pool.request("POST", url + "/echo", content=payload)
                        assert response.content == payload, len(response.content)
                    else:
                        response = pool.request("GET", url + "/")
                        assert response.content == b"Hello, world!"
                    assert response.extensions["http_version"] == b"HTTP/2"
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=worker) for _ in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
    if errors:
        raise errors[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1)
    parser.add_argument("--body", type=int, default=0, help="bytes echoed per request")
    args = parser.parse_args()

    ca = trustme.CA()
    with tempfile.TemporaryDirectory() as tmp:
        certfile = str(Path(tmp) / "server.pem")
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(certfile)
        client = ssl.create_default_context()
        ca.configure_trust(client)
        loop = BackgroundLoop()
        server = HTTPServer(loop, certfile=certfile, client_context=client)
        failures: Counter[str] = collections.Counter()
        started = time.perf_counter()
        try:
            for _ in range(args.runs):
                context = ssl.create_default_context()
                ca.configure_trust(context)
                try:
                    one_round(server.url, context, args.threads, args.requests, args.body)
                except Exception as exc:
                    failures[f"{type(exc).__name__}: {exc}"] += 1
        finally:
            server.close()
            loop.close()
    elapsed = time.perf_counter() - started
    for message, count in failures.most_common():
        print(f"{count:4d}  {message}")
    total = sum(failures.values())
    print(
        f"{total}/{args.runs} rounds failed ({args.threads} threads x {args.requests} requests,"
        f" body {args.body}, {ssl.OPENSSL_VERSION}) in {elapsed:.1f}s"
    )
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
