"""The class hierarchy of httpcore 1.0.9 that users' `isinstance` checks rely on.

Every proxy is a connection pool of its flavour (sync or async), every connection a connection
interface. `AsyncSOCKSProxy` lives in httpcore-socks, which does not depend on httpcore-async:
it derives from `AsyncConnectionPool` when httpcore-async is installed and is defined on first
use, so `import httpcore.socks` stays light (see `httpcore/socks/_async_pool.py`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

import pytest
from packaging_helpers import run_python

import httpcore

# (class, the httpcore 1.0.9 base it must derive from)
SUBCLASSES: List[Tuple[str, str]] = [
    ("HTTPProxy", "ConnectionPool"),
    ("SOCKSProxy", "ConnectionPool"),
    ("AsyncHTTPProxy", "AsyncConnectionPool"),
    ("AsyncSOCKSProxy", "AsyncConnectionPool"),
    ("HTTPConnection", "ConnectionInterface"),
    ("HTTP11Connection", "ConnectionInterface"),
    ("HTTP2Connection", "ConnectionInterface"),
    ("AsyncHTTPConnection", "AsyncConnectionInterface"),
    ("AsyncHTTP11Connection", "AsyncConnectionInterface"),
    ("AsyncHTTP2Connection", "AsyncConnectionInterface"),
]

# A pool of one flavour is never one of the other.
NOT_SUBCLASSES: List[Tuple[str, str]] = [
    ("AsyncSOCKSProxy", "ConnectionPool"),
    ("AsyncHTTPProxy", "ConnectionPool"),
    ("SOCKSProxy", "AsyncConnectionPool"),
    ("HTTPProxy", "AsyncConnectionPool"),
]

PROXY_URLS: Dict[str, str] = {
    "HTTPProxy": "http://127.0.0.1:8080/",
    "AsyncHTTPProxy": "http://127.0.0.1:8080/",
    "SOCKSProxy": "socks5://127.0.0.1:1080/",
    "AsyncSOCKSProxy": "socks5://127.0.0.1:1080/",
}
POOLS: Dict[str, str] = {
    "HTTPProxy": "ConnectionPool",
    "SOCKSProxy": "ConnectionPool",
    "AsyncHTTPProxy": "AsyncConnectionPool",
    "AsyncSOCKSProxy": "AsyncConnectionPool",
}


@pytest.mark.parametrize(("name", "base"), SUBCLASSES)
def test_subclass(name: str, base: str) -> None:
    assert issubclass(getattr(httpcore, name), getattr(httpcore, base))


@pytest.mark.parametrize(("name", "base"), NOT_SUBCLASSES)
def test_not_subclass(name: str, base: str) -> None:
    assert not issubclass(getattr(httpcore, name), getattr(httpcore, base))


@pytest.mark.parametrize("name", sorted(PROXY_URLS))
def test_proxy_instance_is_a_pool(name: str) -> None:
    make: Callable[..., Any] = getattr(httpcore, name)
    proxy = make(proxy_url=PROXY_URLS[name])
    assert isinstance(proxy, getattr(httpcore, POOLS[name]))
    sync = POOLS[name] == "ConnectionPool"
    assert isinstance(proxy, httpcore.ConnectionPool) is sync
    assert isinstance(proxy, httpcore.AsyncConnectionPool) is not sync
    assert repr(proxy) == (
        f"<{name} [Requests: 0 active, 0 queued | Connections: 0 active, 0 idle]>"
    )


def test_socks_names_are_the_same_objects() -> None:
    import httpcore.socks

    assert httpcore.socks.AsyncSOCKSProxy is httpcore.AsyncSOCKSProxy
    assert "AsyncSOCKSProxy" in dir(httpcore.socks)
    namespace: Dict[str, Any] = {}
    exec("from httpcore.socks import *", namespace)
    assert namespace["AsyncSOCKSProxy"] is httpcore.AsyncSOCKSProxy
    with pytest.raises(AttributeError, match="has no attribute 'Nothing'"):
        httpcore.socks.Nothing  # type: ignore[attr-defined]  # noqa: B018


def test_sync_socks_does_not_import_httpcore_aio() -> None:
    out = run_python(
        "import sys, httpcore.socks\n"
        "def loaded(): return sorted(m for m in ('httpcore.aio', 'anyio', 'trio', 'h2')"
        " if m in sys.modules)\n"
        "with httpcore.socks.SOCKSProxy('socks5://127.0.0.1:1080/'): pass\n"
        "print(loaded())\n"
        "httpcore.socks.AsyncSOCKSProxy\n"
        "print(loaded())"
    )
    assert out.split("\n")[:2] == ["[]", "['httpcore.aio']"]


# Without httpcore-async (simulated: `sys.modules[...] = None` makes the import fail as if the
# distribution were missing), `AsyncSOCKSProxy` still works with a caller's network backend.
_WITHOUT_ASYNC = """
import asyncio, sys
sys.modules["httpcore.aio"] = None
import httpcore
import httpcore.socks
from httpcore.base import AsyncMockBackend
cls = httpcore.socks.AsyncSOCKSProxy
assert cls is httpcore.AsyncSOCKSProxy
assert "AsyncConnectionPool" not in [k.__name__ for k in cls.__mro__], cls.__mro__
try:
    httpcore.AsyncConnectionPool()
except RuntimeError as exc:
    assert "httpcore[asyncio]" in str(exc), str(exc)
else:
    raise AssertionError("AsyncConnectionPool is not a placeholder")

backend = AsyncMockBackend([
    b"\\x05\\x00",
    b"\\x05\\x00\\x00\\x01\\x7f\\x00\\x00\\x01\\x00\\x50",
    b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok",
])

async def main():
    async with cls("socks5://proxy:1080", network_backend=backend) as proxy:
        response = await proxy.request("GET", "http://example.com/")
        return response.status, response.content

print(asyncio.run(main()))
"""


def test_async_socks_proxy_without_httpcore_async() -> None:
    assert run_python(_WITHOUT_ASYNC).strip() == "(200, b'ok')"


def test_broken_httpcore_async_is_not_hidden() -> None:
    # An httpcore-async that is installed but fails to import is an error, not "not installed".
    code = """
import sys

class Broken:
    def find_spec(self, name, path=None, target=None):
        if name == "httpcore.aio":
            raise ImportError("broken httpcore.aio")
        return None

sys.meta_path.insert(0, Broken())
import httpcore.socks
try:
    httpcore.socks.AsyncSOCKSProxy
except ImportError as exc:
    print(exc)
"""
    assert run_python(code).strip() == "broken httpcore.aio"


@pytest.mark.parametrize("name", ["HTTPProxy", "AsyncHTTPProxy", "SOCKSProxy", "AsyncSOCKSProxy"])
def test_proxy_url_attribute_read_by_httpx_tests(name: str) -> None:
    # httpx 0.28.1's tests compare `transport._pool._proxy_url` with an `httpcore.URL`.
    scheme = "socks5" if "SOCKS" in name else "http"
    proxy = getattr(httpcore, name)(proxy_url=f"{scheme}://[::1]:3128")
    expected = httpcore.URL(scheme=scheme, host="::1", port=3128, target="/")
    assert proxy._proxy_url == expected
