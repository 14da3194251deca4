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


async def _open_multiplexed(url: str, cafile: str) -> niquests.AsyncSession:
    # The CA is given per request: the session-level `verify` is not applied here.
    session = niquests.AsyncSession(multiplexed=True)
    first = await session.get(url, verify=cafile)
    await session.gather()
    if first.http_version != 20:
        await session.close()
        raise RuntimeError(f"negotiated HTTP version {first.http_version}, not HTTP/2")
    return session


async def _multiplexed(args: argparse.Namespace) -> Result:
    url, size, batch, cafile = args.url, args.size, args.concurrency, args.cafile
    session = await _open_multiplexed(url, cafile)

    async def phase(seconds: float) -> tuple[float, float, Tally]:
        nonlocal session
        tally = Tally()
        cpu = time.process_time()
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            responses = [await session.get(url, verify=cafile) for _ in range(batch)]
            try:
                await session.gather()
                failed = None
            except Exception as exc:  # niquests 3.21 fails a batch a GOAWAY cuts
                failed = exc
                if tally.first_error is None:
                    tally.first_error = f"{type(exc).__name__}: {exc}"
            for response in responses:
                try:
                    tally.nbytes += check_size(len(response.content or b""), size)
                    tally.count += 1
                except Exception as exc:
                    tally.fail(exc)
            if failed is not None:
                # As a user would after a ConnectionError: a new session. The old one's
                # next gather() raises RecursionError.
                await session.close()
                session = await _open_multiplexed(url, cafile)
        elapsed = time.perf_counter() - start
        return elapsed, time.process_time() - cpu, tally

    try:
        await phase(args.warmup)
        elapsed, cpu_s, tally = await phase(args.duration)
    finally:
        await session.close()
    return finish(elapsed, cpu_s, tally, "req/s")


SCENARIOS = {
    "httpx-seq": seq,
    "httpx-chunked": seq,
    "httpx-asyncio": lambda args: run_asyncio(lambda: _asyncio(args), args.loop),
    "httpx-h2": lambda args: run_asyncio(lambda: _multiplexed(args), args.loop),
}


def measure(args: argparse.Namespace) -> Result:
    return SCENARIOS[args.scenario](args)


if __name__ == "__main__":
    main(measure, {"version": niquests.__version__})
