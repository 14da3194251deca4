"""The pieces of scripts/httpx_suite.py that decide what passes: the list parser and the guard."""

from __future__ import annotations

import errno
import importlib.util
import socket
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def script() -> ModuleType:
    path = ROOT / "scripts" / "httpx_suite.py"
    spec = importlib.util.spec_from_file_location("httpx_suite", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_known_failures_file_is_well_formed(script: ModuleType) -> None:
    entries = script.read_known_failures(script.KNOWN_FAILURES)
    for nodeid, entry in entries.items():
        assert nodeid.startswith("tests/") and "::" in nodeid, nodeid
        assert len(entry.reason) > 20, nodeid


def test_parser(script: ModuleType, tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(
        "# comment\n\n"
        "tests/a.py::test_x[p]  # fails identically with httpcore 1.0.9\n"
        "tests/a.py::test_y  # flaky: depends on timing\n"
    )
    entries = script.read_known_failures(listing)
    assert entries == {
        "tests/a.py::test_x[p]": script.Entry("fails identically with httpcore 1.0.9", True),
        "tests/a.py::test_y": script.Entry("flaky: depends on timing", False),
    }
    for bad in ("tests/a.py::test_x\n", "tests/a.py::test_x  #   \n", "t::a # r\nt::a # r\n"):
        listing.write_text(bad)
        with pytest.raises(SystemExit):
            script.read_known_failures(listing)


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", True),
        (b"127.0.0.1", True),
        ("example.com", False),
        ("10.255.255.1", False),
        ("2001:db8::1", False),
        ("::ffff:8.8.8.8", False),
    ],
)
def test_is_local(script: ModuleType, host: object, local: bool) -> None:
    assert script._is_local(host) is local


def test_guard_blocks_and_records(script: ModuleType) -> None:
    originals = (socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex)
    guard = script.NoInternet()
    guard.pytest_configure()
    try:
        guard.current = "some::test"
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("example.com", 80)
        with socket.socket() as sock, pytest.raises(OSError) as info:
            sock.connect(("192.0.2.1", 80))
        assert info.value.errno == errno.ENETUNREACH
        assert socket.getaddrinfo("127.0.0.1", 80)  # IP literals and localhost still resolve
    finally:
        guard.pytest_unconfigure()
    assert guard.attempts == {"some::test": ["lookup 'example.com'", "connect ('192.0.2.1', 80)"]}
    assert (socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex) == originals
