"""Count the Python and C calls per request of sync HTTPS keep-alive (HTTP/1.1), and time it.

(`--plain`: the same over plain HTTP.)

Starts the tests' hypercorn TLS server in this process, sends ``--warmup`` GETs on one
keep-alive connection, then ``--requests`` more under ``sys.setprofile`` (this thread only:
the server's thread is not counted) and prints the calls per request, then times as many again
without the profiler (the server shares this process: the time is only a rough guide, use
benchmarks/run.py for rates).

    hatch run python scripts/count_tls_calls.py --requests 1000
"""

from __future__ import annotations

import argparse
import collections
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Counter

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from servers import BackgroundLoop, HTTPServer

import httpcore


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--top", type=int, default=0, help="also list the N most called")
    parser.add_argument("--plain", action="store_true", help="plain HTTP, for comparison")
    args = parser.parse_args()

    ca = trustme.CA()
    with tempfile.TemporaryDirectory() as tmp:
        certfile = str(Path(tmp) / "server.pem")
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(certfile)
        context = ssl.create_default_context()
        ca.configure_trust(context)
        loop = BackgroundLoop()
        if args.plain:
            server = HTTPServer(loop)
        else:
            server = HTTPServer(loop, certfile=certfile, client_context=context)
        try:
            url = server.url + "/"
            with httpcore.ConnectionPool(ssl_context=context, max_connections=1) as pool:
                for _ in range(args.warmup):
                    assert pool.request("GET", url).status == 200
                counts: Counter[str] = collections.Counter()
                names: Counter[str] = collections.Counter()

                def profile(frame: Any, event: str, arg: Any) -> None:
                    if event == "call":
                        counts["python"] += 1
                        if args.top:
                            code = frame.f_code
                            names[f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_name}"] += 1
                    elif event == "c_call":
                        counts["c"] += 1
                        if args.top:
                            names[f"C {getattr(arg, '__qualname__', arg)}"] += 1

                sys.setprofile(profile)
                try:
                    for _ in range(args.requests):
                        pool.request("GET", url)
                finally:
                    sys.setprofile(None)
                started = time.perf_counter()
                for _ in range(args.requests):
                    pool.request("GET", url)
                elapsed = time.perf_counter() - started
                assert len(pool.connections) == 1
        finally:
            server.close()
            loop.close()
    python, c = counts["python"] / args.requests, counts["c"] / args.requests
    print(f"per request: {python:.1f} Python calls, {c:.1f} C calls, {python + c:.1f} in all")
    print(f"{args.requests} GETs in {elapsed:.3f}s ({elapsed / args.requests * 1e6:.0f} us each)")
    for name, count in names.most_common(args.top):
        print(f"{count / args.requests:8.2f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
