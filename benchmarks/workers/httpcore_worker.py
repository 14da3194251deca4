"""httpcore client worker: the same code measures httpcore 1.0.9 and this project.

Which one is measured depends only on the venv whose python runs this file.
"""

from __future__ import annotations

import argparse
import ssl
from typing import Any

from common import Result, check_size, main, run_sync, run_tasks, run_threads

import httpcore


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=args.cafile)


def _check_h2(response: Any) -> None:
    version = response.extensions.get("http_version")
    if version != b"HTTP/2":
        raise RuntimeError(f"negotiated {version!r}, not HTTP/2")


def seq(args: argparse.Namespace) -> Result:
    url, size = args.url, args.size
    with httpcore.ConnectionPool(max_connections=1) as pool:

        def one() -> int:
            return check_size(len(pool.request("GET", url).content), size)

        return run_sync(one, args)


def threads(args: argparse.Namespace) -> Result:
    url, size = args.url, args.size
    with httpcore.ConnectionPool(max_connections=args.concurrency) as pool:

        def one() -> int:
            return check_size(len(pool.request("GET", url).content), size)

        return run_threads(one, args)


def stream(args: argparse.Namespace) -> Result:
    url, size = args.url, args.size
    with httpcore.ConnectionPool(max_connections=1) as pool:

        def one() -> int:
            received = 0
            with pool.stream("GET", url) as response:
                for chunk in response.iter_stream():
                    received += len(chunk)
            return check_size(received, size)

        return run_sync(one, args, unit="MB/s")


def h2_threads(args: argparse.Namespace) -> Result:
    url, size = args.url, args.size
    with httpcore.ConnectionPool(ssl_context=_ssl_context(args), http2=True) as pool:
        _check_h2(pool.request("GET", url))

        def one() -> int:
            return check_size(len(pool.request("GET", url).content), size)

        return run_threads(one, args)


async def _async_main(args: argparse.Namespace, backend: str, http2: bool) -> Result:
    url, size = args.url, args.size
    if http2:
        pool = httpcore.AsyncConnectionPool(ssl_context=_ssl_context(args), http2=True)
    else:
        pool = httpcore.AsyncConnectionPool(max_connections=args.concurrency)
    async with pool:
        if http2:
            _check_h2(await pool.request("GET", url))

        async def one() -> int:
            response = await pool.request("GET", url)
            return check_size(len(response.content), size)

        return await run_tasks(one, args, backend)


def asyncio_(args: argparse.Namespace) -> Result:
    import asyncio

    return asyncio.run(_async_main(args, "asyncio", http2=False))


def trio_(args: argparse.Namespace) -> Result:
    import trio

    result: Result = trio.run(_async_main, args, "trio", False)
    return result


def h2_asyncio(args: argparse.Namespace) -> Result:
    import asyncio

    return asyncio.run(_async_main(args, "asyncio", http2=True))


SCENARIOS = {
    "seq": seq,
    "threads": threads,
    "stream": stream,
    "asyncio": asyncio_,
    "trio": trio_,
    "h2-asyncio": h2_asyncio,
    "h2-threads": h2_threads,
}


def measure(args: argparse.Namespace) -> Result:
    return SCENARIOS[args.scenario](args)


if __name__ == "__main__":
    info = {"version": getattr(httpcore, "__version__", "?")}
    main(measure, {**info, "path": str(getattr(httpcore, "__file__", None))})
