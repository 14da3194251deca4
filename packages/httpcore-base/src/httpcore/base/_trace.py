"""The `trace` request extension and the DEBUG log records, as generator helpers.

A traced step emits "<prefix>.<step>.started", then ".complete" or ".failed". When the request
has no trace callback and DEBUG logging is off, the step runs untraced at the cost of one
`yield from`.
"""

from __future__ import annotations

import logging
from typing import Callable, Generator, Mapping, Optional, TypeVar, Union

from ._models import Request
from ._ops import Gen, Op, Sent, T, TraceCallback, trace

Y = TypeVar("Y")


def _emit(
    logger: logging.Logger,
    debug: bool,
    callback: Optional[TraceCallback],
    prefix: str,
    event: str,
    info: Mapping[str, object],
) -> Gen[None]:
    if debug:
        message = event
        if info and info != {"return_value": None}:
            message += " " + " ".join(f"{key}={value!r}" for key, value in info.items())
        logger.debug(message)
    if callback is not None:
        yield from trace(callback, f"{prefix}.{event}", info)


def is_traced(logger: logging.Logger, request: Optional[Request]) -> bool:
    """True when the step would emit anything (so callers can skip building info dicts)."""
    return (request is not None and "trace" in request.extensions) or logger.isEnabledFor(
        logging.DEBUG
    )


def traced(
    logger: logging.Logger,
    step: str,
    request: Optional[Request],
    info: Mapping[str, object],
    gen: Generator[Y, Sent, T],
    lost: Optional[Callable[[T], Gen[None]]] = None,
) -> Generator[Union[Y, Op], Sent, T]:
    """`gen` as the traced step `step` of `request` (None: log only).

    Untraced (no callback, DEBUG off), this is `gen` itself: no extra generator layer.
    `lost` disposes of the step's result (a connected stream, say) when the `.complete`
    event fails (a callback that raises or is cancelled): the caller never gets it.
    """
    callback: Optional[TraceCallback] = (
        request.extensions.get("trace") if request is not None else None
    )
    debug = logger.isEnabledFor(logging.DEBUG)
    if callback is None and not debug:
        return gen
    return _traced(logger, step, info, gen, callback, debug, lost)


def _traced(
    logger: logging.Logger,
    step: str,
    info: Mapping[str, object],
    gen: Generator[Y, Sent, T],
    callback: Optional[TraceCallback],
    debug: bool,
    lost: Optional[Callable[[T], Gen[None]]],
) -> Generator[Union[Y, Op], Sent, T]:
    prefix = logger.name.rsplit(".", 1)[-1]
    yield from _emit(logger, debug, callback, prefix, step + ".started", info)
    try:
        value = yield from gen
    except Exception as exc:
        yield from _emit(logger, debug, callback, prefix, step + ".failed", {"exception": exc})
        raise
    try:
        yield from _emit(
            logger, debug, callback, prefix, step + ".complete", {"return_value": value}
        )
    except BaseException:
        if lost is not None:
            yield from lost(value)
        raise
    return value
