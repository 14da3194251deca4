"""aiohttp client worker: one ``ClientSession`` whose connector holds up to 50 connections."""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
from common import Result, check_size, main, run_tasks


async def _run(args: argparse.Namespace) -> Result:
    url, size = args.url, args.size
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> int:
            async with session.get(url) as response:
                return check_size(len(await response.read()), size)

        return await run_tasks(one, args, "asyncio")


def measure(args: argparse.Namespace) -> Result:
    if args.scenario != "asyncio":
        raise ValueError(f"aiohttp worker has no scenario {args.scenario!r}")
    return asyncio.run(_run(args))


if __name__ == "__main__":
    main(measure, {"version": aiohttp.__version__})
