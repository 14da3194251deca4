"""Measurement loops shared by the worker scripts (stdlib only: runs in any of the venvs).

A worker measures one (client, scenario) pair in a fresh process and prints one JSON line:
``{"ok": true, "rate": ..., "unit": "req/s" | "MB/s", ...}`` or ``{"ok": false, "error": ...}``.
Every loop runs a warm-up phase (connections are opened there) and then a timed phase; tasks
and threads run until a shared deadline and the rate is completed work / wall time.
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
    return parser.parse_args()


def finish(elapsed: float, tally: Tally, unit: str) -> Result:
    if tally.count == 0:
        raise RuntimeError(f"no request completed; first error: {tally.first_error}")
    rate = tally.count / elapsed if unit == "req/s" else tally.nbytes / elapsed / 1e6
    return {
        "rate": rate,
        "unit": unit,
        "count": tally.count,
        "bytes": tally.nbytes,
        "elapsed": elapsed,
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
    start = time.perf_counter()
    _sync_loop(one, start + args.duration, tally)
    return finish(time.perf_counter() - start, tally, unit)


def _threads_phase(one: Callable[[], int], threads: int, seconds: float) -> tuple[float, Tally]:
    tallies = [Tally() for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]

    def body(tally: Tally) -> None:
        barrier.wait()
        _sync_loop(one, deadline[0], tally)

    workers = [threading.Thread(target=body, args=(t,), daemon=True) for t in tallies]
    for worker in workers:
        worker.start()
    start = time.perf_counter()
    deadline[0] = start + seconds
    barrier.wait()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start, Tally.merge(tallies)


def run_threads(one: Callable[[], int], args: argparse.Namespace, unit: str = "req/s") -> Result:
    """``args.concurrency`` threads calling ``one()`` back to back on a shared client."""
    _, first = _threads_phase(one, args.concurrency, args.warmup)
    if first.count == 0:
        raise RuntimeError(f"warm-up failed: {first.first_error}")
    elapsed, tally = _threads_phase(one, args.concurrency, args.duration)
    return finish(elapsed, tally, unit)


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
) -> tuple[float, Tally]:
    import asyncio

    tallies = [Tally() for _ in range(tasks)]
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(_async_loop(one, deadline, t) for t in tallies))
    return time.perf_counter() - start, Tally.merge(tallies)


async def _trio_phase(
    one: Callable[[], Awaitable[int]], tasks: int, seconds: float
) -> tuple[float, Tally]:
    import trio

    tallies = [Tally() for _ in range(tasks)]
    start = time.perf_counter()
    deadline = start + seconds
    async with trio.open_nursery() as nursery:
        for tally in tallies:
            nursery.start_soon(_async_loop, one, deadline, tally)
    return time.perf_counter() - start, Tally.merge(tallies)


async def run_tasks(
    one: Callable[[], Awaitable[int]],
    args: argparse.Namespace,
    backend: str,
    unit: str = "req/s",
) -> Result:
    """``args.concurrency`` tasks awaiting ``one()`` back to back on a shared client."""
    phase = _trio_phase if backend == "trio" else _asyncio_phase
    _, first = await phase(one, args.concurrency, args.warmup)
    if first.count == 0:
        raise RuntimeError(f"warm-up failed: {first.first_error}")
    elapsed, tally = await phase(one, args.concurrency, args.duration)
    return finish(elapsed, tally, unit)


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
