"""httpcore client worker: the same code measures httpcore 1.0.9 and this project.

Which one is measured depends only on the venv whose python runs this file.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import ssl
from typing import Any

from common import (
    Result,
    check_size,
    fan_out,
    harness_warm_up,
    main,
    memory_result,
    open_many,
    open_sockets,
    raise_fd_limit,
    rss_kb,
    run_asyncio,
    run_sync,
    run_tasks,
    run_threads,
)

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
    return run_asyncio(lambda: _async_main(args, "asyncio", http2=False), args.loop)


def https_seq(args: argparse.Namespace) -> Result:
    url, size = args.url, args.size
    with httpcore.ConnectionPool(ssl_context=_ssl_context(args), max_connections=1) as pool:

        def one() -> int:
            return check_size(len(pool.request("GET", url).content), size)

        return run_sync(one, args)


def https_new(args: argparse.Namespace) -> Result:
    # "Connection: close" makes every request open (and handshake) a new TLS connection.
    url, size = args.url, args.size
    headers = [(b"Connection", b"close")]
    with httpcore.ConnectionPool(ssl_context=_ssl_context(args), max_connections=1) as pool:

        def one() -> int:
            return check_size(len(pool.request("GET", url, headers=headers).content), size)

        return run_sync(one, args)


def upload(args: argparse.Namespace) -> Result:
    url, body = args.url, bytes(args.size)
    with httpcore.ConnectionPool(max_connections=1) as pool:

        def one() -> int:
            response = pool.request("POST", url, content=body)
            if response.status != 200:
                raise RuntimeError(f"status {response.status}")
            return len(body)

        return run_sync(one, args, unit="MB/s")


def _rss_after_gc() -> float:
    gc.collect()
    return rss_kb()


# Both projects open at most 100 streams on an HTTP/2 connection (the lower of the server's and
# their own SETTINGS_MAX_CONCURRENT_STREAMS), and 1.0.9's pool hands every request to its first
# HTTP/2 connection, where a 101st stream waits for one to close (forever, here). So N streams
# are spread over N / 100 pools of one connection each, the same for both.
STREAMS_PER_CONNECTION = 100


async def _memory_h2(args: argparse.Namespace) -> Result:
    url, size, count = args.url, args.size, args.concurrency
    context = _ssl_context(args)
    pools = [
        httpcore.AsyncConnectionPool(ssl_context=context, http2=True, max_connections=1)
        for _ in range(-(-count // STREAMS_PER_CONNECTION))
    ]
    try:
        for pool in pools:  # connections open, code paths loaded
            response = await pool.request("GET", url)
            _check_h2(response)
            check_size(len(response.content), size)
        gc.collect()
        before, sockets = rss_kb(), open_sockets()
        index = itertools.count()

        def opening() -> Any:
            return pools[next(index) // STREAMS_PER_CONNECTION].stream("GET", url)

        during, received = await open_many(opening, count, _rss_after_gc)
        check_size(received, size * count)
        if open_sockets() != sockets:
            raise RuntimeError("the streams opened more connections than one per pool")
        return memory_result(before, during, count, "kB/stream", connections=len(pools))
    finally:
        for pool in pools:
            await pool.aclose()


async def _memory_idle(args: argparse.Namespace) -> Result:
    url, size, count = args.url, args.size, args.concurrency
    if httpcore.__version__ == "1.0.9":
        # Releasing a connection to 1.0.9's pool costs O(connections * requests): 1,000 take
        # many minutes, 200 a few seconds. The result is still per connection.
        count = 200
    raise_fd_limit(count + 200)
    pool = httpcore.AsyncConnectionPool(
        max_connections=count + 10, max_keepalive_connections=count + 10
    )

    async def hold(barrier: Any) -> int:
        async with pool.stream("GET", url) as response:
            await barrier.wait()
            return check_size(len(await response.aread()), size)

    async with pool:
        check_size(len((await pool.request("GET", url)).content), size)  # code paths loaded
        await harness_warm_up(count)
        gc.collect()
        before, sockets = rss_kb(), open_sockets()
        check_size(await fan_out(hold, count), size * count)
        gc.collect()
        after, opened = rss_kb(), open_sockets() - sockets
        if opened < count - 1:
            raise RuntimeError(f"only {opened} more idle connections kept, not {count}")
        return memory_result(before, after, opened, "kB/conn", connections=opened)


def trio_(args: argparse.Namespace) -> Result:
    import trio

    result: Result = trio.run(_async_main, args, "trio", False)
    return result


def h2_asyncio(args: argparse.Namespace) -> Result:
    import asyncio

    return asyncio.run(_async_main(args, "asyncio", http2=True))


SCENARIOS = {
    "seq": seq,
    "seq-chunked": seq,
    "threads": threads,
    "stream": stream,
    "asyncio": asyncio_,
    "asyncio-uvloop": asyncio_,
    "https-seq": https_seq,
    "https-new": https_new,
    "upload": upload,
    "mem-idle": lambda args: run_asyncio(lambda: _memory_idle(args), "asyncio"),
    "mem-h2": lambda args: run_asyncio(lambda: _memory_h2(args), "asyncio"),
    "trio": trio_,
    "h2-asyncio": h2_asyncio,
    "h2-threads": h2_threads,
}


def measure(args: argparse.Namespace) -> Result:
    return SCENARIOS[args.scenario](args)


if __name__ == "__main__":
    info = {"version": getattr(httpcore, "__version__", "?")}
    main(measure, {**info, "path": str(getattr(httpcore, "__file__", None))})
