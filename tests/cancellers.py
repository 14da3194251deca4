"""The ways of cancelling a request, shared by the cancellation tests (`test_cancellation.py`
for HTTP/1.1, `test_http3_cancellation.py` for HTTP/3), and waiting without guessing.

Each way runs `request()` (which would block forever), cancels it once `reached()` holds, and
checks that the request really ended by that cancellation. `asyncio.wait_for`'s deadline is the
one that cannot be moved: a request that had not reached its point by then raises `TooEarly`.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from typing import Any, Awaitable, Callable, Dict, List

import anyio
import pytest
import trio

Predicate = Callable[[], bool]
RequestFn = Callable[[], Awaitable[Any]]
Canceller = Callable[[RequestFn, Predicate], Awaitable[None]]

BOUND = 5.0  # the upper bound of every poll


async def poll(predicate: Predicate, what: str = "condition") -> None:
    """Wait (bounded) until `predicate()` holds, letting other tasks and threads run."""
    with anyio.move_on_after(BOUND):
        while not predicate():
            await anyio.sleep(0.001)
        return
    raise AssertionError(f"timed out waiting for {what}: {predicate!r}")


def wait_until(predicate: Predicate, what: str) -> None:
    """`poll` for a thread that is not in an event loop (the sync flavour)."""
    deadline = time.monotonic() + BOUND
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


class TooEarly(AssertionError):
    """`asyncio.wait_for`'s deadline passed before the request reached its point (a busy
    machine). A test may run the case again with a longer one."""

    def __init__(self, deadline: float) -> None:
        super().__init__(
            f"the deadline ({deadline} s) passed before the request reached the await point"
        )
        self.deadline = deadline


async def by_task_cancel(request: RequestFn, reached: Predicate) -> None:
    task = asyncio.ensure_future(request())
    try:
        await poll(reached, "the await point")
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def by_wait_for(request: RequestFn, reached: Predicate, deadline: float) -> None:
    watch = asyncio.ensure_future(poll(reached, "the await point"))
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(request(), deadline)
        if not watch.done():
            raise TooEarly(deadline)
        watch.result()
    finally:
        watch.cancel()


async def by_asyncio_timeout(request: RequestFn, reached: Predicate) -> None:
    """`asyncio.timeout` (3.11+), expired once the point is reached."""
    loop = asyncio.get_running_loop()
    timeouts: List[Any] = []

    async def expire() -> None:
        await poll(reached, "the await point")
        timeouts[0].reschedule(loop.time())

    trigger = asyncio.ensure_future(expire())
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(None) as timeout:  # type: ignore[attr-defined, unused-ignore]
                timeouts.append(timeout)
                await request()
        trigger.result()
    finally:
        trigger.cancel()


async def in_scope(
    request: RequestFn, reached: Predicate, scope: Any, fire: Callable[[Any], None], lib: Any
) -> None:
    """Run `request()` in cancel scope `scope` (anyio's or trio's); `fire(scope)` when reached."""

    async def trigger() -> None:
        await poll(reached, "the await point")
        fire(scope)

    if lib is trio:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trigger)
            with scope:
                await request()
    else:
        async with anyio.create_task_group() as group:
            group.start_soon(trigger)
            with scope:
                await request()
    assert scope.cancelled_caught


def expire_now(scope: Any) -> None:
    scope.deadline = -math.inf


#: (event loop, way): the ways that apply under each event loop.
ASYNC_STYLES = [
    ("asyncio", "task.cancel"),
    ("asyncio", "asyncio.timeout"),
    ("asyncio", "asyncio.wait_for"),
    ("asyncio", "anyio.move_on_after"),
    ("asyncio", "anyio.CancelScope"),
    ("trio", "anyio.move_on_after"),
    ("trio", "anyio.CancelScope"),
    ("trio", "trio.move_on_after"),
    ("trio", "trio.CancelScope"),
]


def cancellers(wait_for_deadline: float) -> Dict[str, Canceller]:
    """Every way, by name; `asyncio.wait_for` with `wait_for_deadline`, and `asyncio.timeout`
    as `asyncio.wait_for` before Python 3.11."""

    def wait_for(request: RequestFn, reached: Predicate) -> Awaitable[None]:
        return by_wait_for(request, reached, wait_for_deadline)

    return {
        "task.cancel": by_task_cancel,
        "asyncio.timeout": by_asyncio_timeout if sys.version_info >= (3, 11) else wait_for,
        "asyncio.wait_for": wait_for,
        "anyio.move_on_after": lambda r, p: in_scope(
            r, p, anyio.move_on_after(math.inf), expire_now, anyio
        ),
        "anyio.CancelScope": lambda r, p: in_scope(
            r, p, anyio.CancelScope(), lambda s: s.cancel(), anyio
        ),
        "trio.move_on_after": lambda r, p: in_scope(
            r, p, trio.move_on_after(math.inf), expire_now, trio
        ),
        "trio.CancelScope": lambda r, p: in_scope(
            r, p, trio.CancelScope(), lambda s: s.cancel(), trio
        ),
    }
