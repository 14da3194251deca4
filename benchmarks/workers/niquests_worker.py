"""niquests 3.x worker: the requests-style client people switch to from httpx.

Sync sequential (``Session``), asyncio tasks sharing an ``AsyncSession`` (HTTP/1.1), and
HTTP/2 multiplexing: niquests sends a batch of requests on one connection with
``multiplexed=True`` and collects the answers with ``gather()``, its own way of doing what the
other clients do with concurrent tasks.
"""

from __future__ import annotations

import argparse
import time

import niquests
from common import Result, Tally, check_size, finish, main, run_asyncio, run_sync, run_tasks


def seq(args: argparse.Namespace) -> Result:
    url, size = args.url, args.size
    with niquests.Session(pool_maxsize=1) as session:

        def one() -> int:
            return check_size(len(session.get(url).content or b""), size)

        return run_sync(one, args)


async def _asyncio(args: argparse.Namespace) -> Result:
    url, size = args.url, args.size
    async with niquests.AsyncSession(pool_maxsize=args.concurrency) as session:

        async def one() -> int:
            response = await session.get(url)
            return check_size(len(response.content or b""), size)

        return await run_tasks(one, args, "asyncio")


async def _multiplexed(args: argparse.Namespace) -> Result:
    url, size, batch, cafile = args.url, args.size, args.concurrency, args.cafile
    # The CA is given per request: the session-level `verify` is not applied here.
    async with niquests.AsyncSession(multiplexed=True) as session:
        first = await session.get(url, verify=cafile)
        await session.gather()
        if first.http_version != 20:
            raise RuntimeError(f"negotiated HTTP version {first.http_version}, not HTTP/2")

        async def phase(seconds: float) -> tuple[float, float, Tally]:
            tally = Tally()
            cpu = time.process_time()
            start = time.perf_counter()
            deadline = start + seconds
            while time.perf_counter() < deadline:
                responses = [await session.get(url, verify=cafile) for _ in range(batch)]
                await session.gather()
                for response in responses:
                    try:
                        tally.nbytes += check_size(len(response.content or b""), size)
                        tally.count += 1
                    except Exception as exc:
                        tally.fail(exc)
            elapsed = time.perf_counter() - start
            return elapsed, time.process_time() - cpu, tally

        await phase(args.warmup)
        elapsed, cpu_s, tally = await phase(args.duration)
        return finish(elapsed, cpu_s, tally, "req/s")


SCENARIOS = {
    "httpx-seq": seq,
    "httpx-asyncio": lambda args: run_asyncio(lambda: _asyncio(args), args.loop),
    "httpx-h2": lambda args: run_asyncio(lambda: _multiplexed(args), args.loop),
}


def measure(args: argparse.Namespace) -> Result:
    return SCENARIOS[args.scenario](args)


if __name__ == "__main__":
    main(measure, {"version": niquests.__version__})
