"""Run httpx 0.28.1's own test suite against the httpcore installed in this interpreter.

Usage (CI runs the first line, see ``.ci/run``)::

    hatch run httpx-suite:run
    python scripts/httpx_suite.py [--cache DIR] [--ignore-known-failures] [PYTEST_ARGS...]

As urllib3's CI runs the suites of requests and botocore, this runs the suite of the main user of
this project. The ``httpx-suite`` hatch environment (``hatch.toml``) has the five distributions
of this repository installed editable, ``httpx==0.28.1`` with its extras, and the test tools
httpx's suite imports (pinned to versions of its release, because its pytest configuration turns
every warning into an error).

1. The httpx sdist (it ships ``tests/``) is downloaded from the package index with
   ``pip download`` into ``.cache/httpx-suite/`` (git-ignored; ``--cache`` to move it), checked
   against a pinned SHA-256, and unpacked there. Later runs reuse it.
2. pytest runs in-process in the unpacked tree, with httpx's own configuration
   (``pyproject.toml``), tests marked ``network`` deselected, and two plugins of this script:

   * **Known failures.** ``tests/httpx_suite_known_failures.txt`` lists the tests that fail here
     for a stated reason, one ``nodeid  # reason`` a line. Each is marked
     ``xfail(strict=True)``: it must fail, and a listed test that starts passing fails the run,
     so that a fixed entry is removed from the list rather than forgotten. A reason starting with
     ``flaky:`` gives ``strict=False`` (the failure depends on timing). After a listed test's
     body the garbage collector is run, so that a ``ResourceWarning`` from an object it leaked
     is reported against that test and not against whichever test runs when the collector does.
     A listed test that is not collected any more is an error (unless pytest arguments select a
     subset). ``--ignore-known-failures`` runs the listed tests as ordinary tests (to compare with
     another httpcore, e.g. ``/tmp/h109/bin/python scripts/httpx_suite.py
     --ignore-known-failures`` in a venv with httpcore 1.0.9 and the same test tools).
   * **No internet.** Name lookups of anything but ``localhost`` and IP literals fail as they do
     offline (``socket.gaierror``), and connections to non-loopback addresses fail with
     ``ENETUNREACH``; the attempts are listed at the end. A test that needs the internet fails the
     same way on every machine, and is listed with the reason "needs internet". The servers of
     httpx's suite (uvicorn) listen on 127.0.0.1.

   With ``pytest-timeout`` installed, each test has 120 seconds. httpx's server fixture listens
   on uvicorn's default port, 127.0.0.1:8000 (some tests expect that port), so the script
   stops at once with a clear message when something else holds that port.

Exit status: pytest's, so non-zero on any unexpected failure, on a listed test that passed
(strict), and on a stale or malformed list.
"""

from __future__ import annotations

import argparse
import errno
import gc
import hashlib
import importlib.metadata
import importlib.util
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Dict, Generator, List, NamedTuple, Optional, Sequence

import pytest

HTTPX_VERSION = "0.28.1"
SDIST = f"httpx-{HTTPX_VERSION}.tar.gz"
# The SHA-256 of the sdist on PyPI.
SDIST_SHA256 = "75e98c5f16b0f35b567856f597f06ff2270a374470a5c2392242528e3e3e42fc"

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / ".cache" / "httpx-suite"
KNOWN_FAILURES = ROOT / "tests" / "httpx_suite_known_failures.txt"
TEST_TIMEOUT = 120


# -- the sdist -------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_tests(cache: Path) -> Path:
    """The unpacked httpx sdist in `cache` (downloaded and unpacked if not there yet)."""
    tree = cache / f"httpx-{HTTPX_VERSION}"
    marker = tree / ".unpacked"
    if marker.exists():
        return tree
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / SDIST
    if not archive.exists() or _sha256(archive) != SDIST_SHA256:
        archive.unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            str(cache),
            f"httpx=={HTTPX_VERSION}",
        ]
        print("$", " ".join(command), flush=True)
        subprocess.run(command, check=True)
    digest = _sha256(archive)
    if digest != SDIST_SHA256:
        raise SystemExit(f"{archive}: SHA-256 {digest}, expected {SDIST_SHA256}")
    shutil.rmtree(tree, ignore_errors=True)
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(cache, filter="data")
        else:  # Python < 3.9.17 / 3.10.12 / 3.11.4: the archive's hash is pinned above
            tar.extractall(cache)
    if not (tree / "tests" / "conftest.py").exists():
        raise SystemExit(f"{SDIST} has no tests/ directory")
    marker.touch()
    return tree


# -- known failures ----------------------------------------------------------------------------


class Entry(NamedTuple):
    reason: str
    strict: bool


def read_known_failures(path: Path) -> Dict[str, Entry]:
    """Parse the list: ``nodeid  # reason`` a line; blank lines and ``#`` comments skipped."""
    entries: Dict[str, Entry] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        nodeid, separator, reason = line.partition(" # ")
        nodeid, reason = nodeid.strip(), reason.strip()
        if not separator or not nodeid or not reason:
            raise SystemExit(f"{path}:{number}: expected 'nodeid  # reason', got {line!r}")
        if nodeid in entries:
            raise SystemExit(f"{path}:{number}: {nodeid} is listed twice")
        entries[nodeid] = Entry(reason, strict=not reason.startswith("flaky:"))
    return entries


class KnownFailures:
    """pytest plugin: the listed tests are expected failures (see the module docstring)."""

    def __init__(self, entries: Dict[str, Entry], mark: bool, check_stale: bool) -> None:
        self.entries = entries
        self.mark = mark
        self.check_stale = check_stale

    def pytest_collection_modifyitems(self, items: List[pytest.Item]) -> None:
        collected = {item.nodeid for item in items}
        stale = sorted(set(self.entries) - collected)
        if stale and self.check_stale:
            raise pytest.UsageError(
                f"{KNOWN_FAILURES.name} lists tests that httpx's suite does not have: {stale}"
            )
        if not self.mark:
            return
        for item in items:
            entry = self.entries.get(item.nodeid)
            if entry is not None:
                item.add_marker(pytest.mark.xfail(reason=entry.reason, strict=entry.strict))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        # Inside pytest's own wrapper that turns unraisable exceptions (a ResourceWarning from a
        # finaliser) into a failure of the running test.
        try:
            return (yield)
        finally:
            if item.nodeid in self.entries:
                gc.collect()


# -- no internet -------------------------------------------------------------------------------


def _is_local(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None or host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    return address.is_loopback or address.is_unspecified


def _is_ip_literal(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    return True


class NoInternet:
    """pytest plugin: no test reaches beyond the loopback interface (see the module docstring)."""

    def __init__(self) -> None:
        self.attempts: Dict[str, List[str]] = {}
        self.current = "(outside tests)"
        self._saved: Dict[str, Any] = {}

    def _record(self, what: str) -> None:
        self.attempts.setdefault(self.current, []).append(what)

    def pytest_configure(self) -> None:
        guard = self
        real_getaddrinfo = socket.getaddrinfo
        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if not (_is_local(host) or _is_ip_literal(host)):
                guard._record(f"lookup {host!r}")
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (offline)")
            return real_getaddrinfo(host, *args, **kwargs)

        def check(sock: socket.socket, address: Any) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
                guard._record(f"connect {address!r}")
                raise OSError(errno.ENETUNREACH, "Network is unreachable (offline)")

        def connect(sock: socket.socket, address: Any) -> None:
            check(sock, address)
            real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            check(sock, address)
            return real_connect_ex(sock, address)

        self._saved = {
            "getaddrinfo": real_getaddrinfo,
            "connect": real_connect,
            "connect_ex": real_connect_ex,
        }
        socket.getaddrinfo = getaddrinfo
        socket.socket.connect = connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]

    def pytest_unconfigure(self) -> None:
        if self._saved:
            socket.getaddrinfo = self._saved["getaddrinfo"]
            socket.socket.connect = self._saved["connect"]  # type: ignore[method-assign]
            socket.socket.connect_ex = self._saved["connect_ex"]  # type: ignore[method-assign]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, Any, Any]:
        self.current = item.nodeid
        try:
            return (yield)
        finally:
            self.current = "(outside tests)"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.attempts:
            return
        terminalreporter.section("attempts to reach the internet (blocked)")
        for nodeid, attempts in sorted(self.attempts.items()):
            terminalreporter.line(f"{nodeid}: {', '.join(sorted(set(attempts)))}")


def check_port_free(port: int = 8000) -> None:
    """Fail early if httpx's fixed test port is taken (its fixture would wait for ever)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise SystemExit(f"httpx's test server needs 127.0.0.1:{port}: {exc}") from None


# -- main ------------------------------------------------------------------------------------


def _describe_httpcore() -> str:
    try:
        distribution = importlib.metadata.distribution("httpcore")
    except importlib.metadata.PackageNotFoundError:
        return "httpcore (not installed)"
    # An editable install records its source folder in direct_url.json (PEP 610).
    direct_url = json.loads(distribution.read_text("direct_url.json") or "{}")
    location = direct_url.get("url") or distribution.locate_file("")
    return f"httpcore {distribution.version} ({location})"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="download directory")
    parser.add_argument(
        "--ignore-known-failures",
        action="store_true",
        help=f"run the tests of {KNOWN_FAILURES.name} as ordinary tests",
    )
    # Every other argument goes to pytest (e.g. `-- -k proxies -x`).
    options, pytest_args = parser.parse_known_args(argv)
    pytest_args = [arg for arg in pytest_args if arg != "--"]

    tree = fetch_tests(options.cache.resolve())
    entries = read_known_failures(KNOWN_FAILURES)
    known = KnownFailures(
        entries, mark=not options.ignore_known_failures, check_stale=not pytest_args
    )
    args = [
        "-m",
        "not network",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfExXs",  # failures, errors, xfail, xpass, skips
        "--rootdir",
        str(tree),
        "-c",
        str(tree / "pyproject.toml"),
    ]
    if importlib.util.find_spec("pytest_timeout") is not None:
        args.append(f"--timeout={TEST_TIMEOUT}")
    args += pytest_args or ["tests"]
    print(
        f"httpx {HTTPX_VERSION} test suite against {_describe_httpcore()}, "
        f"{len(entries)} known failures listed",
        flush=True,
    )
    check_port_free()
    os.chdir(tree)
    return int(pytest.main(args, plugins=[known, NoInternet()]))


if __name__ == "__main__":
    sys.exit(main())
