"""The `httpcore` command line (docs/cli.md), run as a subprocess against the local servers.

Requests, output, TLS, the trace and proxies; the failures and exit codes are in
test_cli_errors.py.
"""

from __future__ import annotations

import json
import os
import pty
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable, List

import pytest
import trustme
from cli_helpers import CLI, cli, error_line, in_order, trace
from conftest import PROXY_AUTH
from servers import HTTPProxy, HTTPServer, RawServer, SocksProxy

from httpcore import _cli


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


# -- requests and responses ------------------------------------------------------------------


def test_get_writes_the_body_to_stdout(server: HTTPServer) -> None:
    result = cli(server.url + "/")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"Hello, world!", b"")


def test_body_from_a_file_is_sent_and_echoed_byte_for_byte(
    server: HTTPServer, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 64 + b"\r\n\x00\n"
    (tmp_path / "body").write_bytes(data)
    result = cli("-d", f"@{tmp_path / 'body'}", server.url + "/echo")
    assert (result.returncode, result.stdout) == (0, data)


def test_body_from_stdin_makes_a_post(server: HTTPServer) -> None:
    result = cli("-v", "-i", "-d", "@-", server.url + "/echo", stdin=b"from stdin\n")
    assert result.returncode == 0
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert b"\r\nx-received-length: 11\r\n" in head + b"\r\n"
    assert body == b"from stdin\n"
    lines = trace(result)
    in_order(lines, "> POST /echo HTTP/1.1", "> Content-Length: 11")


def test_data_arguments_method_and_repeated_data(server: HTTPServer) -> None:
    result = cli("-X", "PUT", "-d", "a=1", "-d", "b=2", "-v", server.url + "/echo")
    assert (result.returncode, result.stdout) == (0, b"a=1&b=2")
    assert "> PUT /echo HTTP/1.1" in trace(result)


def test_headers_are_added_replaced_and_removed(server: HTTPServer) -> None:
    result = cli(
        "-H",
        "X-Test: one two",
        "-H",
        "user-agent: tester",
        "-H",
        "Accept:",
        "-H",
        "X-Empty;",
        server.url + "/echo_headers",
    )
    assert result.returncode == 0, result.stderr
    headers = [(name.lower(), value) for name, value in json.loads(result.stdout)["headers"]]
    assert ("x-test", "one two") in headers
    assert ("user-agent", "tester") in headers
    assert ("x-empty", "") in headers
    assert "accept" not in [name for name, _ in headers]
    assert [name for name, _ in headers].count("user-agent") == 1


def test_include_writes_the_head_before_the_body(server: HTTPServer) -> None:
    result = cli("-i", server.url + "/")
    assert result.returncode == 0
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200"  # hypercorn sends no reason phrase
    assert b"content-length: 13" in lines
    assert body == b"Hello, world!"


def test_head_option_sends_head_and_writes_only_the_head(server: HTTPServer) -> None:
    result = cli("-I", "-v", server.url + "/")
    assert result.returncode == 0
    assert result.stdout.startswith(b"HTTP/1.1 200\r\n")
    assert result.stdout.endswith(b"\r\n\r\n")
    assert "> HEAD / HTTP/1.1" in trace(result)


def test_output_file_gets_the_body_and_no_progress_without_a_terminal(
    server: HTTPServer, tmp_path: Path
) -> None:
    target = tmp_path / "out.bin"
    result = cli("-o", str(target), server.url + "/bytes/300000")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    assert target.read_bytes() == b"x" * 300000


def test_output_file_with_include(server: HTTPServer, tmp_path: Path) -> None:
    target = tmp_path / "out"
    result = cli("-i", "-o", str(target), server.url + "/")
    assert (result.returncode, result.stdout) == (0, b"")
    assert target.read_bytes().startswith(b"HTTP/1.1 200\r\n")
    assert target.read_bytes().endswith(b"\r\n\r\nHello, world!")


def test_an_error_status_exits_0_and_fail_exits_22(server: HTTPServer, tmp_path: Path) -> None:
    result = cli(server.url + "/missing")
    assert (result.returncode, result.stdout) == (0, b"Not Found")
    target = tmp_path / "never"
    result = cli("--fail", "-o", str(target), server.url + "/status/503")
    assert result.returncode == _cli.HTTP_ERROR == 22
    assert result.stdout == b""
    assert not target.exists()
    assert error_line(result) == "httpcore: error: the server replied 503"


def test_progress_bar_on_a_terminal(server: HTTPServer, tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [*CLI, "-o", str(target), server.url + "/bytes/200000"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
        )
        os.close(terminal)
        terminal = -1
        output = b""
        while True:  # read while it runs: a full terminal buffer would block the writer
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the process is gone and its output drained
                break
            if not chunk:
                break
            output += chunk
        assert process.wait(30) == 0
        assert process.stdout is not None
        process.stdout.close()
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    assert target.read_bytes() == b"x" * 200000
    text = output.decode()
    assert text.startswith("\r")
    assert "195.3 KiB / 195.3 KiB 100%" in text
    assert re.search(r"\d+(\.\d)? (B|KiB|MiB|GiB)/s", text)
    assert text.endswith("\n")


# -- TLS and HTTP versions -------------------------------------------------------------------


def test_https_with_cacert_and_http2(tls_server: HTTPServer, ca_file: str) -> None:
    result = cli("--cacert", ca_file, "--http2", "-v", tls_server.url + "/http_version")
    assert (result.returncode, result.stdout) == (0, b"2"), result.stderr
    lines = trace(result)
    in_order(
        lines,
        "connection.connect_tcp.started  127.0.0.1:",
        "connection.connect_tcp.complete  to 127.0.0.1:",
        "connection.start_tls.started  server name 127.0.0.1",
        "connection.start_tls.complete",
        "http2.send_connection_init.started",
        "http2.send_request_headers.started  stream 1",
        "> GET /http_version HTTP/2",
        "http2.receive_response_headers.complete",
        "< HTTP/2 200",
        "http2.receive_response_body.complete  1 byte",
        "http2.response_closed.complete",
        "* total ",
    )
    tls_line = next(line for line in lines if line.startswith("connection.start_tls.complete"))
    assert re.search(r"TLSv1\.[23] \S+, ALPN h2, certificate ", tls_line), tls_line
    assert lines[-1].endswith(", HTTP/2, 1 connection")


def test_http1_only_over_tls(tls_server: HTTPServer, ca_file: str) -> None:
    result = cli("--cacert", ca_file, "--http1-only", "-v", tls_server.url + "/http_version")
    assert (result.returncode, result.stdout) == (0, b"1.1")
    assert any(line.endswith("ALPN http/1.1") or "ALPN http/1.1," in line for line in trace(result))


def test_http2_prior_knowledge_over_plain_tcp(server: HTTPServer) -> None:
    result = cli("--http2-prior-knowledge", server.url + "/http_version")
    assert (result.returncode, result.stdout) == (0, b"2")


def test_untrusted_certificate_exits_60_and_insecure_skips_the_check(
    tls_server: HTTPServer,
) -> None:
    result = cli("-v", tls_server.url + "/")
    assert result.returncode == _cli.CERTIFICATE_FAILED == 60
    line = error_line(result)
    assert line.startswith("httpcore: error: could not verify the certificate of 127.0.0.1: ")
    assert "CERTIFICATE_VERIFY_FAILED" in line
    assert trace(result)[-1].startswith(
        "connection.start_tls.failed  ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED]"
    )
    result = cli("-k", tls_server.url + "/")
    assert (result.returncode, result.stdout) == (0, b"Hello, world!")


def test_tls_handshake_failure_exits_35(raw_server: Callable[..., RawServer]) -> None:
    def not_tls(conn: socket.socket, server: RawServer) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")  # plain HTTP in answer to a TLS hello

    srv = raw_server(not_tls)
    result = cli(f"https://127.0.0.1:{srv.port}/")
    assert result.returncode == _cli.TLS_FAILED == 35
    assert error_line(result).startswith("httpcore: error: TLS handshake with 127.0.0.1 failed: ")


# -- the trace -------------------------------------------------------------------------------


def test_trace_of_an_http11_request(server: HTTPServer) -> None:
    url = server.url.replace("http://", "http://someone:secret@")  # user info is not sent
    result = cli("-v", url + "/")
    assert result.returncode == 0
    lines = trace(result)
    assert lines[0] == f"* GET {url.replace('secret', '***')}/"
    assert lines[1:3] == [
        f"connection.connect_tcp.started  127.0.0.1:{server.port}",
        lines[2],
    ]
    assert re.fullmatch(
        rf"connection\.connect_tcp\.complete  to 127\.0\.0\.1:{server.port}, from 127\.0\.0\.1:\d+",
        lines[2],
    )
    assert lines[3:9] == [
        "http11.send_request_headers.started",
        "> GET / HTTP/1.1",
        f"> Host: 127.0.0.1:{server.port}",
        f"> User-Agent: httpcore/{_cli.__version__}",
        "> Accept: */*",
        "http11.send_request_headers.complete",
    ]
    in_order(
        lines,
        "http11.send_request_body.started",
        "http11.send_request_body.complete",
        "http11.receive_response_headers.started",
        "http11.receive_response_headers.complete",
        "< HTTP/1.1 200",
        "< content-length: 13",
        "http11.receive_response_body.started",
        "http11.receive_response_body.complete  13 bytes",
        "http11.response_closed.started",
        "http11.response_closed.complete",
    )
    assert re.fullmatch(
        r"\* total [\d.]+ ms, connect [\d.]+ ms, first byte [\d.]+ ms, sent 0 bytes,"
        r" received 13 bytes \([^)]+/s\), HTTP/1\.1, 1 connection",
        lines[-1],
    ), lines[-1]


def test_trace_escapes_control_characters_from_the_server(
    raw_server: Callable[..., RawServer],
) -> None:
    srv = raw_server(b"HTTP/1.1 200 OK\r\nX-Evil: \x1b[31mred\r\nContent-Length: 0\r\n\r\n")
    result = cli("-v", srv.url + "/")
    assert result.returncode == 0
    assert "< X-Evil: \\x1b[31mred" in trace(result)
    assert b"\x1b" not in result.stderr


# -- proxies ---------------------------------------------------------------------------------


def test_http_proxy_forwards_http(server: HTTPServer, http_proxy: HTTPProxy) -> None:
    result = cli("--proxy", http_proxy.url, "-v", server.url + "/")
    assert (result.returncode, result.stdout) == (0, b"Hello, world!")
    lines = trace(result)
    assert f"connection.connect_tcp.started  127.0.0.1:{http_proxy.port}" in lines
    assert f"> GET {server.url}/ HTTP/1.1" in lines
    assert http_proxy.forwards == 1


def test_http_proxy_tunnels_https(
    tls_server: HTTPServer, http_proxy: HTTPProxy, ca_file: str
) -> None:
    result = cli("-x", http_proxy.url, "--cacert", ca_file, "--http2", "-v", tls_server.url + "/")
    assert (result.returncode, result.stdout) == (0, b"Hello, world!"), result.stderr
    in_order(
        trace(result),
        f"connection.connect_tcp.started  127.0.0.1:{http_proxy.port}",
        f"> CONNECT 127.0.0.1:{tls_server.port} HTTP/1.1",
        "< HTTP/1.1 200 Connection established",
        "proxy.start_tls.started  server name 127.0.0.1",
        "proxy.start_tls.complete",
        "http2.send_request_headers.started",
        "* total",
    )
    assert http_proxy.connects == 1


def test_https_proxy(server: HTTPServer, https_proxy: HTTPProxy, ca_file: str) -> None:
    result = cli("--proxy", https_proxy.url, "--cacert", ca_file, "-v", server.url + "/")
    assert (result.returncode, result.stdout) == (0, b"Hello, world!"), result.stderr
    in_order(trace(result), "connection.start_tls.complete  to 127.0.0.1", "> GET http://")


def test_proxy_password_is_masked_everywhere(
    server: HTTPServer, tls_server: HTTPServer, http_proxy_auth: HTTPProxy, ca_file: str
) -> None:
    user, password = PROXY_AUTH
    proxy = f"http://{user}:{password}@127.0.0.1:{http_proxy_auth.port}"
    for url in (server.url + "/", tls_server.url + "/"):
        result = cli("-x", proxy, "--cacert", ca_file, "-v", url)
        assert (result.returncode, result.stdout) == (0, b"Hello, world!"), result.stderr
        stderr = result.stderr.decode()
        assert f"via proxy http://{user}:***@127.0.0.1:{http_proxy_auth.port}" in stderr
        assert "> Proxy-Authorization: Basic ***" in stderr
        assert password not in stderr.replace("Password", "")
        assert "dXNlcjpwYXNz" not in stderr  # base64 of user:pass


def test_proxy_refusing_the_tunnel_exits_97(
    tls_server: HTTPServer, http_proxy_auth: HTTPProxy
) -> None:
    proxy = f"http://user:wrong-secret@127.0.0.1:{http_proxy_auth.port}"
    result = cli("-x", proxy, "-v", tls_server.url + "/")
    assert result.returncode == _cli.PROXY_FAILED == 97
    assert error_line(result) == "httpcore: error: proxy error: 407 Proxy Authentication Required"
    assert "wrong-secret" not in result.stderr.decode()


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_socks5_proxy(server: HTTPServer, socks5_proxy: SocksProxy, scheme: str) -> None:
    proxy = f"{scheme}://127.0.0.1:{socks5_proxy.port}"
    result = cli("--proxy", proxy, "-v", server.url + "/")
    assert (result.returncode, result.stdout) == (0, b"Hello, world!"), result.stderr
    in_order(
        trace(result),
        f"socks.connect_tcp.started  127.0.0.1:{socks5_proxy.port}",
        "socks.connect_tcp.complete",
        f"socks.setup_socks5_connection.started  to 127.0.0.1:{server.port}",
        "socks.setup_socks5_connection.complete",
        "> GET / HTTP/1.1",
    )


def test_socks5_with_auth_over_tls_and_socks4(
    tls_server: HTTPServer,
    socks5_auth_proxy: SocksProxy,
    socks4_proxy: SocksProxy,
    ca_file: str,
) -> None:
    user, password = PROXY_AUTH
    proxy = f"socks5://{user}:{password}@127.0.0.1:{socks5_auth_proxy.port}"
    result = cli("-x", proxy, "--cacert", ca_file, "-v", tls_server.url + "/")
    assert (result.returncode, result.stdout) == (0, b"Hello, world!"), result.stderr
    stderr = result.stderr.decode()
    assert "with username/password" in stderr and f":{password}@" not in stderr
    in_order(trace(result), "socks.setup_socks5_connection.complete", "socks.start_tls.complete")
    result = cli("-x", f"socks4://127.0.0.1:{socks4_proxy.port}", "-v", tls_server.url + "/", "-k")
    assert (result.returncode, result.stdout) == (0, b"Hello, world!"), result.stderr
    assert "socks.setup_socks4_connection.complete" in " ".join(trace(result))


def test_socks_wrong_password_exits_97(server: HTTPServer, socks5_auth_proxy: SocksProxy) -> None:
    proxy = f"socks5://user:wrong-secret@127.0.0.1:{socks5_auth_proxy.port}"
    result = cli("-x", proxy, server.url + "/")
    assert result.returncode == _cli.PROXY_FAILED
    assert error_line(result).startswith("httpcore: error: proxy error: ")
    assert "wrong-secret" not in result.stderr.decode()


@pytest.mark.parametrize("scheme", ["http://", "socks5://", ""])  # "": http, as in curl
def test_unreachable_proxy_exits_7(server: HTTPServer, scheme: str) -> None:
    result = cli("--proxy", f"{scheme}127.0.0.1:1", server.url + "/")
    assert result.returncode == _cli.CONNECT_FAILED == 7
    assert error_line(result).startswith(
        "httpcore: error: could not connect to the proxy 127.0.0.1:1: "
    )


def test_unsupported_proxy_scheme_exits_1(server: HTTPServer) -> None:
    result = cli("--proxy", "ftp://127.0.0.1:21", server.url + "/")
    assert result.returncode == _cli.UNSUPPORTED_PROTOCOL == 1
    assert error_line(result).startswith("httpcore: error: unsupported proxy scheme ftp://; ")


@pytest.mark.parametrize(
    ("blocked", "args", "message"),
    [
        ("socksio", ["--proxy", "socks5://127.0.0.1:1080"], "SOCKS proxy support"),
        ("h2", ["--http2"], "HTTP/2 support"),
    ],
)
def test_missing_capability_exits_4(
    server: HTTPServer, blocked: str, args: List[str], message: str
) -> None:
    # As if the library of the capability were not installed.
    command = [
        sys.executable,
        "-c",
        f"import sys; sys.modules[{blocked!r}] = None; "
        "from httpcore._cli import main; sys.exit(main())",
    ]
    result = cli(*args, server.url + "/", command=command)
    assert result.returncode == _cli.MISSING_CAPABILITY == 4
    assert error_line(result) == (
        f"httpcore: error: {message} is not installed: pip install 'httpcore["
        f"{'socks' if blocked == 'socksio' else 'http2'}]'"
    )
