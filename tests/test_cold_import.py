"""Cold start: a sync-only user loads no async, HTTP/2, SOCKS, TLS or h11 machinery.

Each check runs in a fresh interpreter that imports the package, builds a `ConnectionPool` and
makes one plain-HTTP request to the local test server, then reports which of the watched
modules were loaded and which file imported each of them first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Dict

import pytest

# Not needed by a sync client over plain HTTP: the async libraries, HTTP/2, SOCKS, sniffio,
# certifi (the CA bundle is loaded when a TLS context is first built), ssl (imported for TLS
# only), inspect, and h11 with its dataclasses (the fast path serves a simple exchange; h11
# is imported when a request or response needs it).
WATCHED = [
    "asyncio", "anyio", "trio", "sniffio", "h2", "hpack", "socksio", "certifi", "inspect",
    "ssl", "h11", "dataclasses",
]  # fmt: skip

_PROBE = """
import json, sys

watched = set(WATCHED)
importers = {}


class _Probe:
    # Records, for each watched module, the file that imported it first.
    def find_spec(self, fullname, path=None, target=None):
        if fullname in watched and fullname not in importers:
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.startswith("<frozen"):
                frame = frame.f_back
            importers[fullname] = frame.f_code.co_filename if frame else "?"
        return None


preloaded = sorted(watched & set(sys.modules))
sys.meta_path.insert(0, _Probe())
import MODULE as package

with package.ConnectionPool() as pool:
    response = pool.request("GET", URL)
print(json.dumps({
    "status": response.status,
    "preloaded": preloaded,
    "loaded": {name: importers.get(name, "?") for name in watched if name in sys.modules},
}))
"""


def run_fresh(code: str) -> str:
    """Run `code` in a fresh interpreter that sees this one's `sys.path` but runs no `.pth` file.

    The test environment's `.pth` files start coverage in every interpreter, and coverage
    imports inspect & co: `-S` skips them, `PYTHONPATH` brings back the paths they would add.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    env["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
    result = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True, text=True, timeout=60, cwd="/", env=env,
    )  # fmt: skip
    assert result.returncode == 0, f"subprocess failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.parametrize("module", ["httpcore.base", "httpcore"])
def test_sync_request_loads_no_async_http2_socks_or_certifi(module: str, server: Any) -> None:
    code = _PROBE.replace("WATCHED", repr(WATCHED)).replace("MODULE", module)
    code = code.replace("URL", repr(server.url + "/"))
    report = json.loads(run_fresh(code).strip().splitlines()[-1])
    assert report["status"] == 200
    assert report["preloaded"] == [], "the interpreter loaded them before the import"
    loaded: Dict[str, str] = report["loaded"]
    assert loaded == {}, f"a sync request with {module!r} loaded {loaded} (module -> importer)"


def test_import_alone_loads_none_of_them() -> None:
    code = (
        f"import sys\nimport httpcore.base\n"
        f"print(sorted(name for name in {WATCHED!r} if name in sys.modules))\n"
    )
    assert run_fresh(code).strip() == "[]"


def test_tls_request_loads_ssl_but_not_h11(tls_server: Any, ca: Any, tmp_path: Any) -> None:
    cafile = str(tmp_path / "ca.pem")
    ca.cert_pem.write_to_path(cafile)
    code = (
        "import ssl, sys, httpcore.base\n"
        f"context = ssl.create_default_context(cafile={cafile!r})\n"
        "with httpcore.base.ConnectionPool(ssl_context=context) as pool:\n"
        f"    response = pool.request('GET', {tls_server.url + '/'!r})\n"
        "print(response.status, 'h11' in sys.modules)\n"
    )
    assert run_fresh(code).split() == ["200", "False"]


# h11's errors are mapped to ours from the first use of h11 in a process (it is imported then).
_FIRST_H11_ERROR = """
import httpcore.base as httpcore

with httpcore.ConnectionPool() as pool:
    try:
        pool.request("GET", URL, headers=HEADERS)
    except httpcore.ProtocolError as exc:  # not h11's: an unmapped error fails the child
        print(type(exc).__name__, str(exc))
"""


def test_first_h11_local_error_is_mapped(server: Any) -> None:
    code = _FIRST_H11_ERROR.replace("URL", repr(server.url + "/"))
    code = code.replace("HEADERS", repr({"Host": "\0"}))
    out = run_fresh(code).strip()
    assert out == "LocalProtocolError Illegal header value b'\\x00'"


def test_first_h11_remote_error_is_mapped(raw_server: Any) -> None:
    # A head the fast path declines (a field line without a colon), which h11 rejects.
    srv = raw_server(b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n")
    code = _FIRST_H11_ERROR.replace("URL", repr(srv.url + "/")).replace("HEADERS", "None")
    name, message = run_fresh(code).strip().split(" ", 1)
    assert name == "RemoteProtocolError"
    assert message  # h11's own message


def test_default_ssl_context_still_trusts_certifi() -> None:
    # certifi is imported on the first call now, not at import time.
    code = (
        "import ssl, sys, httpcore.base\n"
        "before = 'certifi' in sys.modules\n"
        "ctx = httpcore.base.default_ssl_context()\n"
        "print(before, isinstance(ctx, ssl.SSLContext), len(ctx.get_ca_certs()) > 0)\n"
    )
    assert run_fresh(code).split() == ["False", "True", "True"]
