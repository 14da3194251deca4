"""urllib3 client worker (``PoolManager``, the analogue of httpcore's ``ConnectionPool``)."""

from __future__ import annotations

import argparse
from importlib.metadata import version

import urllib3
from common import Result, check_size, main, run_sync, run_threads


def _manager(size: int, cafile: str | None = None) -> urllib3.PoolManager:
    # One pool per origin with `size` connections; block=True waits for a free connection
    # instead of opening (and then discarding) extra ones, as httpcore's pool does.
    tls = {"ca_certs": cafile} if cafile else {}
    return urllib3.PoolManager(maxsize=size, block=True, retries=False, **tls)


def seq(args: argparse.Namespace) -> Result:
    url, size = args.url, args.size
    with _manager(1) as http:

        def one() -> int:
            return check_size(len(http.request("GET", url).data), size)

        return run_sync(one, args)


def threads(args: argparse.Namespace) -> Result:
    url, size = args.url, args.size
    with _manager(args.concurrency) as http:

        def one() -> int:
            return check_size(len(http.request("GET", url).data), size)

        return run_threads(one, args)


def stream(args: argparse.Namespace) -> Result:
    url, size = args.url, args.size
    with _manager(1) as http:

        def one() -> int:
            received = 0
            response = http.request("GET", url, preload_content=False)
            for chunk in response.stream(65536):
                received += len(chunk)
            response.release_conn()
            return check_size(received, size)

        return run_sync(one, args, unit="MB/s")


def https(args: argparse.Namespace) -> Result:
    # https-new: "Connection: close" makes every request open (and handshake) a new connection.
    url, size = args.url, args.size
    headers = {"Connection": "close"} if args.scenario == "https-new" else None
    with _manager(1, args.cafile) as http:

        def one() -> int:
            return check_size(len(http.request("GET", url, headers=headers).data), size)

        return run_sync(one, args)


def upload(args: argparse.Namespace) -> Result:
    url, body = args.url, bytes(args.size)
    with _manager(1) as http:

        def one() -> int:
            response = http.request("POST", url, body=body)
            if response.status != 200:
                raise RuntimeError(f"status {response.status}")
            return len(body)

        return run_sync(one, args, unit="MB/s")


SCENARIOS = {
    "seq": seq,
    "seq-chunked": seq,
    "threads": threads,
    "stream": stream,
    "https-seq": https,
    "https-new": https,
    "upload": upload,
}


def measure(args: argparse.Namespace) -> Result:
    return SCENARIOS[args.scenario](args)


if __name__ == "__main__":
    main(measure, {"version": version("urllib3")})
