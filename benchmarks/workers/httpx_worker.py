"""httpx 0.28 worker: the same code measures httpx over this project and over httpcore 1.0.9.

httpx imports ``httpcore``; which one it gets depends only on the venv whose python runs this.
"""

from __future__ import annotations

import argparse
import ssl

import httpx
from common import Result, check_size, main, run_asyncio, run_sync, run_tasks, run_threads


def _limits(connections: int) -> httpx.Limits:
    return httpx.Limits(max_connections=connections, max_keepalive_connections=connections)


def seq(args: argparse.Namespace) -> Result:
    url, size = args.url, args.size
    with httpx.Client(limits=_limits(1)) as client:

        def one() -> int:
            return check_size(len(client.get(url).content), size)

        return run_sync(one, args)


def threads(args: argparse.Namespace) -> Result:
    url, size = args.url, args.size
    with httpx.Client(limits=_limits(args.concurrency)) as client:

        def one() -> int:
            return check_size(len(client.get(url).content), size)

        return run_threads(one, args)


async def _async_main(args: argparse.Namespace, http2: bool) -> Result:
    url, size = args.url, args.size
    if http2:
        context = ssl.create_default_context(cafile=args.cafile)
        client = httpx.AsyncClient(verify=context, http2=True, limits=_limits(100))
    else:
        client = httpx.AsyncClient(limits=_limits(args.concurrency))
    async with client:
        if http2:
            version = (await client.get(url)).http_version
            if version != "HTTP/2":
                raise RuntimeError(f"negotiated {version!r}, not HTTP/2")

        async def one() -> int:
            response = await client.get(url)
            return check_size(len(response.content), size)

        return await run_tasks(one, args, "asyncio")


SCENARIOS = {
    "httpx-seq": seq,
    "httpx-chunked": seq,
    "httpx-threads": threads,
    "httpx-asyncio": lambda args: run_asyncio(lambda: _async_main(args, False), args.loop),
    "httpx-h2": lambda args: run_asyncio(lambda: _async_main(args, True), args.loop),
}


def measure(args: argparse.Namespace) -> Result:
    return SCENARIOS[args.scenario](args)


if __name__ == "__main__":
    import httpcore

    main(measure, {"version": f"{httpx.__version__} + httpcore {httpcore.__version__}"})
