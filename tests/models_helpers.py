"""Shared by the model tests (imported by tests/test_models_*.py): bodies that record whether
they were closed, and `raises_exact`, `pytest.raises` requiring the whole message."""

from __future__ import annotations

import re
from typing import Any, AsyncIterator, Iterator

import pytest

# ---------------------------------------------------------------------------------------------
# Test streams
# ---------------------------------------------------------------------------------------------


class SyncChunks:
    """A sync-only body that records whether it was closed."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks

    def close(self) -> None:
        self.closed = True


class AsyncChunks:
    """An async-only body that records whether it was closed."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


class SyncNoClose:
    def __iter__(self) -> Iterator[bytes]:
        yield b"x"


class AsyncNoClose:
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"x"


def raises_exact(exc: type[BaseException], message: str) -> Any:
    """`pytest.raises` that requires the whole message to match exactly."""
    return pytest.raises(exc, match="^" + re.escape(message) + "$")
