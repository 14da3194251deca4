"""Start a private nginx on loopback for the benchmark.

Everything nginx needs (config, pid file, logs, temp dirs, TLS cert, served files) lives under
``benchmarks/.work/nginx``; the system's nginx configuration and service are never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

SMALL_BODY_SIZE = 2048
# The HTTP/2 memory scenario's body: small enough that 1,000 unread ones fit in the flow-control
# windows, so what is measured is the streams, not bodies waiting in buffers.
TINY_BODY_SIZE = 16
BIG_BODY_SIZE = 128 * 1024 * 1024
UPLOAD_BODY_SIZE = 16 * 1024 * 1024
UPLOAD_REPLY = b"ok\n"
# The memory scenarios hold this many connections (HTTP/1.1) or streams (HTTP/2) open at once.
MEMORY_FAN_OUT = 1000

_NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


def find_nginx() -> Optional[str]:
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in _NGINX_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def ensure_nginx() -> str:
    """Return the nginx binary, installing the Debian package when it is missing."""
    binary = find_nginx()
    if binary:
        return binary
    if not shutil.which("apt-get"):
        raise RuntimeError("nginx is not installed and apt-get is not available to install it")
    print("nginx not found: installing it with apt-get ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", RUNLEVEL="1")
    subprocess.run(["apt-get", "update"], check=True, env=env)
    # nginx-light is the small build (Debian 12); newer Debian only ships "nginx".
    for package in ("nginx-light", "nginx"):
        result = subprocess.run(["apt-get", "install", "-y", package], env=env)
        if result.returncode == 0 and find_nginx():
            break
    binary = find_nginx()
    if not binary:
        raise RuntimeError("could not install nginx")
    return binary


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nginx_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
    if not match:
        return (0, 0, 0)
    return tuple(int(part) for part in match.groups())


def _build_flags(binary: str) -> str:
    return subprocess.run([binary, "-V"], capture_output=True, text=True).stderr


def _write_file(path: Path, size: int, fill: bytes) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    block = (fill * (1024 * 1024 // len(fill) + 1))[: 1024 * 1024]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        remaining = size
        while remaining > 0:
            chunk = block[: min(remaining, len(block))]
            fh.write(chunk)
            remaining -= len(chunk)
    tmp.replace(path)


def _make_certs(cert_dir: Path, python: str) -> None:
    """Create a CA and a server certificate for 127.0.0.1 with trustme (in the peers venv)."""
    if (cert_dir / "ca.pem").exists() and (cert_dir / "server.pem").exists():
        return
    cert_dir.mkdir(parents=True, exist_ok=True)
    code = (
        "import sys, trustme\n"
        "d = sys.argv[1]\n"
        "ca = trustme.CA()\n"
        "cert = ca.issue_cert('127.0.0.1', 'localhost')\n"
        "ca.cert_pem.write_to_path(d + '/ca.pem')\n"
        "cert.private_key_and_cert_chain_pem.write_to_path(d + '/server.pem')\n"
    )
    subprocess.run([python, "-c", code, str(cert_dir)], check=True)


@dataclass
class Server:
    http_port: int
    https_port: int
    wide_port: int
    ca_file: str
    process: subprocess.Popen[bytes]
    version: str
    log_dir: Path

    @property
    def small_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/2k"

    @property
    def chunked_url(self) -> str:
        """The 2 kB body of `small_url`, sent chunked (one chunk, then the last chunk)."""
        return f"http://127.0.0.1:{self.http_port}/2k-chunked"

    @property
    def big_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/128m"

    @property
    def h2_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}/2k"

    @property
    def tls_tiny_url(self) -> str:
        return f"https://127.0.0.1:{self.wide_port}/16"

    @property
    def upload_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/upload"

    @property
    def tls_url(self) -> str:
        """TLS (HTTP/1.1 or h2 by ALPN) without request limits per connection."""
        return f"https://127.0.0.1:{self.wide_port}/2k"

    def pin(self, cpus: set[int]) -> None:
        """Let nginx's master and worker processes run on `cpus` only (Linux)."""
        pids = [self.process.pid]
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            pids += [int(pid) for pid in children.read_text().split()]
        except OSError:  # a kernel without the children file: the workers keep their CPUs
            pass
        for pid in pids:
            try:
                os.sched_setaffinity(pid, cpus)
            except ProcessLookupError:  # a worker nginx has just replaced
                pass

    def stop(self) -> None:
        if self.process.poll() is None:
            # SIGQUIT is nginx's graceful shutdown; fall back to SIGKILL of our own child.
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _stop_stale(root: Path) -> None:
    """Stop an nginx left by an earlier, killed run of this benchmark (same prefix only)."""
    pid_file = root / "nginx.pid"
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if str(root / "conf" / "nginx.conf").encode() in cmdline:
        os.kill(pid, signal.SIGQUIT)
        for _ in range(50):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)


def start(work: Path, cert_python: str) -> Server:
    binary = ensure_nginx()
    root = work / "nginx"
    _stop_stale(root)
    www = root / "www"
    logs = root / "logs"
    temp = root / "temp"
    for directory in (root, www, logs, temp, root / "conf"):
        directory.mkdir(parents=True, exist_ok=True)
    _write_file(www / "2k", SMALL_BODY_SIZE, b"x")
    _write_file(www / "16", TINY_BODY_SIZE, b"y")
    _write_file(www / "128m", BIG_BODY_SIZE, bytes(range(256)))
    _make_certs(root / "certs", cert_python)

    version = nginx_version(binary)
    flags = _build_flags(binary)
    ports: list[int] = []
    while len(ports) < 3:
        port = free_port()
        if port not in ports:
            ports.append(port)
    http_port, https_port, wide_port = ports

    temp_lines = [f"client_body_temp_path {temp}/body;", f"proxy_temp_path {temp}/proxy;"]
    for module in ("fastcgi", "uwsgi", "scgi"):
        if f"--without-http_{module}_module" not in flags:
            temp_lines.append(f"{module}_temp_path {temp}/{module};")

    def h2_listen(port: int) -> str:
        if version >= (1, 25, 1):
            return f"listen 127.0.0.1:{port} ssl backlog=4096;\n        http2 on;"
        return f"listen 127.0.0.1:{port} ssl http2 backlog=4096;"

    user_line = "user root;" if os.geteuid() == 0 else ""
    cert = root / "certs" / "server.pem"
    temps = "\n    ".join(temp_lines)
    config = f"""\
{user_line}
worker_processes 1;
worker_rlimit_nofile 8192;
pid {root}/nginx.pid;
error_log {logs}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    open_file_cache max=64;
    {temps}

    # HTTP/1.1 endpoints: /2k and /128m; keep-alive connections are never closed by nginx
    # during a run. POST /upload reads the body (up to 64 MiB) into memory, then says "ok".
    # (A location that only answers would make nginx discard the body 4 KiB per recv(): the
    # scenario would measure that loop, the same for every client. The proxy module reads
    # the whole body first, in large reads, and here passes none of it on.)
    upstream upload_answer {{
        server 127.0.0.1:{http_port};
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{http_port} backlog=4096;
        keepalive_requests 100000;
        root {www};
        location = /upload {{
            client_max_body_size 64m;
            client_body_buffer_size 64m;
            proxy_pass_request_body off;
            proxy_method GET;
            proxy_http_version 1.1;
            proxy_set_header Content-Length "";
            proxy_set_header Connection "";
            proxy_pass http://upload_answer/upload-answer;
        }}
        location = /upload-answer {{
            return 200 "ok\n";
        }}
        # The /2k file, chunked: the SSI filter (no directives in it) drops the length.
        location = /2k-chunked {{
            ssi on;
            ssi_types *;
            alias {www}/2k;
        }}
    }}

    # HTTP/2 over TLS, nginx's default keep-alive settings (keepalive_requests 1000).
    server {{
        {h2_listen(https_port)}
        ssl_certificate {cert};
        ssl_certificate_key {cert};
        root {www};
    }}

    # TLS without request limits: HTTPS keep-alive (HTTP/1.1 by ALPN) and the HTTP/2 memory
    # scenario (the clients open at most 100 streams a connection; nginx would allow more).
    server {{
        {h2_listen(wide_port)}
        ssl_certificate {cert};
        ssl_certificate_key {cert};
        keepalive_requests 1000000;
        http2_max_concurrent_streams {MEMORY_FAN_OUT + 24};
        root {www};
    }}
}}
"""
    conf_path = root / "conf" / "nginx.conf"
    conf_path.write_text(config)
    check = subprocess.run(
        [binary, "-t", "-p", str(root), "-c", str(conf_path)], capture_output=True, text=True
    )
    if check.returncode != 0:
        raise RuntimeError(f"nginx rejected its config:\n{check.stderr}")
    process = subprocess.Popen(
        [binary, "-p", str(root), "-c", str(conf_path), "-g", "daemon off;"],
        stdin=subprocess.DEVNULL,
    )
    server = Server(
        http_port=http_port,
        https_port=https_port,
        wide_port=wide_port,
        ca_file=str(root / "certs" / "ca.pem"),
        process=process,
        version=".".join(str(part) for part in version),
        log_dir=logs,
    )
    deadline = time.monotonic() + 15
    pending = {http_port, https_port, wide_port}
    while pending:
        if process.poll() is not None:
            log = (logs / "error.log").read_text() if (logs / "error.log").exists() else ""
            raise RuntimeError(f"nginx exited with {process.returncode}:\n{log}")
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("nginx did not start listening within 15 s")
        for port in list(pending):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                pending.discard(port)
            except OSError:
                pass
        if pending:
            time.sleep(0.05)
    return server
