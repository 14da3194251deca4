"""aiohttp client worker: one ``ClientSession`` whose connector holds up to N connections."""

from __future__ import annotations

import argparse
import gc
from typing import Any

import aiohttp
from common import (
    Result,
    check_size,
    fan_out,
    harness_warm_up,
    main,
    memory_result,
    open_sockets,
    raise_fd_limit,
    rss_kb,
    run_asyncio,
    run_tasks,
)


async def _run(args: argparse.Namespace) -> Result:
    url, size = args.url, args.size
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> int:
            async with session.get(url) as response:
                return check_size(len(await response.read()), size)

        return await run_tasks(one, args, "asyncio")


async def _memory(args: argparse.Namespace) -> Result:
    url, size, count = args.url, args.size, args.concurrency
    raise_fd_limit(count + 200)
    connector = aiohttp.TCPConnector(limit=count + 10, keepalive_timeout=600)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def hold(barrier: Any) -> int:
            async with session.get(url) as response:
                await barrier.wait()
                return check_size(len(await response.read()), size)

        async with session.get(url) as response:  # code paths loaded
            check_size(len(await response.read()), size)
        await harness_warm_up(count)
        gc.collect()
        before, sockets = rss_kb(), open_sockets()
        check_size(await fan_out(hold, count), size * count)
        gc.collect()
        after, opened = rss_kb(), open_sockets() - sockets
        if opened < count - 1:
            raise RuntimeError(f"only {opened} more idle connections kept, not {count}")
        return memory_result(before, after, opened, "kB/conn", connections=opened)


def measure(args: argparse.Namespace) -> Result:
    if args.scenario in ("asyncio", "asyncio-uvloop"):
        return run_asyncio(lambda: _run(args), args.loop)
    if args.scenario == "mem-idle":
        return run_asyncio(lambda: _memory(args), "asyncio")
    raise ValueError(f"aiohttp worker has no scenario {args.scenario!r}")


if __name__ == "__main__":
    main(measure, {"version": aiohttp.__version__})
