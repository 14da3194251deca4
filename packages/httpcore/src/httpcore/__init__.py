"""httpcore: a minimal low-level HTTP client.

This module is the whole of the ``httpcore`` meta-distribution. It re-exports the public API of
httpcore 1.0.9 from the capability distributions that share the ``httpcore`` namespace:

* ``httpcore-base`` (``httpcore.base``, always installed): models, exceptions, the sync client,
  network backends and their interfaces.
* ``httpcore-async`` (``httpcore.aio``, extras ``asyncio`` / ``trio``): the ``Async*`` client
  classes, ``AnyIOBackend`` and ``TrioBackend``.
* ``httpcore-http2`` (``httpcore.http2``, extra ``http2``): ``HTTP2Connection`` and
  ``AsyncHTTP2Connection``.
* ``httpcore-http3`` (``httpcore.http3``, extra ``http3``): ``HTTP3Connection`` and
  ``AsyncHTTP3Connection`` (HTTP/3 over QUIC, on aioquic).
* ``httpcore-socks`` (``httpcore.socks``, extra ``socks``): ``SOCKSProxy`` and
  ``AsyncSOCKSProxy``.

The names of ``httpcore.base`` are bound when this module is imported. The names of the optional
capabilities are resolved on first attribute access (PEP 562), so that ``import httpcore`` loads
none of anyio, trio, h2, aioquic or socksio. A name whose capability (or that capability's
third-party library) is not installed resolves to a placeholder class: importing and referring
to it works, using it (calling or instantiating it) raises a ``RuntimeError`` that names the
extra to install.
"""

from __future__ import annotations

import pkgutil

# The capability distributions each ship a portion of the ``httpcore`` namespace. When they are
# installed into one site-packages directory they share a folder; when they are installed
# editable from separate source trees they do not, and without this line Python would look for
# ``httpcore.base`` & co. only next to this file.
__path__ = pkgutil.extend_path(__path__, __name__)

import importlib
import threading
from typing import TYPE_CHECKING, Any, Dict, NoReturn, Optional, Tuple

from httpcore.base._version import __version__ as __version__

if TYPE_CHECKING:  # Static view for type checkers (re-exported through `__all__`).
    from httpcore.aio import (
        AnyIOBackend,
        AsyncConnectionPool,
        AsyncHTTP11Connection,
        AsyncHTTPConnection,
        AsyncHTTPProxy,
        TrioBackend,
    )
    from httpcore.base import (
        SOCKET_OPTION,
        URL,
        AsyncConnectionInterface,
        AsyncMockBackend,
        AsyncMockStream,
        AsyncNetworkBackend,
        AsyncNetworkStream,
        ConnectError,
        ConnectionInterface,
        ConnectionNotAvailable,
        ConnectionPool,
        ConnectTimeout,
        HTTP11Connection,
        HTTPConnection,
        HTTPProxy,
        LocalProtocolError,
        MockBackend,
        MockStream,
        NetworkBackend,
        NetworkError,
        NetworkStream,
        Origin,
        PoolTimeout,
        ProtocolError,
        Proxy,
        ProxyError,
        ReadError,
        ReadTimeout,
        RemoteProtocolError,
        Request,
        Response,
        SyncBackend,
        TimeoutException,
        UnsupportedProtocol,
        WriteError,
        WriteTimeout,
        default_ssl_context,
        request,
        stream,
    )
    from httpcore.http2 import AsyncHTTP2Connection, HTTP2Connection
    from httpcore.http3 import AsyncHTTP3Connection, HTTP3Connection
    from httpcore.socks import AsyncSOCKSProxy, SOCKSProxy

__all__ = [  # noqa: RUF022 (grouped as upstream lists them)
    # top-level requests
    "request",
    "stream",
    # models
    "Origin",
    "URL",
    "Request",
    "Response",
    "Proxy",
    # async
    "AsyncHTTPConnection",
    "AsyncConnectionPool",
    "AsyncHTTPProxy",
    "AsyncHTTP11Connection",
    "AsyncHTTP2Connection",
    "AsyncHTTP3Connection",
    "AsyncConnectionInterface",
    "AsyncSOCKSProxy",
    # sync
    "HTTPConnection",
    "ConnectionPool",
    "HTTPProxy",
    "HTTP11Connection",
    "HTTP2Connection",
    "HTTP3Connection",
    "ConnectionInterface",
    "SOCKSProxy",
    # network backends, implementations
    "SyncBackend",
    "AnyIOBackend",
    "TrioBackend",
    # network backends, mock implementations
    "AsyncMockBackend",
    "AsyncMockStream",
    "MockBackend",
    "MockStream",
    # network backends, interface
    "AsyncNetworkStream",
    "AsyncNetworkBackend",
    "NetworkStream",
    "NetworkBackend",
    # util
    "default_ssl_context",
    "SOCKET_OPTION",
    # exceptions
    "ConnectionNotAvailable",
    "ProxyError",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "UnsupportedProtocol",
    "TimeoutException",
    "PoolTimeout",
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "NetworkError",
    "ConnectError",
    "ReadError",
    "WriteError",
]

_ASYNC_MESSAGE = (
    "Attempted to use 'httpcore.{name}' but the async support is not installed. "
    "Use 'pip install httpcore[asyncio]' (or 'httpcore[trio]')."
)
_HTTP2_MESSAGE = (
    "Attempted to use http2 support, but the `h2` package is not installed. "
    "Use 'pip install httpcore[http2]'."
)
_HTTP3_MESSAGE = (
    "Attempted to use http3 support, but the `httpcore-http3` distribution (and `aioquic`) "
    "is not installed. Use 'pip install httpcore[http3]'."
)
_SOCKS_MESSAGE = (
    "Attempted to use SOCKS support, but the `socksio` package is not installed. "
    "Use 'pip install httpcore[socks]'."
)
_BASE_MESSAGE = (
    "Attempted to use 'httpcore.{name}' but it is not provided by the installed "
    "'httpcore-base'. Reinstall it with 'pip install --force-reinstall httpcore'."
)

# Which capability package provides each public name, and the message of its placeholder
# (``{name}`` is filled in with the public name).
_SOURCES: Dict[str, Tuple[str, str]] = {
    **{
        name: ("httpcore.aio", _ASYNC_MESSAGE)
        for name in (
            "AsyncHTTPConnection",
            "AsyncConnectionPool",
            "AsyncHTTPProxy",
            "AsyncHTTP11Connection",
        )
    },
    "AnyIOBackend": (
        "httpcore.aio",
        "Attempted to use 'httpcore.AnyIOBackend' but 'anyio' is not installed.",
    ),
    "TrioBackend": (
        "httpcore.aio",
        "Attempted to use 'httpcore.TrioBackend' but 'trio' is not installed.",
    ),
    "HTTP2Connection": ("httpcore.http2", _HTTP2_MESSAGE),
    "AsyncHTTP2Connection": ("httpcore.http2", _HTTP2_MESSAGE),
    "HTTP3Connection": ("httpcore.http3", _HTTP3_MESSAGE),
    "AsyncHTTP3Connection": ("httpcore.http3", _HTTP3_MESSAGE),
    "SOCKSProxy": ("httpcore.socks", _SOCKS_MESSAGE),
    "AsyncSOCKSProxy": ("httpcore.socks", _SOCKS_MESSAGE),
}
for _name in __all__:
    _SOURCES.setdefault(_name, ("httpcore.base", _BASE_MESSAGE))
del _name

# The capabilities whose names are bound at import time. The others are imported on first use.
_EAGER = ("httpcore.base",)

_lock = threading.RLock()


def _placeholder(name: str, message: str, cause: Optional[BaseException]) -> type:
    """Make a stand-in class for `name` whose instantiation raises ``RuntimeError(message)``.

    `cause` (the error that made the real object unavailable, if any) is chained to the
    ``RuntimeError`` so that an unexpected import failure stays visible.
    """

    def __init__(self: object, *args: object, **kwargs: object) -> NoReturn:
        raise RuntimeError(message) from cause

    namespace: Dict[str, Any] = {
        "__init__": __init__,
        "__doc__": f"Placeholder for an unavailable part of httpcore. {message}",
        "__module__": "httpcore",
        "__qualname__": name,
    }
    return type(name, (), namespace)


def _is_missing_distribution(error: ImportError, module_name: str) -> bool:
    """Whether `error` means "not installed" rather than a bug inside an installed capability.

    That is: the capability package itself, or a third-party module, could not be found.
    """
    if not isinstance(error, ModuleNotFoundError) or error.name is None:
        return False
    return error.name == module_name or error.name.partition(".")[0] != "httpcore"


def _resolve(module_name: str) -> Dict[str, Any]:
    """Import capability `module_name` and return its public names, substituting placeholders.

    Only an ``ImportError`` of the capability import or a missing attribute leads to a
    placeholder; any other exception propagates. The placeholder chains the original error,
    and when that error is not simply "a distribution is not installed" its message says so.
    """
    cause: Optional[BaseException] = None
    detail = ""
    module: Any = None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        cause = exc
        if not _is_missing_distribution(exc, module_name):
            detail = f" (importing {module_name!r} failed: {exc!r})"
    resolved: Dict[str, Any] = {}
    for name, (source, message) in _SOURCES.items():
        if source != module_name:
            continue
        try:
            if module is None:
                raise AttributeError(name)
            obj = getattr(module, name)
        except AttributeError as exc:
            if module is not None:
                detail = f" ({module_name!r} does not provide {name!r})"
            obj = _placeholder(name, message.format(name=name) + detail, cause or exc)
        if name != "SOCKET_OPTION":  # a typing alias; setting `__module__` fails on 3.14+
            obj.__module__ = "httpcore"
        resolved[name] = obj
    return resolved


def _lazy_getattr(name: str) -> Any:
    """Resolve a public name of an optional capability on first access (PEP 562)."""
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _lock:
        namespace = globals()
        if name not in namespace:
            namespace.update(_resolve(source[0]))
        return namespace[name]


def _dir() -> list[str]:
    """List the module's attributes, including the names not resolved yet."""
    return sorted(set(globals()) | set(__all__))


for _module_name in _EAGER:
    globals().update(_resolve(_module_name))
del _module_name

if not TYPE_CHECKING:  # Type checkers see the static imports above instead.
    __getattr__ = _lazy_getattr
    __dir__ = _dir
