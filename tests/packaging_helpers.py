"""Shared facts for the import and packaging tests (the contract of API.md §1 and §9)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence

ROOT = Path(__file__).resolve().parent.parent
VERSION_FILE = ROOT / "packages" / "httpcore-base" / "src" / "httpcore" / "base" / "_version.py"

# httpcore 1.0.9's `__all__`, exactly.
HTTPCORE_1_0_9_NAMES: List[str] = [
    "request",
    "stream",
    "Origin",
    "URL",
    "Request",
    "Response",
    "Proxy",
    "AsyncHTTPConnection",
    "AsyncConnectionPool",
    "AsyncHTTPProxy",
    "AsyncHTTP11Connection",
    "AsyncHTTP2Connection",
    "AsyncConnectionInterface",
    "AsyncSOCKSProxy",
    "HTTPConnection",
    "ConnectionPool",
    "HTTPProxy",
    "HTTP11Connection",
    "HTTP2Connection",
    "ConnectionInterface",
    "SOCKSProxy",
    "SyncBackend",
    "AnyIOBackend",
    "TrioBackend",
    "AsyncMockBackend",
    "AsyncMockStream",
    "MockBackend",
    "MockStream",
    "AsyncNetworkStream",
    "AsyncNetworkBackend",
    "NetworkStream",
    "NetworkBackend",
    "default_ssl_context",
    "SOCKET_OPTION",
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

# The meta-package's `__all__`: httpcore 1.0.9's, plus the HTTP/3 classes (httpcore-http3).
PUBLIC_NAMES: List[str] = [*HTTPCORE_1_0_9_NAMES, "HTTP3Connection", "AsyncHTTP3Connection"]

ASYNC_NAMES = [
    "AsyncHTTPConnection",
    "AsyncConnectionPool",
    "AsyncHTTPProxy",
    "AsyncHTTP11Connection",
]
HTTP2_NAMES = ["HTTP2Connection", "AsyncHTTP2Connection"]
HTTP3_NAMES = ["HTTP3Connection", "AsyncHTTP3Connection"]
SOCKS_NAMES = ["SOCKSProxy", "AsyncSOCKSProxy"]
BACKEND_NAMES = ["AnyIOBackend", "TrioBackend"]

# The capability package each public name comes from.
SOURCE: Dict[str, str] = {name: "httpcore.base" for name in PUBLIC_NAMES}
SOURCE.update({name: "httpcore.aio" for name in ASYNC_NAMES + BACKEND_NAMES})
SOURCE.update({name: "httpcore.http2" for name in HTTP2_NAMES})
SOURCE.update({name: "httpcore.http3" for name in HTTP3_NAMES})
SOURCE.update({name: "httpcore.socks" for name in SOCKS_NAMES})

HTTP2_MESSAGE = (
    "Attempted to use http2 support, but the `h2` package is not installed. "
    "Use 'pip install httpcore[http2]'."
)
HTTP3_MESSAGE = (
    "Attempted to use http3 support, but the `httpcore-http3` distribution (and `aioquic`) "
    "is not installed. Use 'pip install httpcore[http3]'."
)
SOCKS_MESSAGE = (
    "Attempted to use SOCKS support, but the `socksio` package is not installed. "
    "Use 'pip install httpcore[socks]'."
)
ANYIO_MESSAGE = "Attempted to use 'httpcore.AnyIOBackend' but 'anyio' is not installed."
TRIO_MESSAGE = "Attempted to use 'httpcore.TrioBackend' but 'trio' is not installed."

# Third-party libraries of the optional capabilities.
OPTIONAL_LIBRARIES = ["anyio", "trio", "h2", "aioquic", "socksio"]


def source_version() -> str:
    """`__version__` as written in the single source of truth."""
    match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', VERSION_FILE.read_text(), re.M)
    assert match is not None, f"no __version__ in {VERSION_FILE}"
    return match.group(1)


def run_python(code: str, python: str = sys.executable, timeout: float = 60) -> str:
    """Run `code` in a fresh interpreter; fail the test with its output if it exits non-zero."""
    result = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, timeout=timeout, cwd="/"
    )
    assert result.returncode == 0, (
        f"subprocess failed ({result.returncode}):\n--- code\n{code}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result.stdout


_IMPORT_PROBE = """
import json, sys, traceback
wanted = set(WANTED)
culprits = {}

class _Probe:
    # Records, for each wanted top-level module, the first httpcore line that imported it.
    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if top in wanted and top not in culprits:
            frames = [
                f"{f.filename}:{f.lineno}"
                for f in traceback.extract_stack()
                if "httpcore" in f.filename and "importlib" not in f.filename
            ]
            culprits[top] = frames[-1] if frames else "?"
        return None

sys.meta_path.insert(0, _Probe())
STATEMENT
loaded = {
    w: culprits.get(w, "?")
    for w in sorted(wanted)
    if any(m == w or m.startswith(w + ".") for m in sys.modules)
}
print(json.dumps(loaded))
"""


def loaded_after(
    import_statement: str, modules: Sequence[str], python: str = sys.executable
) -> Dict[str, str]:
    """Which of `modules` are in `sys.modules` after `import_statement` in a fresh interpreter.

    Maps each loaded module to the httpcore source line that first imported it (for the report).
    """
    code = _IMPORT_PROBE.replace("WANTED", repr(list(modules))).replace(
        "STATEMENT", import_statement
    )
    loaded: Dict[str, str] = json.loads(run_python(code, python=python))
    return loaded
