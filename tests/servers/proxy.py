"""A small HTTP proxy (asyncio, in the shared background loop).

- ``CONNECT host:port``: replies ``200 Connection established`` and pipes bytes both ways until
  both sides are done (half-closes are propagated); 502 if the target cannot be reached.
- absolute-form (``GET http://host:port/path HTTP/1.1``): opens a new upstream connection per
  request, sends the request in origin-form (hop-by-hop headers and ``Proxy-*`` headers removed,
  ``Host`` set from the absolute URL as RFC 9112 3.2.2 requires, ``Connection: close`` added),
  relays the request body (Content-Length or chunked) and the response. The client connection
  is kept alive: the response is relayed with its own framing
  (Content-Length, chunked, or none for HEAD/1xx/204/304); only a close-delimited upstream
  response, an HTTP/1.0 client or ``Connection: close`` from the client close it afterwards.
- with ``auth=("user", "pass")``, every request (CONNECT or forward) needs
  ``Proxy-Authorization: Basic ...``; otherwise ``407`` with ``Proxy-Authenticate`` and the
  connection is closed.
- with ``ssl_context``, the proxy itself listens over TLS.

Counters: ``.connections`` (accepted client connections), ``.connects`` (CONNECT requests),
``.forwards`` (forwarded requests), ``.last_headers`` (headers of the last request received, as
``(name, value)`` str tuples, original case), ``.request_lines`` (every request line received).
``reset()`` zeroes them.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import urllib.parse
from typing import List, Optional, Tuple

from .loop import BackgroundLoop

logger = logging.getLogger("tests.servers.proxy")

MAX_HEAD = 64 * 1024
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
}


class _Head:
    def __init__(self, start_line: str, headers: List[Tuple[str, str]]) -> None:
        self.start_line = start_line
        self.headers = headers

    def get(self, name: str) -> Optional[str]:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def tokens(self, name: str) -> List[str]:
        return [
            token.strip().lower()
            for key, value in self.headers
            if key.lower() == name
            for token in value.split(",")
        ]


async def _read_head(reader: asyncio.StreamReader) -> Optional[_Head]:
    try:
        data = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ConnectionError("EOF in message head")
        return None
    except asyncio.LimitOverrunError:
        raise ConnectionError("message head too large")
    lines = data[:-4].decode("latin-1").split("\r\n")
    headers: List[Tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ConnectionError(f"bad header line {line!r}")
        headers.append((name.strip(), value.strip()))
    return _Head(lines[0], headers)


def _serialize(start_line: str, headers: List[Tuple[str, str]]) -> bytes:
    lines = [start_line, *(f"{name}: {value}" for name, value in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


async def _relay_body(
    head: _Head,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    until_eof: bool,
) -> None:
    """Copy a message body framed as ``head`` says; without framing, until EOF if asked."""
    if "chunked" in head.tokens("transfer-encoding"):
        while True:
            line = await reader.readuntil(b"\r\n")
            writer.write(line)
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:
                    trailer = await reader.readuntil(b"\r\n")
                    writer.write(trailer)
                    if trailer == b"\r\n":
                        break
                break
            writer.write(await reader.readexactly(size + 2))
            await writer.drain()
    elif head.get("content-length") is not None:
        remaining = int(head.get("content-length") or 0)
        while remaining:
            data = await reader.read(min(remaining, 65536))
            if not data:
                raise ConnectionError("EOF in body")
            writer.write(data)
            remaining -= len(data)
            await writer.drain()
    elif until_eof:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        else:  # TLS transports cannot half-close
            writer.close()
    except (ConnectionError, OSError):
        writer.close()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    except (OSError, asyncio.TimeoutError, ssl.SSLError):
        pass


class HTTPProxy:
    def __init__(
        self,
        bg: BackgroundLoop,
        *,
        auth: Optional[Tuple[str, str]] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        self._bg = bg
        self.host = "127.0.0.1"
        self.auth = auth
        self.tls = ssl_context is not None
        self._expected_auth: Optional[str] = None
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self._expected_auth = f"Basic {token}"
        self.reset()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.AbstractServer = bg.run(
            asyncio.start_server(self._handle, self.host, 0, ssl=ssl_context, limit=MAX_HEAD)
        )
        self.port: int = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def reset(self) -> None:
        self.connections = 0
        self.connects = 0
        self.forwards = 0
        self.last_headers: List[Tuple[str, str]] = []
        self.request_lines: List[str] = []

    def close(self) -> None:
        self._bg.run(self._aclose())

    async def _aclose(self) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        await self._server.wait_closed()

    def __repr__(self) -> str:
        return f"<HTTPProxy {self.url} auth={self.auth is not None}>"

    # -- connection handling ------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while await self._handle_one(reader, writer):
                pass
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            logger.debug("proxy connection ended: %r", exc)
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            await _close(writer)

    async def _reply(
        self,
        writer: asyncio.StreamWriter,
        status: str,
        extra: Optional[List[Tuple[str, str]]] = None,
    ) -> None:
        body = status.encode()
        headers = [
            *(extra or []),
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
        writer.write(_serialize(f"HTTP/1.1 {status}", headers) + body)
        await writer.drain()

    async def _handle_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; True if the client connection stays open for another one."""
        head = await _read_head(reader)
        if head is None:
            return False
        self.last_headers = list(head.headers)
        self.request_lines.append(head.start_line)
        try:
            method, target, version = head.start_line.split(" ")
        except ValueError:
            await self._reply(writer, "400 Bad Request")
            return False

        if self._expected_auth is not None and head.get("proxy-authorization") != (
            self._expected_auth
        ):
            await self._reply(
                writer,
                "407 Proxy Authentication Required",
                [("Proxy-Authenticate", 'Basic realm="proxy"')],
            )
            return False

        if method == "CONNECT":
            self.connects += 1
            await self._tunnel(target, reader, writer)
            return False

        parsed = urllib.parse.urlsplit(target)
        if parsed.scheme != "http" or not parsed.hostname:
            await self._reply(writer, "400 Bad Request")
            return False
        self.forwards += 1
        return await self._forward(head, method, parsed, version, reader, writer)

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, sep, port = target.rpartition(":")
        try:
            if not sep:
                raise ValueError(target)
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port)), 5.0
            )
        except (OSError, ValueError, asyncio.TimeoutError):
            await self._reply(writer, "502 Bad Gateway")
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            await _close(up_writer)

    async def _forward(
        self,
        head: _Head,
        method: str,
        url: urllib.parse.SplitResult,
        version: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        connection_tokens = head.tokens("connection") + head.tokens("proxy-connection")
        keep_alive = version == "HTTP/1.1" and "close" not in connection_tokens
        dropped = HOP_BY_HOP | set(connection_tokens)
        dropped.discard("transfer-encoding")
        dropped.add("host")
        headers = [(name, value) for name, value in head.headers if name.lower() not in dropped]
        headers.insert(0, ("Host", url.netloc.rpartition("@")[2]))
        headers.append(("Connection", "close"))
        origin_form = url.path or "/"
        if url.query:
            origin_form += "?" + url.query

        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(url.hostname, url.port or 80), 5.0
            )
        except (OSError, asyncio.TimeoutError):
            await self._reply(writer, "502 Bad Gateway")
            return False
        try:
            up_writer.write(_serialize(f"{method} {origin_form} HTTP/1.1", headers))
            await _relay_body(head, reader, up_writer, until_eof=False)

            while True:  # skip (relay) interim 1xx responses
                response = await _read_head(up_reader)
                if response is None:
                    raise ConnectionError("upstream closed without a response")
                status = int(response.start_line.split(" ")[1])
                if status >= 200 or status == 101:
                    break
                writer.write(_serialize(response.start_line, response.headers))

            no_body = method == "HEAD" or status in (204, 304)
            framed = no_body or (
                "chunked" in response.tokens("transfer-encoding")
                or response.get("content-length") is not None
            )
            keep_alive = keep_alive and framed and status != 101
            response_headers = [
                (name, value)
                for name, value in response.headers
                if name.lower() not in ("connection", "keep-alive", "proxy-connection")
            ]
            if not keep_alive:
                response_headers.append(("Connection", "close"))
            writer.write(_serialize(response.start_line, response_headers))
            if not no_body:
                await _relay_body(response, up_reader, writer, until_eof=True)
            await writer.drain()
        finally:
            await _close(up_writer)
        return keep_alive
