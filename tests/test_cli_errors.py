"""The `httpcore` command line: failures, exit codes and the command line itself (docs/cli.md).

Each failure must give its documented exit code and one line on stderr, never a traceback.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional

import pytest
from cli_helpers import CLI, cli, error_line, trace, wait_for_hangup
from servers import HTTPServer, RawServer

from httpcore import _cli

ROOT = Path(__file__).resolve().parent.parent


# -- network failures ------------------------------------------------------------------------


def test_connection_refused_exits_7() -> None:
    result = cli("-v", "http://127.0.0.1:1/")
    assert result.returncode == 7
    assert error_line(result) == (
        "httpcore: error: could not connect to 127.0.0.1:1: [Errno 111] Connection refused"
    )
    assert trace(result)[-1] == (
        "connection.connect_tcp.failed  ConnectError: [Errno 111] Connection refused"
    )


def test_unresolvable_host_exits_6() -> None:
    result = cli("http://no-such-host.invalid/")
    assert result.returncode == _cli.RESOLVE_FAILED == 6
    line = error_line(result)
    assert line.startswith("httpcore: error: could not resolve no-such-host.invalid: ")


def test_connect_timeout_exits_28() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    waiting: List[socket.socket] = []
    try:
        # Fill the accept queue (never accepted) until a connect times out: from then on the
        # listener drops new connection attempts, so connecting hangs until the timeout.
        for _ in range(8):
            waiting.append(socket.socket())
            waiting[-1].settimeout(0.5)
            try:
                waiting[-1].connect(("127.0.0.1", port))
            except socket.timeout:
                break
        else:
            pytest.fail("the accept queue never filled up")
        result = cli("--connect-timeout", "0.3", "--timeout", "5", f"http://127.0.0.1:{port}/")
    finally:
        for sock in waiting:
            sock.close()
        listener.close()
    assert result.returncode == _cli.TIMEOUT
    assert error_line(result) == (
        f"httpcore: error: timed out connecting to 127.0.0.1:{port} (after 0.3 s)"
    )


def test_stalled_server_exits_28(raw_server: Callable[..., RawServer]) -> None:
    srv = raw_server(wait_for_hangup)
    result = cli("--timeout", "0.3", srv.url + "/")
    assert result.returncode == _cli.TIMEOUT == 28
    assert error_line(result) == (
        f"httpcore: error: timed out reading the response from 127.0.0.1:{srv.port} (after 0.3 s)"
    )


def test_server_not_reading_the_body_gives_a_write_timeout(
    raw_server: Callable[..., RawServer], tmp_path: Path
) -> None:
    def never_read(conn: socket.socket, server: RawServer) -> None:
        poller = select.poll()
        poller.register(conn, select.POLLRDHUP | select.POLLHUP)
        poller.poll(10_000)

    srv = raw_server(never_read)
    body = tmp_path / "big"
    body.write_bytes(b"x" * (64 * 1024 * 1024))  # more than the socket buffers hold
    result = cli("--timeout", "0.5", "-d", f"@{body}", srv.url + "/")
    assert result.returncode == _cli.TIMEOUT
    assert error_line(result) == (
        f"httpcore: error: timed out sending the request to 127.0.0.1:{srv.port} (after 0.5 s)"
    )


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (b"", "Server disconnected without sending a response."),
        (b"NOT HTTP AT ALL\r\n\r\n", None),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            "peer closed connection without sending complete message body"
            " (received 3 bytes, expected 10)",
        ),
    ],
)
def test_bad_responses_exit_8(
    raw_server: Callable[..., RawServer], response: bytes, message: Optional[str]
) -> None:
    srv = raw_server(response)
    result = cli(srv.url + "/")
    assert result.returncode == _cli.REMOTE_PROTOCOL_ERROR == 8
    prefix = f"httpcore: error: protocol error from 127.0.0.1:{srv.port}: "
    line = error_line(result)
    assert line.startswith(prefix)
    if message is not None:
        assert line == prefix + message
    assert result.stdout == response.partition(b"\r\n\r\n")[2]


def test_connection_reset_in_the_body_exits_56(raw_server: Callable[..., RawServer]) -> None:
    def reset(conn: socket.socket, server: RawServer) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        time.sleep(0.2)  # let the client read the head before the reset discards it
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    srv = raw_server(reset)
    result = cli(srv.url + "/")
    assert result.returncode == _cli.RECEIVE_FAILED == 56, result.stderr
    assert error_line(result).startswith(f"httpcore: error: receiving from 127.0.0.1:{srv.port}")


def test_invalid_header_value_exits_43(server: HTTPServer) -> None:
    result = cli("-H", "X-Bad: a\r\nInjected: yes", server.url + "/")
    assert result.returncode == _cli.LOCAL_PROTOCOL_ERROR == 43
    assert error_line(result).startswith("httpcore: error: invalid request: ")


def test_ctrl_c_exits_130(raw_server: Callable[..., RawServer]) -> None:
    srv = raw_server(wait_for_hangup)
    process = subprocess.Popen(
        [*CLI, "-v", srv.url + "/"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    seen = []
    for raw in iter(process.stderr.readline, b""):
        seen.append(raw.decode())
        if "http11.receive_response_headers.started" in seen[-1]:
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == _cli.INTERRUPTED == 130
    assert "Traceback" not in stderr.decode()
    assert stderr.decode().splitlines()[-1] == "httpcore: interrupted"


# -- the command line itself -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "code", "start"),
    [
        ("http://127.0.0.1:notaport/", _cli.BAD_URL, "httpcore: error: malformed URL "),
        ("http://example.com/\N{SNOWMAN}", _cli.BAD_URL, "httpcore: error: malformed URL "),
        ("http:///path", _cli.BAD_URL, "httpcore: error: malformed URL 'http:///path': no host"),
        ("ftp://example.com/", _cli.UNSUPPORTED_PROTOCOL, "httpcore: error: Request URL has an"),
        ("example.com", _cli.UNSUPPORTED_PROTOCOL, "httpcore: error: Request URL is missing"),
    ],
)
def test_bad_urls(url: str, code: int, start: str) -> None:
    result = cli(url)
    assert result.returncode == code
    assert error_line(result).startswith(start)


@pytest.mark.parametrize(
    "args",
    [[], ["-H", "no colon", "http://127.0.0.1:1/"], ["--timeout", "-1", "http://127.0.0.1:1/"]],
)
def test_usage_errors_exit_2(args: List[str]) -> None:
    result = cli(*args)
    assert result.returncode == _cli.USAGE == 2
    assert error_line(result).startswith("httpcore: error: ")


def test_local_file_errors(tmp_path: Path, server: HTTPServer) -> None:
    result = cli("-d", f"@{tmp_path / 'missing'}", server.url + "/echo")
    assert result.returncode == _cli.INPUT_FAILED == 26
    assert error_line(result).startswith("httpcore: error: could not read the body from ")
    result = cli("--cacert", str(tmp_path / "missing.pem"), "https://127.0.0.1:1/")
    assert result.returncode == _cli.CA_FILE_FAILED == 77
    assert error_line(result).startswith("httpcore: error: could not load the CA file ")
    result = cli("-o", str(tmp_path / "no" / "such" / "dir"), server.url + "/")
    assert result.returncode == _cli.OUTPUT_FAILED == 23
    assert error_line(result).startswith("httpcore: error: could not open ")


def test_closed_stdout_exits_23(server: HTTPServer) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to stdout fails with EPIPE
    try:
        process = subprocess.run(
            [*CLI, server.url + "/"], stdout=write_end, stderr=subprocess.PIPE, timeout=30
        )
    finally:
        os.close(write_end)
    assert process.returncode == _cli.OUTPUT_FAILED
    assert error_line(process).startswith("httpcore: error: could not write the body to stdout: ")


def test_console_script(server: HTTPServer) -> None:
    # The entry point the meta-package declares...
    pyproject = (ROOT / "packages" / "httpcore" / "pyproject.toml").read_text()
    match = re.search(r'^\[project\.scripts\]\nhttpcore = "([\w.]+):(\w+)"$', pyproject, re.M)
    assert match is not None
    module, function = match.groups()
    # ...run by the installed script; an environment installed before the script existed has
    # none, so run the entry point the way the generated script does.
    script = shutil.which("httpcore", path=str(Path(sys.executable).parent))
    command = (
        [script]
        if script is not None
        else [
            sys.executable,
            "-c",
            f"import sys; from {module} import {function}; sys.exit({function}())",
        ]
    )
    result = cli(server.url + "/", command=command)
    assert (result.returncode, result.stdout) == (0, b"Hello, world!")
    result = cli("--version", command=command)
    assert result.stdout.decode().startswith(f"httpcore {_cli.__version__} (")


def test_import_httpcore_does_not_load_the_command_line() -> None:
    code = (
        "import sys, httpcore\n"
        "print(sorted(m for m in sys.modules if m.startswith('httpcore._cli') or m == 'argparse'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    assert out.strip() == b"[]"


def test_docs_list_every_exit_code() -> None:
    page = (ROOT / "docs" / "cli.md").read_text()
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", page, re.MULTILINE)}
    codes = {
        value for name, value in vars(_cli).items() if name.isupper() and isinstance(value, int)
    }
    assert documented == codes
