"""Measurement loops shared by the worker scripts (stdlib only: runs in any of the venvs).

A worker measures one (client, scenario) pair in a fresh process and prints one JSON line:
``{"ok": true, "rate": ..., "unit": "req/s" | "MB/s", ...}`` or ``{"ok": false, "error": ...}``.
Every loop runs a warm-up phase (connections are opened there) and then a timed phase; tasks
and threads run until a shared deadline and the rate is completed work / wall time. The
process's CPU time over the timed phase (``time.process_time()``: user + system, all threads)
goes into the result as ``cpu_s``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import traceback
from typing import Any, Awaitable, Callable, Dict, List, Optional

Result = Dict[str, Any]

# Stop a phase early when a client fails this often: it is broken, not slow.
MAX_ERRORS = 200


class Tally:
    """Work done by one thread or task; merged after the phase (no shared counters)."""

    __slots__ = ("count", "errors", "first_error", "nbytes")

    def __init__(self) -> None:
        self.count = 0
        self.nbytes = 0
        self.errors = 0
        self.first_error: Optional[str] = None

    def fail(self, exc: BaseException) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = f"{type(exc).__name__}: {exc}"

    @staticmethod
    def merge(tallies: List[Tally]) -> Tally:
        total = Tally()
        for tally in tallies:
            total.count += tally.count
            total.nbytes += tally.nbytes
            total.errors += tally.errors
            if total.first_error is None:
                total.first_error = tally.first_error
        return total


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario")
    parser.add_argument("--url", required=True)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--size", type=int, default=0, help="expected body size in bytes")
    parser.add_argument("--cafile", default=None)
    parser.add_argument("--loop", default="asyncio", help="asyncio event loop: asyncio or uvloop")
    parser.add_argument("--module", default="httpcore", help="cold start: the module to import")
    return parser.parse_args()


def finish(elapsed: float, cpu_s: float, tally: Tally, unit: str) -> Result:
    """The result of a timed phase: `elapsed` wall seconds, `cpu_s` seconds of process CPU."""
    if tally.count == 0:
        raise RuntimeError(f"no request completed; first error: {tally.first_error}")
    rate = tally.count / elapsed if unit == "req/s" else tally.nbytes / elapsed / 1e6
    return {
        "rate": rate,
        "unit": unit,
        "count": tally.count,
        "bytes": tally.nbytes,
        "elapsed": elapsed,
        "cpu_s": cpu_s,
        "errors": tally.errors,
        "first_error": tally.first_error,
    }


def check_size(got: int, expected: int) -> int:
    if expected and got != expected:
        raise RuntimeError(f"body of {got} bytes, expected {expected}")
    return got


# -- sync -------------------------------------------------------------------------------------


def _sync_loop(one: Callable[[], int], deadline: float, tally: Tally) -> None:
    clock = time.perf_counter
    while True:
        try:
            tally.nbytes += one()
            tally.count += 1
        except Exception as exc:
            tally.fail(exc)
            if tally.errors >= MAX_ERRORS:
                return
        if clock() >= deadline:
            return


def run_sync(one: Callable[[], int], args: argparse.Namespace, unit: str = "req/s") -> Result:
    """One thread calling ``one()`` (which returns the body size) back to back."""
    first = Tally()
    _sync_loop(one, time.perf_counter() + args.warmup, first)
    if first.count == 0:
        raise RuntimeError(f"warm-up failed: {first.first_error}")
    tally = Tally()
    cpu = time.process_time()
    start = time.perf_counter()
    _sync_loop(one, start + args.duration, tally)
    elapsed = time.perf_counter() - start
    return finish(elapsed, time.process_time() - cpu, tally, unit)


def _threads_phase(
    one: Callable[[], int], threads: int, seconds: float
) -> tuple[float, float, Tally]:
    """Run the threads until `seconds` have passed: (wall seconds, CPU seconds, work done)."""
    tallies = [Tally() for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]

    def body(tally: Tally) -> None:
        barrier.wait()
        _sync_loop(one, deadline[0], tally)

    workers = [threading.Thread(target=body, args=(t,), daemon=True) for t in tallies]
    for worker in workers:
        worker.start()
    cpu = time.process_time()
    start = time.perf_counter()
    deadline[0] = start + seconds
    barrier.wait()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    return elapsed, time.process_time() - cpu, Tally.merge(tallies)


def run_threads(one: Callable[[], int], args: argparse.Namespace, unit: str = "req/s") -> Result:
    """``args.concurrency`` threads calling ``one()`` back to back on a shared client."""
    _, _, first = _threads_phase(one, args.concurrency, args.warmup)
    if first.count == 0:
        raise RuntimeError(f"warm-up failed: {first.first_error}")
    elapsed, cpu_s, tally = _threads_phase(one, args.concurrency, args.duration)
    return finish(elapsed, cpu_s, tally, unit)


# -- async ------------------------------------------------------------------------------------


async def _async_loop(one: Callable[[], Awaitable[int]], deadline: float, tally: Tally) -> None:
    clock = time.perf_counter
    while True:
        try:
            tally.nbytes += await one()
            tally.count += 1
        except Exception as exc:
            tally.fail(exc)
            if tally.errors >= MAX_ERRORS:
                return
        if clock() >= deadline:
            return


async def _asyncio_phase(
    one: Callable[[], Awaitable[int]], tasks: int, seconds: float
) -> tuple[float, float, Tally]:
    """Run the tasks until `seconds` have passed: (wall seconds, CPU seconds, work done)."""
    import asyncio

    tallies = [Tally() for _ in range(tasks)]
    cpu = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(_async_loop(one, deadline, t) for t in tallies))
    elapsed = time.perf_counter() - start
    return elapsed, time.process_time() - cpu, Tally.merge(tallies)


async def _trio_phase(
    one: Callable[[], Awaitable[int]], tasks: int, seconds: float
) -> tuple[float, float, Tally]:
    """As `_asyncio_phase`, in a trio nursery."""
    import trio

    tallies = [Tally() for _ in range(tasks)]
    cpu = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds
    async with trio.open_nursery() as nursery:
        for tally in tallies:
            nursery.start_soon(_async_loop, one, deadline, tally)
    elapsed = time.perf_counter() - start
    return elapsed, time.process_time() - cpu, Tally.merge(tallies)


async def run_tasks(
    one: Callable[[], Awaitable[int]],
    args: argparse.Namespace,
    backend: str,
    unit: str = "req/s",
) -> Result:
    """``args.concurrency`` tasks awaiting ``one()`` back to back on a shared client."""
    phase = _trio_phase if backend == "trio" else _asyncio_phase
    _, _, first = await phase(one, args.concurrency, args.warmup)
    if first.count == 0:
        raise RuntimeError(f"warm-up failed: {first.first_error}")
    elapsed, cpu_s, tally = await phase(one, args.concurrency, args.duration)
    return finish(elapsed, cpu_s, tally, unit)


def run_asyncio(main: Callable[[], Awaitable[Result]], loop: str) -> Result:
    """Run `main()` under the standard asyncio loop, or uvloop's (``loop == "uvloop"``)."""
    import asyncio

    if loop == "uvloop":
        import uvloop

        result: Result = uvloop.run(main())  # type: ignore[arg-type]
        return result
    return asyncio.run(main())  # type: ignore[arg-type]


# -- memory -----------------------------------------------------------------------------------


def rss_kb() -> float:
    """Resident set size of this process, in kB (10^3 bytes)."""
    import os

    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1000


def open_sockets() -> int:
    """How many sockets this process has open (counted from /proc/self/fd)."""
    import os

    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


def raise_fd_limit(wanted: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


async def open_many(
    open_one: Callable[[], Any], count: int, measure: Callable[[], Any]
) -> tuple[Any, int]:
    """Open `count` responses one after the other and hold them all open at once.

    ``open_one()`` returns an async context manager that yields an open response (headers
    received). Once all are open, ``measure()`` is called; then each body is read (through
    `read_body`, which returns its size) and every response is closed, so the connections go
    back to the pool. Opening one at a time keeps the pools' cost per new request small, so a
    slow scheduler cannot time the memory scenarios out. Returns (measure's value, bytes read).
    """
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        responses = [await stack.enter_async_context(open_one()) for _ in range(count)]
        measured = measure()
        received = 0
        for response in responses:
            received += await read_body(response)
    return measured, received


async def read_body(response: Any) -> int:
    """Read a response body: httpcore's ``aread()`` or aiohttp's ``read()``."""
    reader = getattr(response, "aread", None) or response.read
    return len(await reader())


async def fan_out(hold: Callable[[Any], Awaitable[int]], count: int) -> int:
    """Run `count` tasks that each open a response and wait, all at once, at a barrier.

    Each task calls ``hold(barrier)``, which must start its request, ``await barrier.wait()``
    while it holds the response open, then read the body and return its size. As no response
    is released before all are open, each task needs a connection of its own. Returns the
    total body size.
    """
    import asyncio

    arrived = 0
    everyone = asyncio.Event()

    class Barrier:
        @staticmethod
        async def wait() -> None:
            nonlocal arrived
            arrived += 1
            if arrived == count:
                everyone.set()
            await everyone.wait()

    tasks = [asyncio.ensure_future(hold(Barrier)) for _ in range(count)]
    try:
        done, _ = await asyncio.wait(tasks, timeout=300, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
    for task in done:
        if task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    if len(done) < count:
        raise RuntimeError(f"only {arrived} of {count} responses opened within 300 s")
    return sum(task.result() for task in tasks)


async def harness_warm_up(count: int) -> None:
    """Run the fan-out with no requests, so the memory its tasks take is counted in "before"."""

    async def idle(barrier: Any) -> int:
        await barrier.wait()
        return 0

    await fan_out(idle, count)


def memory_result(before: float, after: float, count: int, unit: str, **extra: Any) -> Result:
    return {"rate": (after - before) / count, "unit": unit, "count": count, **extra}


# -- output -----------------------------------------------------------------------------------


def emit(result: Result) -> None:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def main(measure: Callable[[argparse.Namespace], Result], info: Optional[Result] = None) -> None:
    args = parse_args()
    try:
        result = measure(args)
    except BaseException as exc:
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}".strip()
        emit({"ok": False, "error": message})
        sys.exit(1)
    emit({"ok": True, **(info or {}), **result})
