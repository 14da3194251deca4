"""Running the `httpcore` command line as a subprocess, and reading what it prints."""

from __future__ import annotations

import re
import select
import socket
import subprocess
import sys
from typing import List, Sequence

from servers import RawServer

TRACE_LINE = re.compile(r"^ *(\d+\.\d{3}) ms  (.*)$")
CLI = [sys.executable, "-m", "httpcore"]


def cli(
    *args: str,
    stdin: bytes = b"",
    command: Sequence[str] = CLI,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*command, *args], input=stdin, capture_output=True, timeout=timeout, check=False
    )


def error_line(result: subprocess.CompletedProcess[bytes]) -> str:
    """The last line of stderr, after checking that there is no traceback."""
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr, stderr
    return stderr.splitlines()[-1]


def trace(result: subprocess.CompletedProcess[bytes]) -> List[str]:
    """The -v lines without their times; checks that every line has one and that they grow."""
    messages, times = [], []
    for line in result.stderr.decode().splitlines():
        if line.startswith("httpcore: "):
            continue
        match = TRACE_LINE.match(line)
        assert match, f"not a trace line: {line!r}"
        times.append(float(match.group(1)))
        messages.append(match.group(2))
    assert times == sorted(times)
    return messages


def in_order(lines: List[str], *expected: str) -> None:
    """Each of `expected` starts some line, in this order."""
    position = 0
    for prefix in expected:
        for index in range(position, len(lines)):
            if lines[index].startswith(prefix):
                position = index + 1
                break
        else:
            raise AssertionError(f"{prefix!r} not found in order in {lines!r}")


def wait_for_hangup(conn: socket.socket, server: RawServer) -> None:
    """Read one request, then send nothing until the client goes away."""
    server.read_request(conn)
    poller = select.poll()
    poller.register(conn, select.POLLRDHUP | select.POLLHUP)
    poller.poll(10_000)
