"""Build the twelve artifacts and install them into fresh virtual environments.

Opt-in (it needs PyPI once per session to fill a local wheelhouse and takes about a minute):
set ``HTTPCORE_PACKAGING_TESTS=1``. Scenarios, one venv each:

(a) ``httpcore-base`` alone: ``httpcore`` is an implicit namespace package, no optional library;
(b) the meta-package alone: every name present, optional ones are placeholders naming the extra;
(c) the meta-package with each of the extras ``asyncio``, ``trio``, ``http2``, ``http3``,
    ``socks``;
(d) the meta-package with every extra: every name is the real object.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import venv
import zipfile
from pathlib import Path
from typing import Callable, Dict, Iterator, List

import pytest
from packaging_helpers import (
    ANYIO_MESSAGE,
    ASYNC_NAMES,
    HTTP2_MESSAGE,
    HTTP2_NAMES,
    HTTP3_MESSAGE,
    HTTP3_NAMES,
    OPTIONAL_LIBRARIES,
    PUBLIC_NAMES,
    ROOT,
    SOCKS_MESSAGE,
    SOCKS_NAMES,
    SOURCE,
    TRIO_MESSAGE,
    source_version,
)

pytestmark = [
    pytest.mark.packaging,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        os.environ.get("HTTPCORE_PACKAGING_TESTS") != "1",
        reason="packaging tests are opt-in: set HTTPCORE_PACKAGING_TESTS=1",
    ),
]

VERSION = source_version()
DISTRIBUTIONS = [
    "httpcore-base",
    "httpcore-async",
    "httpcore-http2",
    "httpcore-http3",
    "httpcore-socks",
    "httpcore",
]


def _clean_env() -> Dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
        and not key.startswith("COVERAGE_")
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


def _run(command: List[str], timeout: float = 300, label: str = "") -> str:
    """Run `command`; fail the test with its output (and `label`, else the command) if it fails."""
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=_clean_env(), cwd="/"
    )
    if result.returncode != 0:
        pytest.fail(
            f"{label or command} failed with exit status {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}",
            pytrace=False,
        )
    return result.stdout


def _python(env_dir: Path) -> str:
    return str(env_dir / ("Scripts" if os.name == "nt" else "bin") / "python")


# --- session fixtures: artifacts, a pip, a wheelhouse ---------------------------------------


@pytest.fixture(scope="session")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The twelve artifacts, built (and verified) by scripts/build_all.py."""
    outdir = tmp_path_factory.mktemp("dist")
    _run([sys.executable, str(ROOT / "scripts" / "build_all.py"), "--outdir", str(outdir)])
    return outdir


@pytest.fixture(scope="session")
def pip(tmp_path_factory: pytest.TempPathFactory) -> List[str]:
    """A pip to drive the scenario venvs (which are created without pip, for speed)."""
    tools = tmp_path_factory.mktemp("tools-venv")
    venv.create(tools, with_pip=True, clear=True)
    return [_python(tools), "-m", "pip"]


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory, dist_dir: Path, pip: List[str]) -> Path:
    """The third-party dependencies of all six wheels (and theirs), downloaded once."""
    from packaging.requirements import Requirement

    requirements = set()
    for wheel_path in dist_dir.glob("*.whl"):
        with zipfile.ZipFile(wheel_path) as wheel:
            name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = wheel.read(name).decode()
        for line in metadata.splitlines():
            if not line.startswith("Requires-Dist:"):
                continue
            requirement = Requirement(line.partition(":")[2].strip())
            if requirement.name.startswith("httpcore"):
                continue
            requirement.marker = None  # every extra is wanted
            requirements.add(str(requirement))
    assert requirements, "no third-party requirements found in the wheels"
    house = tmp_path_factory.mktemp("wheelhouse")
    _run([*pip, "download", "--quiet", "--dest", str(house), *sorted(requirements)])
    return house


@pytest.fixture(scope="session")
def make_venv(
    tmp_path_factory: pytest.TempPathFactory,
    dist_dir: Path,
    wheelhouse: Path,
    pip: List[str],
) -> Iterator[Callable[[str], str]]:
    """`make_venv(requirement)` -> python of a fresh venv holding it; one venv per requirement."""
    cache: Dict[str, str] = {}

    def make(requirement: str) -> str:
        if requirement not in cache:
            env_dir = tmp_path_factory.mktemp("venv")
            venv.create(env_dir, with_pip=False, clear=True)
            python = _python(env_dir)
            _run(
                [
                    *pip,
                    "--python",
                    python,
                    "install",
                    "--quiet",
                    "--no-index",
                    "--find-links",
                    str(dist_dir),
                    "--find-links",
                    str(wheelhouse),
                    requirement,
                ]
            )
            cache[requirement] = python
        return cache[requirement]

    yield make


# --- a tiny local HTTP server ---------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"Hello, world!"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# --- code run inside the venvs --------------------------------------------------------------

_PRELUDE = f"""
import importlib, importlib.metadata, importlib.util, json, sys
PUBLIC_NAMES = {PUBLIC_NAMES!r}
SOURCE = {SOURCE!r}
OPTIONAL_LIBRARIES = {OPTIONAL_LIBRARIES!r}
VERSION = {VERSION!r}

def installed():
    names = {{d.metadata["Name"].lower() for d in importlib.metadata.distributions()}}
    return sorted(n for n in names if n.startswith("httpcore") or n in OPTIONAL_LIBRARIES)

def loaded():
    return sorted(
        m for m in sys.modules
        if m.partition(".")[0] in OPTIONAL_LIBRARIES
        or m in ("httpcore.aio", "httpcore.http2", "httpcore.http3", "httpcore.socks")
    )

def raises(name, expected):
    import httpcore
    try:
        getattr(httpcore, name)()
    except RuntimeError as exc:
        assert expected in str(exc), (name, str(exc), expected)
    else:
        raise AssertionError(name + " did not raise RuntimeError")

def is_real(name):
    import httpcore
    module = importlib.import_module(SOURCE[name])
    assert getattr(httpcore, name) is getattr(module, name), name
"""


def run_in(python: str, code: str) -> str:
    """Run `code` (after `_PRELUDE`) with the venv's `python`; return its stdout."""
    label = f"in {Path(python).parent.parent.name}:\n{code.strip()}\n"
    return _run([python, "-c", _PRELUDE + code], timeout=120, label=label)


def _installed(python: str) -> List[str]:
    result: List[str] = json.loads(run_in(python, "print(json.dumps(installed()))"))
    return result


def _meta_checks() -> str:
    """Checks that hold for the meta-package whatever extras are installed."""
    return """
import httpcore
assert loaded() == [], loaded()                     # lazy: nothing optional yet
assert httpcore.__file__.endswith("__init__.py")
assert httpcore.__version__ == VERSION == importlib.metadata.version("httpcore")
assert set(httpcore.__all__) == set(PUBLIC_NAMES)
for name in PUBLIC_NAMES:
    obj = getattr(httpcore, name)
    if name != "SOCKET_OPTION":
        assert obj.__module__ == "httpcore", (name, obj.__module__)
assert repr(httpcore.ReadError) == "<class 'httpcore.ReadError'>"
for name in PUBLIC_NAMES:
    if SOURCE[name] == "httpcore.base":
        is_real(name)
"""


# --- (a) httpcore-base alone ----------------------------------------------------------------


def test_artifacts(dist_dir: Path) -> None:
    names = sorted(p.name for p in dist_dir.iterdir())
    version = source_version()
    assert len(names) == 12, names
    for dist in DISTRIBUTIONS:
        stem = f"{dist.replace('-', '_')}-{version}"
        assert f"{stem}-py3-none-any.whl" in names
        assert f"{stem}.tar.gz" in names


def test_base_alone_is_a_namespace(make_venv: Callable[[str], str]) -> None:
    python = make_venv(f"httpcore-base=={VERSION}")
    assert _installed(python) == ["httpcore-base"]
    run_in(
        python,
        """
import os
import httpcore.base
import httpcore
assert getattr(httpcore, "__file__", None) is None, httpcore.__file__
assert not any(os.path.exists(os.path.join(p, "__init__.py")) for p in httpcore.__path__)
for library in OPTIONAL_LIBRARIES:
    assert importlib.util.find_spec(library) is None, library
for capability in ("httpcore.aio", "httpcore.http2", "httpcore.http3", "httpcore.socks"):
    assert importlib.util.find_spec(capability) is None, capability
assert loaded() == [], loaded()
from httpcore.base import ConnectionPool, Request, ReadError
from httpcore.base._version import __version__
assert __version__ == VERSION == importlib.metadata.version("httpcore-base")
""",
    )


def test_base_alone_real_request(make_venv: Callable[[str], str], server_url: str) -> None:
    python = make_venv(f"httpcore-base=={VERSION}")
    out = run_in(
        python,
        f"""
import httpcore.base
with httpcore.base.ConnectionPool() as pool:
    response = pool.request("GET", {server_url!r})
print(response.status, response.content.decode())
""",
    )
    assert out.split() == ["200", "Hello,", "world!"]


# --- (b) the meta-package alone -------------------------------------------------------------


def test_meta_alone(make_venv: Callable[[str], str]) -> None:
    python = make_venv(f"httpcore=={VERSION}")
    assert _installed(python) == ["httpcore", "httpcore-base"]
    run_in(
        python,
        _meta_checks()
        + f"""
for name in {ASYNC_NAMES!r}:
    raises(name, "httpcore[asyncio]")
raises("AnyIOBackend", {ANYIO_MESSAGE!r})
raises("TrioBackend", {TRIO_MESSAGE!r})
for name in {HTTP2_NAMES!r}:
    raises(name, {HTTP2_MESSAGE!r})
for name in {SOCKS_NAMES!r}:
    raises(name, {SOCKS_MESSAGE!r})
for name in {HTTP3_NAMES!r}:
    raises(name, {HTTP3_MESSAGE!r})
try:
    httpcore.ConnectionPool(http3=True)
except RuntimeError as exc:
    assert "pip install httpcore[http3]" in str(exc), str(exc)
else:
    raise AssertionError("http3=True without httpcore-http3 did not raise")
assert loaded() == [], loaded()
""",
    )


def test_meta_alone_command_line(make_venv: Callable[[str], str], server_url: str) -> None:
    # The console script needs no extra; options that need one exit with 4 and name it.
    python = make_venv(f"httpcore=={VERSION}")
    script = str(Path(python).parent / "httpcore")
    assert _run([script, "--version"]).strip() == f"httpcore {VERSION} (HTTP/1.1 only)"
    assert _run([script, "-o", "-", server_url]) == "Hello, world!"
    for args, extra in (["--http2"], "http2"), (["-x", "socks5://127.0.0.1:1080"], "socks"):
        result = subprocess.run(
            [script, *args, server_url], capture_output=True, text=True, env=_clean_env()
        )
        assert result.returncode == 4, result.stderr
        assert result.stderr.strip().endswith(f"pip install 'httpcore[{extra}]'"), result.stderr


# --- (c) the meta-package with one extra ----------------------------------------------------


def test_meta_asyncio(make_venv: Callable[[str], str], server_url: str) -> None:
    python = make_venv(f"httpcore[asyncio]=={VERSION}")
    installed = _installed(python)
    assert "anyio" in installed and "httpcore-async" in installed
    assert not {"trio", "h2", "aioquic", "socksio"} & set(installed), installed
    out = run_in(
        python,
        _meta_checks()
        + f"""
for name in {ASYNC_NAMES!r} + ["AnyIOBackend"]:
    is_real(name)
httpcore.AsyncConnectionPool()
httpcore.AnyIOBackend()
raises("TrioBackend", {TRIO_MESSAGE!r})
for name in {HTTP2_NAMES!r}:
    raises(name, {HTTP2_MESSAGE!r})
for name in {SOCKS_NAMES!r}:
    raises(name, {SOCKS_MESSAGE!r})

import asyncio

async def main():
    async with httpcore.AsyncConnectionPool() as pool:
        response = await pool.request("GET", {server_url!r})
    return response.status

print(asyncio.run(main()))
""",
    )
    assert out.split() == ["200"]


def test_meta_trio(make_venv: Callable[[str], str], server_url: str) -> None:
    python = make_venv(f"httpcore[trio]=={VERSION}")
    installed = _installed(python)
    assert "trio" in installed and "httpcore-async" in installed
    assert not {"anyio", "h2", "aioquic", "socksio"} & set(installed), installed
    out = run_in(
        python,
        _meta_checks()
        + f"""
for name in {ASYNC_NAMES!r} + ["TrioBackend"]:
    is_real(name)
httpcore.AsyncConnectionPool()
httpcore.TrioBackend()
raises("AnyIOBackend", {ANYIO_MESSAGE!r})
for name in {HTTP2_NAMES!r}:
    raises(name, {HTTP2_MESSAGE!r})
for name in {SOCKS_NAMES!r}:
    raises(name, {SOCKS_MESSAGE!r})

import trio

async def main():
    async with httpcore.AsyncConnectionPool() as pool:
        response = await pool.request("GET", {server_url!r})
    return response.status

print(trio.run(main))
""",
    )
    assert out.split() == ["200"]


def test_meta_http2(make_venv: Callable[[str], str]) -> None:
    python = make_venv(f"httpcore[http2]=={VERSION}")
    installed = _installed(python)
    assert "h2" in installed and "httpcore-http2" in installed
    assert not {"anyio", "trio", "aioquic", "socksio", "httpcore-async"} & set(installed)
    run_in(
        python,
        _meta_checks()
        + f"""
for name in {HTTP2_NAMES!r}:
    is_real(name)
origin = httpcore.Origin(b"https", b"example.com", 443)
connection = httpcore.HTTP2Connection(origin=origin, stream=httpcore.MockStream([]))
assert "HTTP2Connection" in repr(connection)
httpcore.AsyncHTTP2Connection(origin=origin, stream=httpcore.AsyncMockStream([]))
for name in {ASYNC_NAMES!r}:
    raises(name, "httpcore[asyncio]")
for name in {SOCKS_NAMES!r}:
    raises(name, {SOCKS_MESSAGE!r})
""",
    )


def test_meta_socks(make_venv: Callable[[str], str]) -> None:
    python = make_venv(f"httpcore[socks]=={VERSION}")
    installed = _installed(python)
    assert "socksio" in installed and "httpcore-socks" in installed
    assert not {"anyio", "trio", "h2", "aioquic", "httpcore-async"} & set(installed)
    run_in(
        python,
        _meta_checks()
        + f"""
for name in {SOCKS_NAMES!r}:
    is_real(name)
httpcore.SOCKSProxy(proxy_url="socks5://127.0.0.1:1080")
httpcore.AsyncSOCKSProxy(
    proxy_url="socks5://127.0.0.1:1080", network_backend=httpcore.AsyncMockBackend([])
)
try:  # without httpcore-async there is no default async backend
    httpcore.AsyncSOCKSProxy(proxy_url="socks5://127.0.0.1:1080")
except RuntimeError as exc:
    assert "httpcore[asyncio]" in str(exc), str(exc)
for name in {ASYNC_NAMES!r}:
    raises(name, "httpcore[asyncio]")
for name in {HTTP2_NAMES!r}:
    raises(name, {HTTP2_MESSAGE!r})
""",
    )


def test_meta_http3(make_venv: Callable[[str], str], server_url: str) -> None:
    python = make_venv(f"httpcore[http3]=={VERSION}")
    installed = _installed(python)
    assert "aioquic" in installed and "httpcore-http3" in installed
    assert not {"anyio", "trio", "h2", "socksio", "httpcore-async"} & set(installed)
    out = run_in(
        python,
        _meta_checks()
        + f"""
for name in {HTTP3_NAMES!r}:
    is_real(name)
origin = httpcore.Origin(b"https", b"example.com", 443)
connection = httpcore.HTTP3Connection(origin)
assert repr(connection) == (
    "<HTTP3Connection ['https://example.com:443', HTTP/3, IDLE, Request Count: 0]>"
)
for name in {ASYNC_NAMES!r}:
    raises(name, "httpcore[asyncio]")
for name in {HTTP2_NAMES!r}:
    raises(name, {HTTP2_MESSAGE!r})
with httpcore.ConnectionPool(http3=True) as pool:  # Alt-Svc discovery; this one is HTTP/1.1
    print(pool.request("GET", {server_url!r}).status)
""",
    )
    assert out.split() == ["200"]


# --- (d) everything -------------------------------------------------------------------------


def test_meta_everything(make_venv: Callable[[str], str], server_url: str) -> None:
    python = make_venv(f"httpcore[asyncio,trio,http2,http3,socks]=={VERSION}")
    installed = _installed(python)
    assert set(DISTRIBUTIONS + OPTIONAL_LIBRARIES) <= set(installed), installed
    out = run_in(
        python,
        _meta_checks()
        + f"""
for name in PUBLIC_NAMES:
    is_real(name)
httpcore.AsyncConnectionPool()
httpcore.AnyIOBackend()
httpcore.TrioBackend()
httpcore.SOCKSProxy(proxy_url="socks5://127.0.0.1:1080")
print(httpcore.request("GET", {server_url!r}).status)
""",
    )
    assert out.split() == ["200"]
