"""The ``httpcore`` command line: send one request, print the response (docs/cli.md).

``python -m httpcore URL`` or the ``httpcore`` console script. Standard library only (argparse),
so the meta-package needs no extra for it; ``import httpcore`` does not import this module.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import ssl
import sys
import time
import traceback
import urllib.parse
from typing import IO, Any, Dict, List, NoReturn, Optional, Sequence, Tuple

from httpcore.base import (
    URL,
    ConnectError,
    ConnectionPool,
    ConnectTimeout,
    LocalProtocolError,
    NetworkError,
    PoolTimeout,
    ProtocolError,
    Proxy,
    ProxyError,
    ReadError,
    ReadTimeout,
    TimeoutException,
    UnsupportedProtocol,
    WriteError,
    WriteTimeout,
    default_ssl_context,
)
from httpcore.base._version import __version__

from ._cli_trace import Masker, Progress, Tracer, host_port, printable, stderr_is_terminal, text

# Exit codes. Where curl has a code for the same failure, it is the same number.
OK = 0
UNSUPPORTED_PROTOCOL = 1
USAGE = 2  # argparse's own code for a bad command line
BAD_URL = 3
MISSING_CAPABILITY = 4  # --http2 without httpcore[http2], a SOCKS proxy without httpcore[socks]
RESOLVE_FAILED = 6
CONNECT_FAILED = 7
REMOTE_PROTOCOL_ERROR = 8
HTTP_ERROR = 22  # --fail and a status >= 400
OUTPUT_FAILED = 23
INPUT_FAILED = 26
TIMEOUT = 28
LOCAL_PROTOCOL_ERROR = 43
TLS_FAILED = 35
SEND_FAILED = 55
RECEIVE_FAILED = 56
CERTIFICATE_FAILED = 60
CA_FILE_FAILED = 77
PROXY_FAILED = 97
INTERNAL_ERROR = 70  # a bug: the traceback is printed
INTERRUPTED = 130

CAPABILITIES = (("asyncio/trio", "httpcore.aio"), ("http2", "h2"), ("socks", "socksio"))
PROXY_SCHEMES = ("http", "https", "socks5", "socks5h", "socks4", "socks4a")
PROXY_DEFAULT_PORTS = {"http": 80, "https": 443}  # SOCKS: 1080


class Failure(Exception):
    """A failure the command line reports as one line on stderr, exiting with `code`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="httpcore",
        description="Send one HTTP request with httpcore and write the response body to stdout.",
        epilog="Exit codes and examples: see docs/cli.md.",
    )
    parser.add_argument("url", help="http:// or https:// URL")
    parser.add_argument("-X", "--method", help="request method (default GET, or POST with -d)")
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="add a header (repeatable); 'NAME:' removes a default header, 'NAME;' sends it empty",
    )
    parser.add_argument(
        "-d",
        "--data",
        action="append",
        metavar="DATA",
        help="request body: DATA, @FILE or @- (stdin); sent as is; repeated -d are joined by '&'",
    )
    parser.add_argument("-I", "--head", action="store_true", help="send HEAD, print the head")
    version = parser.add_mutually_exclusive_group()
    version.add_argument("--http1-only", action="store_true", help="HTTP/1.1 only (default)")
    version.add_argument(
        "--http2", action="store_true", help="offer HTTP/2 through TLS ALPN (https:// only)"
    )
    version.add_argument(
        "--http2-prior-knowledge",
        action="store_true",
        help="HTTP/2 without negotiation, also over plain http://",
    )
    parser.add_argument(
        "-x",
        "--proxy",
        metavar="URL",
        help="proxy: http://, https://, socks5://, socks5h://, socks4:// or socks4a://,"
        " with optional user:password@",
    )
    parser.add_argument("--cacert", metavar="FILE", help="trust the CA certificates in FILE (PEM)")
    parser.add_argument(
        "-k", "--insecure", action="store_true", help="do not verify TLS certificates"
    )
    parser.add_argument(
        "--timeout", type=_seconds, metavar="SECONDS", help="timeout of every network operation"
    )
    parser.add_argument(
        "--connect-timeout", type=_seconds, metavar="SECONDS", help="timeout of connecting"
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write the body to FILE")
    parser.add_argument(
        "-i", "--include", action="store_true", help="write the response head before the body"
    )
    parser.add_argument(
        "-f", "--fail", action="store_true", help="exit with 22, writing nothing, on status >= 400"
    )
    parser.add_argument(
        "-v",
        "--trace",
        "--verbose",
        dest="verbose",
        action="store_true",
        help="print every trace event with the time since the start, and a summary, to stderr",
    )
    parser.add_argument(
        "--no-progress-meter", action="store_true", help="no progress bar with -o on a terminal"
    )
    parser.add_argument(
        "-V", "--version", action=_Version, nargs=0, help="show the version and capabilities"
    )
    return parser


class _Version(argparse.Action):
    """``--version``: looks for the installed capabilities only when asked."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> NoReturn:
        capabilities = [
            name for name, module in CAPABILITIES if importlib.util.find_spec(module) is not None
        ]
        sys.stdout.write(f"httpcore {__version__} ({', '.join(capabilities) or 'HTTP/1.1 only'})\n")
        parser.exit()


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}")
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {value!r}")
    return seconds


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with `argv` (default ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)
    masker = Masker()
    try:
        return run(args, masker)
    except Failure as failure:
        sys.stderr.write(masker(f"httpcore: error: {printable(failure.message)}") + "\n")
        return failure.code
    except KeyboardInterrupt:
        sys.stderr.write("\nhttpcore: interrupted\n")
        return INTERRUPTED
    except Exception as exc:  # a bug: show where, but still as the documented exit code
        traceback.print_exc()
        sys.stderr.write(masker(f"httpcore: internal error (a bug): {exc!r}") + "\n")
        return INTERNAL_ERROR


def run(args: argparse.Namespace, masker: Masker) -> int:
    url = _check_url(args.url)
    proxy, proxy_label = _proxy(args, masker)
    method = args.method or ("HEAD" if args.head else "POST" if args.data is not None else "GET")
    body = _body(args.data)
    headers = _headers(args.header)
    if args.http2 or args.http2_prior_knowledge:
        _require("httpcore.http2", "HTTP/2 support", "http2")
    timeouts = {key: args.timeout for key in ("connect", "read", "write", "pool")}
    if args.connect_timeout is not None:
        timeouts["connect"] = args.connect_timeout
    ssl_context = _ssl_context(args) if url.scheme == b"https" else None
    tracer = Tracer(args.verbose, sys.stderr, masker, time.perf_counter())
    if args.verbose:
        via = f" via proxy {proxy_label}" if proxy_label else ""
        tracer.line(f"* {method} {printable(_without_password(args.url))}{via}")
    pool = ConnectionPool(
        ssl_context=ssl_context,
        proxy=proxy,
        http1=not args.http2_prior_knowledge,
        http2=args.http2 or args.http2_prior_knowledge,
    )
    extensions = {"timeout": timeouts, "trace": tracer}
    try:
        with pool:
            with pool.stream(
                method, url, headers=headers, content=body, extensions=extensions
            ) as response:
                code = _write_response(args, response, tracer)
    except Failure:
        raise
    except (TimeoutException, NetworkError, ProtocolError, ProxyError, UnsupportedProtocol) as exc:
        raise _network_failure(exc, tracer, timeouts, proxy_label) from None
    except RuntimeError as exc:  # a capability the pool needed is not installed
        if "pip install" not in str(exc):
            raise
        raise Failure(MISSING_CAPABILITY, str(exc)) from None
    if args.verbose:
        version = response.extensions.get("http_version", b"HTTP/1.1").decode("ascii", "replace")
        tracer.summary(version, len(body or b""))
    return code


def _check_url(value: str) -> URL:
    try:
        url = URL(value)
    except (TypeError, ValueError) as exc:
        raise Failure(BAD_URL, f"malformed URL {_without_password(value)!r}: {exc}") from None
    if url.scheme in (b"http", b"https") and not url.host:
        raise Failure(BAD_URL, f"malformed URL {_without_password(value)!r}: no host")
    return url


def _proxy(args: argparse.Namespace, masker: Masker) -> Tuple[Optional[Proxy], str]:
    """The `Proxy` of ``--proxy``, and its URL with the password masked."""
    if args.proxy is None:
        return None, ""
    try:
        # Like curl, a proxy given without a scheme is an HTTP proxy.
        value = args.proxy if "://" in args.proxy else f"http://{args.proxy}"
        parts = urllib.parse.urlsplit(value)
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        raise Failure(BAD_URL, f"malformed proxy URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in PROXY_SCHEMES:
        raise Failure(
            UNSUPPORTED_PROTOCOL,
            f"unsupported proxy scheme {scheme + '://' if scheme else '(none)'};"
            f" use one of {', '.join(s + '://' for s in PROXY_SCHEMES)}",
        )
    if not host:
        raise Failure(BAD_URL, "malformed proxy URL: no host")
    username = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    masker.add(username, password)
    port = port or PROXY_DEFAULT_PORTS.get(scheme, 1080)
    label = f"{scheme}://{username + (':***' if password else '') + '@' if username else ''}"
    label += host_port(host, port)
    if scheme.startswith("socks"):
        _require("httpcore.socks", "SOCKS proxy support", "socks")
    auth = (os.fsencode(username), os.fsencode(password)) if username else None
    context = _ssl_context(args) if scheme == "https" else None
    try:
        proxy = Proxy(f"{scheme}://{host_port(host, port)}", auth=auth, ssl_context=context)
    except (TypeError, ValueError) as exc:
        raise Failure(BAD_URL, f"malformed proxy URL: {exc}") from None
    return proxy, label


def _without_password(url: str) -> str:
    """`url` with the password of its user info (if any) replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not (sep and at and ":" in userinfo) or "/" in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{host}"


def _require(module: str, what: str, extra: str) -> None:
    """Fail with a clear message if the capability `module` (or its library) is missing."""
    try:
        __import__(module)
    except ImportError:
        raise Failure(
            MISSING_CAPABILITY, f"{what} is not installed: pip install 'httpcore[{extra}]'"
        ) from None


def _body(data: Optional[List[str]]) -> Optional[bytes]:
    if data is None:
        return None
    parts = []
    for item in data:
        if item == "@-":
            parts.append(sys.stdin.buffer.read())
        elif item.startswith("@"):
            try:
                with open(item[1:], "rb") as file:
                    parts.append(file.read())
            except OSError as exc:
                raise Failure(INPUT_FAILED, f"could not read the body from {item[1:]!r}: {exc}")
        else:
            parts.append(os.fsencode(item))
    return b"&".join(parts)


def _headers(values: List[str]) -> List[Tuple[bytes, bytes]]:
    """The default headers, overridden, removed or added to by the ``-H`` options."""
    headers = [(b"User-Agent", f"httpcore/{__version__}".encode()), (b"Accept", b"*/*")]
    for value in values:
        raw = os.fsencode(value)
        colon, semicolon = raw.find(b":"), raw.find(b";")
        if semicolon > 0 and (colon < 0 or semicolon < colon) and not raw[semicolon + 1 :].strip():
            name, content, remove = raw[:semicolon].strip(), b"", False  # 'Name;': empty value
        elif colon > 0:
            name, content = raw[:colon].strip(), raw[colon + 1 :].strip()
            remove = not content  # 'Name:': remove
        else:
            _usage(f"argument -H/--header: expected 'NAME: VALUE', got {value!r}")
        headers = [(n, v) for n, v in headers if n.lower() != name.lower()]
        if not remove:
            headers.append((name, content))
    return headers


def _usage(message: str) -> NoReturn:
    build_parser().error(message)


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext:
    try:
        if args.cacert:
            context = ssl.create_default_context(cafile=args.cacert)
        else:
            context = default_ssl_context()
    except (OSError, ssl.SSLError) as exc:
        raise Failure(CA_FILE_FAILED, f"could not load the CA file {args.cacert!r}: {exc}")
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _write_response(args: argparse.Namespace, response: Any, tracer: Tracer) -> int:
    if args.fail and response.status >= 400:
        reason = response.extensions.get("reason_phrase", b"")
        raise Failure(HTTP_ERROR, f"the server replied {response.status} {text(reason)}".rstrip())
    to_file = args.output is not None and args.output != "-"
    try:
        out: IO[bytes] = open(args.output, "wb") if to_file else sys.stdout.buffer
    except OSError as exc:
        raise Failure(OUTPUT_FAILED, f"could not open {args.output!r} for writing: {exc}")
    try:
        if args.include or args.head:
            _write(out, _head_bytes(response), args.output)
        if to_file and stderr_is_terminal() and not args.no_progress_meter:
            tracer.progress = Progress(sys.stderr, _content_length(response))
        progress = tracer.progress
        for chunk in response.iter_stream():
            tracer.body_bytes += len(chunk)
            _write(out, chunk, args.output)
            if progress is not None:
                progress.update(tracer.body_bytes)
        if progress is not None:
            progress.finish()
            tracer.progress = None
    finally:
        if to_file:
            out.close()
    return OK


def _write(out: IO[bytes], data: bytes, name: Optional[str]) -> None:
    try:
        out.write(data)
        out.flush()
    except OSError as exc:
        if out is sys.stdout.buffer:
            # Nothing more can be written to stdout (e.g. `| head`); keep Python's exit-time
            # flush from failing again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        where = "stdout" if name in (None, "-") else repr(name)
        raise Failure(OUTPUT_FAILED, f"could not write the body to {where}: {exc}")


def _head_bytes(response: Any) -> bytes:
    version = response.extensions.get("http_version", b"HTTP/1.1")
    line = b"%s %d" % (version, response.status)
    reason = response.extensions.get("reason_phrase", b"")
    if reason:
        line += b" " + reason
    lines = [line] + [name + b": " + value for name, value in response.headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _content_length(response: Any) -> Optional[int]:
    for name, value in response.headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# -- turning a library exception into one line and an exit code ------------------------------


def _causes(exc: BaseException) -> List[BaseException]:
    """`exc`, the exceptions it wraps (first argument) and the chain below it."""
    seen: List[BaseException] = []
    stack = [exc]
    while stack:
        current = stack.pop()
        if any(current is other for other in seen):
            continue
        seen.append(current)
        stack.extend(arg for arg in current.args[:1] if isinstance(arg, BaseException))
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)
    return seen


def _network_failure(
    exc: Exception, tracer: Tracer, timeouts: Dict[str, Optional[float]], proxy: str
) -> Failure:
    message = str(exc) or type(exc).__name__
    step = tracer.step.rpartition(".")[2]
    peer = tracer.peer or "the server"
    if proxy and (tracer.peer_event == "socks" or proxy.endswith(("@" + peer, "/" + peer))):
        peer = f"the proxy {peer}"
    tls_peer = tracer.tls_name or peer
    causes = _causes(exc)
    if isinstance(exc, TimeoutException):
        if isinstance(exc, ConnectTimeout):
            seconds = timeouts["connect"]
            doing = "in the TLS handshake with" if "start_tls" in step else "connecting to"
        elif isinstance(exc, ReadTimeout):
            seconds = timeouts["read"]
            doing = "reading the response from" if "response" in step else "reading from"
        elif isinstance(exc, WriteTimeout):
            seconds = timeouts["write"]
            doing = "sending the request to"
        else:
            assert isinstance(exc, PoolTimeout)
            return Failure(TIMEOUT, "timed out waiting for a connection")
        return Failure(TIMEOUT, f"timed out {doing} {peer} (after {seconds} s)")
    if isinstance(exc, ConnectError):
        if any(isinstance(cause, socket.gaierror) for cause in causes):
            host = peer.rpartition(":")[0] if ":" in peer else peer
            return Failure(RESOLVE_FAILED, f"could not resolve {host}: {message}")
        if any(isinstance(cause, ssl.SSLCertVerificationError) for cause in causes):
            return Failure(
                CERTIFICATE_FAILED, f"could not verify the certificate of {tls_peer}: {message}"
            )
        if "start_tls" in step or any(isinstance(cause, ssl.SSLError) for cause in causes):
            return Failure(TLS_FAILED, f"TLS handshake with {tls_peer} failed: {message}")
        return Failure(CONNECT_FAILED, f"could not connect to {peer}: {message}")
    if isinstance(exc, ProxyError):
        return Failure(PROXY_FAILED, f"proxy error: {message}")
    if isinstance(exc, UnsupportedProtocol):
        return Failure(UNSUPPORTED_PROTOCOL, message)
    if isinstance(exc, LocalProtocolError):
        return Failure(LOCAL_PROTOCOL_ERROR, f"invalid request: {message}")
    if isinstance(exc, ProtocolError):
        return Failure(REMOTE_PROTOCOL_ERROR, f"protocol error from {peer}: {message}")
    if isinstance(exc, WriteError):
        return Failure(SEND_FAILED, f"sending the request to {peer} failed: {message}")
    assert isinstance(exc, (ReadError, NetworkError))
    return Failure(RECEIVE_FAILED, f"receiving from {peer} failed: {message}")
