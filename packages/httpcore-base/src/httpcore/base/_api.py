"""`httpcore.request()` and `httpcore.stream()`: one-off requests on a fresh pool."""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Union

from ._models import URL, Content, HeaderTypes, Response
from ._pool import ConnectionPool


def request(
    method: Union[bytes, str],
    url: Union[URL, bytes, str],
    *,
    headers: HeaderTypes = None,
    content: Content = None,
    extensions: Optional[dict] = None,  # type: ignore[type-arg]
) -> Response:
    """Send one request on a fresh pool and return the response, body read."""
    with ConnectionPool() as pool:
        response: Response = pool.request(
            method=method, url=url, headers=headers, content=content, extensions=extensions
        )
        return response


@contextlib.contextmanager
def stream(
    method: Union[bytes, str],
    url: Union[URL, bytes, str],
    *,
    headers: HeaderTypes = None,
    content: Content = None,
    extensions: Optional[dict] = None,  # type: ignore[type-arg]
) -> Iterator[Response]:
    """Send one request on a fresh pool and yield the response unread; close both on exit."""
    with ConnectionPool() as pool:
        with pool.stream(
            method=method, url=url, headers=headers, content=content, extensions=extensions
        ) as response:
            yield response
