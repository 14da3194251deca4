"""What `httpcore -v` prints (the trace of a request), and the progress bar of `httpcore -o`.

Kept apart from the command line itself (`_cli.py`); neither module is imported by
``import httpcore``.
"""

from __future__ import annotations

import base64
import os
import re
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

Headers = Sequence[Tuple[bytes, bytes]]

# Server-controlled text (headers, reason phrases, error messages) must not be able to move
# the cursor or recolour the terminal: control characters are shown escaped.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with control characters escaped (``\\x1b``...), safe to print on a terminal."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def text(value: bytes) -> str:
    """Bytes from the wire as printable text."""
    return printable(value.decode("latin-1"))


def host_port(host: str, port: Any) -> str:
    """``host:port``, with IPv6 addresses in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Masker:
    """Takes the proxy password out of everything the command line prints."""

    def __init__(self) -> None:
        self.secrets: List[str] = []

    def add(self, username: str, password: str) -> None:
        """Mask `password` (as it appears in a URL and in a Basic credential) from now on."""
        if password:
            # The credentials as the proxy receives them (see `_cli._proxy`).
            token = base64.b64encode(os.fsencode(f"{username}:{password}")).decode()
            self.secrets += [token, f":{password}@"]

    def __call__(self, line: str) -> str:
        for secret in self.secrets:
            replacement = "***" if not secret.startswith(":") else ":***@"
            line = line.replace(secret, replacement)
        return line

    def header_value(self, name: bytes, value: bytes) -> str:
        if name.lower() == b"proxy-authorization":
            scheme, _, _ = value.partition(b" ")
            return f"{text(scheme)} ***"
        return text(value)


def _addr(value: Any) -> str:
    if isinstance(value, tuple) and len(value) >= 2:
        return host_port(str(value[0]), value[1])
    return str(value)


def _describe_stream(stream: Any) -> str:
    """Peer/local addresses and TLS parameters of a network stream, as far as it tells."""
    parts = []
    get = getattr(stream, "get_extra_info", None)
    if get is None:
        return ""
    server, client = get("server_addr"), get("client_addr")
    if server is not None:
        parts.append(f"to {_addr(server)}")
    if client is not None:
        parts.append(f"from {_addr(client)}")
    ssl_object = get("ssl_object")
    if ssl_object is not None:
        cipher = ssl_object.cipher()
        parts.append(" ".join(filter(None, [ssl_object.version(), cipher and cipher[0]])))
        parts.append(f"ALPN {ssl_object.selected_alpn_protocol() or '(none)'}")
        subject = _peer_subject(ssl_object)
        if subject:
            parts.append(f"certificate {subject}")
    return ", ".join(parts)


def _peer_subject(ssl_object: Any) -> str:
    try:
        certificate = ssl_object.getpeercert()
    except (ValueError, AttributeError):
        return ""
    if not certificate:  # not verified (-k): the details are not available
        return ""
    names = [f"{key}={value}" for rdn in certificate.get("subject", ()) for key, value in rdn] or [
        f"{kind}:{value}" for kind, value in certificate.get("subjectAltName", ())
    ]
    expires = certificate.get("notAfter")
    return ", ".join(names) + (f" (expires {expires})" if expires else "")


def _settings(event: Any) -> str:
    changed = getattr(event, "changed_settings", None)
    if not changed:
        return ""
    items = []
    for setting, change in changed.items():
        name = getattr(setting, "name", str(setting))
        items.append(f"{name}={getattr(change, 'new_value', change)}")
    return " ".join(items)


class Tracer:
    """The `trace` request extension of the command line.

    It always records what the error messages need (the step in progress, the address being
    connected to, timings); with `verbose` it also prints every event to `out` with the
    time elapsed since `start`, in milliseconds.
    """

    def __init__(
        self, verbose: bool, out: TextIO, masker: Masker, start: Optional[float] = None
    ) -> None:
        self.verbose = verbose
        self.out = out
        self.mask = masker
        self.start = time.perf_counter() if start is None else start
        self.step = ""  # the step of the last event, e.g. "connection.start_tls"
        self.peer = ""  # host:port of the last TCP connection attempt
        self.peer_event = ""  # the event that made it ("connection" or "socks")
        self.tls_name = ""  # server name of the last TLS handshake
        self.connections = 0
        self.times: Dict[str, float] = {}  # first time of some milestones
        self.body_bytes = 0  # updated by the caller as body chunks arrive
        self.progress: Optional[Progress] = None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.start) * 1000

    def line(self, message: str, at: Optional[float] = None) -> None:
        """Print one line of the trace (`at`: milliseconds since the start)."""
        if self.progress is not None:
            self.progress.clear()
        ms = self.elapsed_ms() if at is None else at
        self.out.write(self.mask(f"{ms:10.3f} ms  {message}") + "\n")
        self.out.flush()

    def __call__(self, event: str, info: Dict[str, Any]) -> None:
        ms = self.elapsed_ms()
        step, _, phase = event.rpartition(".")
        self.step = step
        prefix, _, name = step.partition(".")
        if name == "connect_tcp" and phase == "started":
            self.peer = host_port(str(info.get("host")), info.get("port"))
            self.peer_event = prefix
        elif name == "start_tls" and phase == "started":
            self.tls_name = str(info.get("server_hostname"))
        elif name == "connect_tcp" and phase == "complete":
            self.connections += 1
        if phase == "complete":
            key = {"connect_tcp": "connect", "start_tls": "tls"}.get(name)
            if name == "receive_response_headers":
                key = "first byte"
            if key is not None:
                self.times[key] = ms
        if not self.verbose:
            return
        self.line(event + _details(name, phase, info, self), ms)
        if phase == "started" and name == "send_request_headers":
            self._request_head(info, ms)
        elif phase == "complete" and name == "receive_response_headers":
            self._response_head(info.get("return_value"), ms)

    def _request_head(self, info: Dict[str, Any], ms: float) -> None:
        request = info.get("request")
        if request is None:
            return
        version = "HTTP/2" if "stream_id" in info else "HTTP/1.1"
        self.line(f"> {text(request.method)} {text(request.url.target)} {version}", ms)
        for name, value in request.headers:
            self.line(f"> {text(name)}: {self.mask.header_value(name, value)}", ms)

    def _response_head(self, value: Any, ms: float) -> None:
        if not isinstance(value, tuple):
            return
        if len(value) == 4:  # HTTP/1.x: (http_version, status, reason_phrase, headers)
            version, status, reason, headers = value
            self.line(f"< {text(version)} {status} {text(reason)}".rstrip(), ms)
        else:  # HTTP/2: (status, headers)
            status, headers = value
            self.line(f"< HTTP/2 {status}", ms)
        for name, header_value in headers:
            self.line(f"< {text(name)}: {self.mask.header_value(name, header_value)}", ms)

    def summary(self, http_version: str, sent: int) -> None:
        """The last line of ``-v``: totals and the times of the milestones."""
        total = self.elapsed_ms()
        parts = [f"total {total:.3f} ms"]
        for key in ("connect", "tls", "first byte"):
            if key in self.times:
                parts.append(f"{key} {self.times[key]:.3f} ms")
        seconds = total / 1000
        rate = self.body_bytes / seconds if seconds > 0 else 0.0
        parts.append(f"sent {_count(sent, 'byte')}")
        parts.append(f"received {_count(self.body_bytes, 'byte')} ({format_bytes(rate)}/s)")
        parts.append(http_version)
        parts.append(_count(self.connections, "connection"))
        self.line("* " + ", ".join(parts), total)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _details(name: str, phase: str, info: Dict[str, Any], tracer: Tracer) -> str:
    """The useful part of an event's info dict, as text after the event name."""
    parts: List[str] = []
    if phase == "failed":
        exc = info.get("exception")
        parts.append(f"{type(exc).__name__}: {printable(str(exc))}")
    elif name == "connect_tcp" and phase == "started":
        parts.append(host_port(str(info.get("host")), info.get("port")))
    elif name in ("connect_tcp", "start_tls", "setup_socks5_connection", "setup_socks4_connection"):
        if phase == "complete":
            parts.append(_describe_stream(info.get("return_value")))
        elif name == "start_tls":
            parts.append(f"server name {info.get('server_hostname')}")
        else:
            auth = " with username/password" if info.get("auth") else ""
            parts.append(f"to {host_port(str(info.get('host')), info.get('port'))}{auth}")
    elif name == "receive_remote_settings" and phase == "complete":
        parts.append(_settings(info.get("return_value")))
    elif name == "receive_response_body" and phase == "complete":
        parts.append(_count(tracer.body_bytes, "byte"))
    if "stream_id" in info:
        parts.append(f"stream {info['stream_id']}")
    if name in ("connect_tcp", "start_tls") and phase == "started" and info.get("timeout"):
        parts.append(f"timeout {info['timeout']} s")
    detail = ", ".join(part for part in parts if part)
    return f"  {detail}" if detail else ""


def format_bytes(count: float) -> str:
    """`count` bytes in B, KiB, MiB or GiB."""
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


class Progress:
    """A one-line progress bar on a terminal: bytes, total (when known), percentage, rate."""

    INTERVAL = 0.1  # seconds between redraws

    def __init__(self, out: TextIO, total: Optional[int]) -> None:
        self.out = out
        self.total = total
        self.received = 0
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.shown = False

    def update(self, received: int) -> None:
        self.received = received
        now = time.perf_counter()
        if now - self.last_draw >= self.INTERVAL:
            self.last_draw = now
            self.draw(now)

    def draw(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-6)
        rate = f"{format_bytes(self.received / elapsed)}/s"
        width = _terminal_width(self.out)
        if self.total:
            fraction = min(self.received / self.total, 1.0)
            head = f"{format_bytes(self.received)} / {format_bytes(self.total)} {fraction:4.0%}"
            bar_width = max(width - len(head) - len(rate) - 6, 0)
            filled = int(bar_width * fraction)
            bar = f" [{'#' * filled}{'.' * (bar_width - filled)}]" if bar_width >= 10 else ""
            line = f"{head}{bar}  {rate}"
        else:
            line = f"{format_bytes(self.received)}  {rate}"
        self.out.write("\r" + line[: width - 1] + "\x1b[K")
        self.out.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self.shown = False

    def finish(self) -> None:
        self.draw(time.perf_counter())
        self.out.write("\n")
        self.out.flush()
        self.shown = False


def _terminal_width(out: TextIO) -> int:
    try:
        return os.get_terminal_size(out.fileno()).columns or 80
    except (OSError, ValueError, AttributeError):
        return 80


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
