"""The ASGI application served by the `server` and `tls_server` fixtures (through hypercorn).

Endpoints (any method unless noted):

- ``GET /``                       200 text/plain ``Hello, world!``
- ``/echo_headers``               JSON ``{"headers": [[name, value], ...]}``: the request headers as
                                  the server saw them (lower-case names, latin-1 decoded; over
                                  HTTP/2 hypercorn maps :authority to host and drops the other
                                  pseudo-headers)
- ``/echo``                       echoes the request body back (``x-received-length`` header)
- ``/bytes/{n}``                  ``n`` bytes of ``b"x"``, with Content-Length
- ``/stream/{chunks}/{size}``     ``chunks`` body parts of ``size`` bytes, no Content-Length
                                  (chunked transfer encoding over HTTP/1.1)
- ``/status/{code}``              empty response with that status (200-599)
- ``/close``                      "closing" with ``Connection: close`` (HTTP/1.x only; the header
                                  is illegal in HTTP/2, so there it is a plain 200)
- ``/slow/{ms}``                  sleeps ``ms`` milliseconds, then ``ok``
- ``/http_version``               the HTTP version the server saw: ``1.1``, ``1.0`` or ``2``
- anything else                   404

HEAD requests get the GET headers without a body. Request bodies are always read fully.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

Scope = Dict[str, Any]
Message = Dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = List[Tuple[bytes, bytes]]

MAX_BYTES = 256 * 1024 * 1024


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _respond(
    send: Send,
    status: int,
    body: bytes = b"",
    content_type: Optional[bytes] = b"text/plain",
    extra_headers: Optional[Headers] = None,
) -> None:
    headers: Headers = []
    if content_type is not None:
        headers.append((b"content-type", content_type))
    headers.append((b"content-length", str(len(body)).encode()))
    headers.extend(extra_headers or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _strip_body(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return wrapped


def _int_arg(value: str) -> Optional[int]:
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number >= 0 else None


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":  # pragma: no cover - websockets are not served
        return

    if scope["method"] == "HEAD":
        # HEAD responses carry the headers of the GET response but never a body.
        send = _strip_body(send)

    path: str = scope["path"]
    parts = path.strip("/").split("/")
    http_version: str = scope.get("http_version", "1.1")

    if path == "/":
        await _read_body(receive)
        await _respond(send, 200, b"Hello, world!")
    elif path == "/echo_headers":
        await _read_body(receive)
        seen = [
            [name.decode("latin-1"), value.decode("latin-1")] for name, value in scope["headers"]
        ]
        body = json.dumps({"headers": seen}).encode()
        await _respond(send, 200, body, b"application/json")
    elif path == "/echo":
        body = await _read_body(receive)
        length = str(len(body)).encode()
        await _respond(
            send, 200, body, b"application/octet-stream", [(b"x-received-length", length)]
        )
    elif parts[0] == "bytes" and len(parts) == 2 and _int_arg(parts[1]) is not None:
        await _read_body(receive)
        size = min(int(parts[1]), MAX_BYTES)
        await _respond(send, 200, b"x" * size, b"application/octet-stream")
    elif (
        parts[0] == "stream"
        and len(parts) == 3
        and _int_arg(parts[1]) is not None
        and _int_arg(parts[2]) is not None
    ):
        await _read_body(receive)
        chunks, size = int(parts[1]), int(parts[2])
        headers = [(b"content-type", b"application/octet-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        chunk = b"x" * size
        for _ in range(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif parts[0] == "status" and len(parts) == 2:
        await _read_body(receive)
        code = _int_arg(parts[1])
        if code is None or not 200 <= code <= 599:
            await _respond(send, 400, b"status must be 200-599")
        else:
            no_body = code in (204, 304)
            headers = [] if no_body else [(b"content-length", b"0")]
            await send({"type": "http.response.start", "status": code, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
    elif path == "/close":
        await _read_body(receive)
        extra = [(b"connection", b"close")] if http_version.startswith("1") else []
        await _respond(send, 200, b"closing", extra_headers=extra)
    elif parts[0] == "slow" and len(parts) == 2 and _int_arg(parts[1]) is not None:
        await _read_body(receive)
        await asyncio.sleep(int(parts[1]) / 1000)
        await _respond(send, 200, b"ok")
    elif path == "/http_version":
        await _read_body(receive)
        await _respond(send, 200, http_version.encode())
    else:
        await _read_body(receive)
        await _respond(send, 404, b"Not Found")
