"""SOCKS proxies, written once as sans-I/O generators (see docs/CORE.md).

The wire format comes from `socksio` (its request classes build the bytes, its reply classes
check them). This module adds what socksio leaves to the caller: framing the replies (a SOCKS
reply has a variable length and may arrive in pieces), a deadline for the whole handshake,
and turning every way the handshake can fail into `ProxyError` with a message saying which.

Name resolution, per proxy URL scheme:

* ``socks5`` and ``socks5h``: host names are sent to the proxy, which resolves them (remote
  DNS). This is what httpcore 1.0.9 does for both schemes, and it is what a proxy is usually
  for: the proxy may see names that the client cannot resolve, and the client's resolver
  learns nothing about the hosts visited. (curl resolves locally for ``socks5``; we keep the
  httpcore behaviour so that code written against it keeps working.)
* ``socks4a``: host names are sent to the proxy (the SOCKS4A extension).
* ``socks4``: SOCKS4 carries IPv4 addresses only, so host names are resolved locally to an IPv4
  address. IPv6 addresses cannot be sent over SOCKS4 or SOCKS4A.

IP literals are always sent as addresses.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from socksio import (
    SOCKS5AuthMethod,
    SOCKS5AuthMethodsRequest,
    SOCKS5Command,
    SOCKS5CommandRequest,
    SOCKS5Reply,
    SOCKS5UsernamePasswordRequest,
    SOCKSError,
)

from httpcore.base._connection import (
    RETRIES_BACKOFF_FACTOR,
    LazyConnectionState,
    exponential_backoff,
    start_tls_and_pick_protocol,
)
from httpcore.base._drive import (
    CALL,
    CLOSE,
    CONNECT_TCP,
    HANDLE,
    LOCK,
    READ,
    SLEEP,
    UNLOCK,
    WRITE,
    Flavour,
    Gen,
    do,
)
from httpcore.base._exceptions import (
    ConnectError,
    ConnectionNotAvailable,
    ConnectTimeout,
    NetworkError,
    ProxyError,
    ReadTimeout,
    WriteTimeout,
)
from httpcore.base._http3 import through_proxy
from httpcore.base._models import URL, Origin, Request, Response, enforce_bytes, enforce_url
from httpcore.base._pool import PoolCore
from httpcore.base._trace import traced

logger = logging.getLogger("httpcore.socks")

SOCKS_SCHEMES = (b"socks5", b"socks5h", b"socks4", b"socks4a")

READ_SIZE = 4096

#: Names of the SOCKS5 authentication methods (RFC 1928 §3).
AUTH_METHOD_NAMES: Dict[int, str] = {
    0x00: "NO AUTHENTICATION REQUIRED",
    0x01: "GSSAPI",
    0x02: "USERNAME/PASSWORD",
    0xFF: "NO ACCEPTABLE METHODS",
}

#: Names of the SOCKS5 reply codes (RFC 1928 §6).
SOCKS5_REPLY_NAMES: Dict[int, str] = {
    0x01: "General SOCKS server failure",
    0x02: "Connection not allowed by ruleset",
    0x03: "Network unreachable",
    0x04: "Host unreachable",
    0x05: "Connection refused",
    0x06: "TTL expired",
    0x07: "Command not supported",
    0x08: "Address type not supported",
}

#: Names of the SOCKS4 reply codes (0x5A is "request granted").
SOCKS4_REPLY_NAMES: Dict[int, str] = {
    0x5B: "Request rejected or failed",
    0x5C: "Request rejected because the SOCKS server cannot connect to identd on the client",
    0x5D: "Request rejected because identd reports a different user-id",
}

UNKNOWN = "UNKNOWN"

CONNECTING = "waiting for the reply to the CONNECT command"

#: Bytes of the bound address after the 4-byte head of a SOCKS5 reply, by address type.
_SOCKS5_ADDRESS_LENGTHS = {0x01: 4, 0x04: 16}

Auth = Optional[Tuple[bytes, bytes]]


def _name(names: Dict[int, str], code: int) -> str:
    return names.get(code, UNKNOWN)


# -- resolving names locally (SOCKS4 only) ---------------------------------------------------


def _first_ipv4(infos: List[Any], host: str) -> str:
    for family, _type, _proto, _canonname, sockaddr in infos:
        if family == socket.AF_INET:
            return str(sockaddr[0])
    raise ConnectError(f"No IPv4 address found for {host!r} (SOCKS4 needs one).")


def _resolve_ipv4_sync(host: str, port: int) -> str:
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    except OSError as exc:
        raise ConnectError(exc) from exc
    return _first_ipv4(infos, host)


async def _resolve_ipv4_async(host: str, port: int) -> str:
    from httpcore.base._async import getaddrinfo

    try:
        infos = await getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    except OSError as exc:
        raise ConnectError(exc) from exc
    return _first_ipv4(infos, host)


def _address_type(host: str) -> str:
    """The kind of `host`: "ipv4", "ipv6" or "name"."""
    for family, kind in ((socket.AF_INET, "ipv4"), (socket.AF_INET6, "ipv6")):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return kind
    return "name"


# -- the handshake -----------------------------------------------------------------------------


class _Wire:
    """Reads and writes of one handshake: framed, and bounded by one deadline."""

    def __init__(self, stream: Any, timeout: Optional[float]) -> None:
        self.stream = stream
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.buffer = bytearray()

    def _remaining(self) -> Optional[float]:
        if self.deadline is None:
            return None
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise ConnectTimeout("Timed out during the SOCKS handshake with the proxy.")
        return remaining

    def send(self, data: bytes) -> Gen[None]:
        yield (WRITE, self.stream, data, self._remaining())

    def receive(self, size: int, stage: str) -> Gen[bytes]:
        """Exactly `size` bytes (more may be read and kept for the next call)."""
        buffer = self.buffer
        while len(buffer) < size:
            chunk = yield (READ, self.stream, READ_SIZE, self._remaining())
            if not chunk:
                raise ProxyError(
                    f"The proxy server closed the connection during the SOCKS handshake ({stage})."
                )
            buffer += chunk
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    def check_drained(self) -> None:
        if self.buffer:
            raise ProxyError(
                "The proxy server sent unexpected data after its reply to the SOCKS "
                f"CONNECT command: {bytes(self.buffer[:16])!r}"
            )


def _not_socks(version: int, data: bytes) -> ProxyError:
    return ProxyError(
        f"The proxy server did not answer in SOCKS{version}: is it a SOCKS{version} proxy? "
        f"(received {data!r})"
    )


def socks5_handshake(wire: _Wire, host: str, port: int, auth: Auth) -> Gen[None]:
    """SOCKS5 (RFC 1928), with username/password authentication (RFC 1929) if `auth`."""
    method = SOCKS5AuthMethod.USERNAME_PASSWORD if auth else SOCKS5AuthMethod.NO_AUTH_REQUIRED
    yield from wire.send(SOCKS5AuthMethodsRequest([method]).dumps())
    reply = yield from wire.receive(2, "authentication method selection")
    if reply[0] != 0x05:
        raise _not_socks(5, reply)
    if reply[1:2] != method.value:
        requested = _name(AUTH_METHOD_NAMES, method.value[0])
        responded = _name(AUTH_METHOD_NAMES, reply[1])
        raise ProxyError(f"Requested {requested} from proxy server, but got {responded}.")

    if auth is not None:
        username, password = auth
        if not (0 < len(username) < 256 and 0 < len(password) < 256):
            raise ProxyError(
                "SOCKS5 username and password must each be 1 to 255 bytes long (RFC 1929)."
            )
        yield from wire.send(SOCKS5UsernamePasswordRequest(username, password).dumps())
        reply = yield from wire.receive(2, "username/password authentication")
        # RFC 1929 says the version byte is 0x01; some servers echo 0x05. Only STATUS counts.
        if reply[1] != 0x00:
            raise ProxyError("Invalid username/password")

    try:
        request = SOCKS5CommandRequest.from_address(SOCKS5Command.CONNECT, (host, port))
        data = request.dumps()
    except (SOCKSError, ValueError, OverflowError) as exc:
        raise ProxyError(f"Cannot send {host!r} to a SOCKS5 proxy: {exc}") from exc
    yield from wire.send(data)

    head = yield from wire.receive(4, CONNECTING)  # VER, REP, RSV, ATYP
    if head[0] != 0x05:
        raise _not_socks(5, head)
    if head[1] != 0x00:
        raise ProxyError(f"Proxy Server could not connect: {_name(SOCKS5_REPLY_NAMES, head[1])}.")
    atype = head[3]
    if atype == 0x03:
        length = yield from wire.receive(1, CONNECTING)
        rest = length + (yield from wire.receive(length[0] + 2, CONNECTING))
    elif atype in _SOCKS5_ADDRESS_LENGTHS:
        rest = yield from wire.receive(_SOCKS5_ADDRESS_LENGTHS[atype] + 2, CONNECTING)
    else:
        raise ProxyError(f"Malformed reply from the SOCKS5 proxy: address type {atype:#04x}.")
    try:
        SOCKS5Reply.loads(head + rest)
    except (SOCKSError, ValueError) as exc:
        raise ProxyError(f"Malformed reply from the SOCKS5 proxy: {head + rest!r}") from exc
    wire.check_drained()


def socks4_handshake(
    wire: _Wire, host: str, port: int, auth: Auth, remote_names: bool
) -> Gen[None]:
    """SOCKS4, or SOCKS4A (host names resolved by the proxy) when `remote_names`.

    The username of `auth` is sent as the SOCKS4 USERID; SOCKS4 has no password.
    """
    kind = _address_type(host)
    if kind == "ipv6":
        raise ProxyError(f"SOCKS4 cannot connect to an IPv6 address ({host}): use socks5.")
    if kind == "name" and not remote_names:
        host = yield from do(CALL, _resolve_ipv4_sync, _resolve_ipv4_async, (host, port))
        kind = "ipv4"
    user_id = auth[0] if auth else b""
    if b"\x00" in user_id:
        raise ProxyError("A SOCKS4 user id cannot contain NUL bytes.")
    # SOCKS4: VN=4, CD=1 (CONNECT), DSTPORT, DSTIP, USERID, NUL. SOCKS4A sends the IP
    # 0.0.0.x (x != 0) and appends the host name and a NUL. (Built here rather than with
    # socksio, whose SOCKS4 requests refuse the empty USERID that the protocol allows.)
    head = b"\x04\x01" + port.to_bytes(2, "big")
    if kind == "ipv4":
        data = head + socket.inet_aton(host) + user_id + b"\x00"
    else:
        name = host.encode("ascii")
        if b"\x00" in name:
            raise ProxyError(f"Cannot send {host!r} to a SOCKS4A proxy.")
        data = head + b"\x00\x00\x00\x01" + user_id + b"\x00" + name + b"\x00"
    yield from wire.send(data)

    reply = yield from wire.receive(8, CONNECTING)  # VN, CD, DSTPORT, DSTIP
    if reply[0] not in (0x00, 0x04):  # VN is 0 per the protocol; some servers send 4
        raise _not_socks(4, reply)
    if reply[1] != 0x5A:
        raise ProxyError(f"Proxy Server could not connect: {_name(SOCKS4_REPLY_NAMES, reply[1])}.")
    wire.check_drained()


def handshake(
    stream: Any,
    scheme: bytes,
    host: str,
    port: int,
    auth: Auth,
    timeout: Optional[float],
) -> Gen[Any]:
    """Open the tunnel to (host, port) over `stream`; returns the stream.

    Timeouts become `ConnectTimeout`; a network error or anything else that goes wrong
    becomes `ProxyError`.
    """
    wire = _Wire(stream, timeout)
    if not 0 < port < 65536:
        raise ProxyError(f"Cannot connect to port {port} through a SOCKS proxy.")
    try:
        if scheme in (b"socks4", b"socks4a"):
            yield from socks4_handshake(wire, host, port, auth, remote_names=scheme == b"socks4a")
        else:
            yield from socks5_handshake(wire, host, port, auth)
    except (ReadTimeout, WriteTimeout) as exc:
        raise ConnectTimeout(exc) from exc
    except NetworkError as exc:
        if isinstance(exc, ConnectError):
            raise  # local name resolution (SOCKS4)
        raise ProxyError(f"The SOCKS handshake with the proxy server failed: {exc}") from exc
    return stream


# -- the connection --------------------------------------------------------------------------


def _masked(auth: Auth) -> Any:
    # The password stays out of trace events and DEBUG logs.
    return None if auth is None else (auth[0], b"********")


class SocksCore(LazyConnectionState):
    """A connection to one remote origin through a SOCKS proxy, opened on the first request.

    Used for ``socks5``, ``socks5h``, ``socks4`` and ``socks4a`` proxies (`proxy_scheme`, or
    the scheme of `proxy_origin`; anything else means SOCKS5).
    """

    _io: Flavour
    _http11_class: Any

    def __init__(
        self,
        proxy_origin: Origin,
        remote_origin: Origin,
        proxy_auth: Optional[Tuple[bytes, bytes]] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        keepalive_expiry: Optional[float] = None,
        http1: bool = True,
        http2: bool = False,
        network_backend: Any = None,
        socket_options: Optional[Iterable[Any]] = None,
        retries: int = 0,
        local_address: Optional[str] = None,
        proxy_scheme: Union[bytes, str, None] = None,
    ) -> None:
        if proxy_scheme is None:
            proxy_scheme = proxy_origin.scheme
        elif isinstance(proxy_scheme, str):
            proxy_scheme = proxy_scheme.encode("ascii")
        proxy_scheme = proxy_scheme.lower()
        self._proxy_scheme = proxy_scheme if proxy_scheme in SOCKS_SCHEMES else b"socks5"
        self._proxy_origin = proxy_origin
        self._remote_origin = remote_origin
        self._proxy_auth = proxy_auth
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._http1 = http1
        self._http2 = http2
        self._network_backend = (
            self._io.default_backend() if network_backend is None else network_backend
        )
        self._socket_options = socket_options
        self._retries = retries
        self._local_address = local_address
        self._connection: Any = None
        self._connect_failed = False
        self._connect_lock = self._io.io_lock()

    # -- the protocol ------------------------------------------------------------------------

    def _handle(self, request: Request) -> Gen[Response]:
        connection = self._connection
        if connection is None:
            yield (LOCK, self._connect_lock)
            try:
                if self._connect_failed:
                    # Another request failed to open this connection while we waited.
                    raise ConnectionNotAvailable()
                if self._connection is None:
                    try:
                        self._connection = yield from self._open(request)
                    except BaseException:
                        self._connect_failed = True
                        raise
            finally:
                yield (UNLOCK, self._connect_lock)
            connection = self._connection
        elif not connection.is_available():
            raise ConnectionNotAvailable()
        response: Response = yield (HANDLE, connection, request)
        return response

    def _open(self, request: Request) -> Gen[Any]:
        timeout = request.extensions.get("timeout", {}).get("connect", None)
        remote = self._remote_origin
        host = remote.host.decode("ascii")
        stream = yield from self._connect_tcp(request, timeout)
        try:
            step = (
                "setup_socks4_connection"
                if self._proxy_scheme in (b"socks4", b"socks4a")
                else "setup_socks5_connection"
            )
            info = {
                "stream": stream,
                "host": host,
                "port": remote.port,
                "auth": _masked(self._proxy_auth),
            }
            handshake_gen = handshake(
                stream, self._proxy_scheme, host, remote.port, self._proxy_auth, timeout
            )
            stream = yield from traced(logger, step, request, info, handshake_gen)
            return (
                yield from start_tls_and_pick_protocol(
                    self,
                    stream,
                    request,
                    remote,
                    self._ssl_context,
                    request.extensions.get("sni_hostname") or host,
                    timeout,
                    logger,
                )
            )
        except BaseException:
            yield (CLOSE, stream)
            raise

    def _connect_tcp(self, request: Request, timeout: Optional[float]) -> Gen[Any]:
        proxy = self._proxy_origin
        info = {"host": proxy.host.decode("ascii"), "port": proxy.port, "timeout": timeout}
        kwargs = {
            **info,
            "local_address": self._local_address,
            "socket_options": self._socket_options,
        }
        backend = self._network_backend
        delays = exponential_backoff(RETRIES_BACKOFF_FACTOR)
        retries_left = self._retries
        while True:
            try:
                return (
                    yield from traced(
                        logger,
                        "connect_tcp",
                        request,
                        info,
                        do(CONNECT_TCP, backend, kwargs),
                        lambda stream: do(CLOSE, stream),
                    )
                )
            except (ConnectError, ConnectTimeout):
                if retries_left <= 0:
                    raise
                retries_left -= 1
                delay = next(delays)
                yield from traced(logger, "retry", request, info, do(SLEEP, backend, delay))

    def _close(self) -> Gen[None]:
        if self._connection is not None:
            yield (CLOSE, self._connection)


# -- the pool ---------------------------------------------------------------------------------


class SOCKSProxyCore(PoolCore):
    """`SOCKSProxy`: a pool whose every connection goes through one SOCKS proxy."""

    _socks_class: Any

    def __init__(
        self,
        proxy_url: Union[URL, bytes, str],
        proxy_auth: Optional[Tuple[Union[bytes, str], Union[bytes, str]]] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        max_connections: Optional[int] = 10,
        max_keepalive_connections: Optional[int] = None,
        keepalive_expiry: Optional[float] = None,
        http1: bool = True,
        http2: bool = False,
        retries: int = 0,
        network_backend: Any = None,
        http3: bool = False,
    ) -> None:
        if http3:
            through_proxy(http1, http2)  # no effect through a proxy, or an error
        super().__init__(
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
            http1=http1,
            http2=http2,
            retries=retries,
            network_backend=network_backend,
        )
        self._proxy_url = enforce_url(proxy_url, name="proxy_url")
        self._proxy_auth: Auth = None
        if proxy_auth is not None:
            username, password = proxy_auth
            self._proxy_auth = (
                enforce_bytes(username, name="proxy_auth"),
                enforce_bytes(password, name="proxy_auth"),
            )

    def create_connection(self, origin: Origin) -> Any:
        return self._socks_class(
            proxy_origin=self._proxy_url.origin,
            remote_origin=origin,
            proxy_auth=self._proxy_auth,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
            http1=self._http1,
            http2=self._http2,
            network_backend=self._network_backend,
            retries=self._retries,
            proxy_scheme=self._proxy_url.scheme,
        )
