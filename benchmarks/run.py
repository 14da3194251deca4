"""Benchmark: this project's httpcore against httpcore 1.0.9, httpx, niquests, urllib3, aiohttp,
pycurl and raw sockets.

    python benchmarks/run.py [--quick] [--only SCENARIO[,SCENARIO...]] [--clients NAME,...]

Starts a private nginx on loopback, builds virtualenvs under benchmarks/.work/ (our project and
httpcore 1.0.9 share the import name, so they cannot share one), then measures each
(scenario, client) pair in a fresh subprocess, several rounds with the clients interleaved, and
prints a Markdown table of rates and ratios, and of the client's CPU time per request (also
written to benchmarks/results.md), with one SVG bar chart per scenario in
docs/assets/benchmarks/. It never passes or fails on the numbers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import charts
import nginx_server
import venvs

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
WORKERS = HERE / "workers"
RESULTS_MD = HERE / "results.md"
RESULTS_JSON = WORK / "results.json"
CHARTS_DIR = HERE.parent / "docs" / "assets" / "benchmarks"


@dataclass(frozen=True)
class Client:
    key: str
    label: str
    venv: str  # a key of VENVS
    worker: str
    module: str = ""  # cold start: the module imported

    @property
    def is_ours(self) -> bool:
        return self.venv in ("ours", "cold-base", "cold-all")


CLIENTS = {
    c.key: c
    for c in (
        Client("ours", "ours (httpcore 1.1.0)", "ours", "httpcore_worker.py"),
        Client("httpcore", "httpcore 1.0.9", "peers", "httpcore_worker.py"),
        Client("urllib3", "urllib3", "peers", "urllib3_worker.py"),
        Client("aiohttp", "aiohttp", "peers", "aiohttp_worker.py"),
        Client("raw", "raw socket", "peers", "raw_worker.py"),
        Client("pycurl", "pycurl (libcurl)", "peers", "pycurl_worker.py"),
        Client("httpx", "httpx 0.28 + ours", "ours", "httpx_worker.py"),
        Client("httpx-1.0.9", "httpx 0.28 + httpcore 1.0.9", "peers", "httpx_worker.py"),
        Client("niquests", "niquests 3", "niquests", "niquests_worker.py"),
        Client("cold-base", "ours: httpcore.base, alone", "cold-base",
               "cold_worker.py", "httpcore.base"),
        Client("cold-1.0.9", "httpcore 1.0.9, no extras", "cold-109",
               "cold_worker.py", "httpcore"),
        Client("cold-all", "ours: httpcore, all extras", "cold-all", "cold_worker.py",
               "httpcore"),
        Client("cold-1.0.9-all", "httpcore 1.0.9, all extras", "cold-109-all",
               "cold_worker.py", "httpcore"),
    )
}  # fmt: skip

VENVS = {
    "peers": venvs.PEERS_REQUIREMENTS,
    "ours": venvs.OURS_REQUIREMENTS,
    "niquests": venvs.NIQUESTS_REQUIREMENTS,
    **venvs.COLD_VENVS,
}

# Units where a smaller number is better (memory, time): ratios are then value / value too,
# so below 1.00x means "less than the other".
LOWER_IS_BETTER = {"kB/conn", "kB/stream", "ms"}
# The worker's CPU time over the timed phase, per unit of work: µs per request for request
# rates, ms per 100 MB (10^8 bytes) for byte rates. Other scenarios report no CPU.
# Rate unit: (unit in the table, unit in results.json, scale from CPU seconds per work unit).
CPU_UNITS = {"req/s": ("µs", "µs/request", 1e6), "MB/s": ("ms/100 MB", "ms/10^8 bytes", 1e11)}


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    endpoint: str  # "small", "chunked", "big", "h2", "tls", "tls-tiny", "upload" or "none"
    concurrency: int
    unit: str
    clients: tuple[str, ...]
    peer: Optional[str]
    description: str
    baseline: str = "httpcore"
    loop: str = "asyncio"
    # One connection, one request at a time: the client and nginx take turns, never run at
    # once, so with `--placement turns` they share one CPU (benchmarks/README.md, "Where the
    # processes run").
    takes_turns: bool = False

    @property
    def lower_is_better(self) -> bool:
        return self.unit in LOWER_IS_BETTER

    def cpu_per_work(self, result: dict[str, Any]) -> Optional[float]:
        """A run's CPU time in the unit of `CPU_UNITS`, or None if it has none."""
        if self.unit not in CPU_UNITS or result.get("cpu_s") is None:
            return None
        work = result.get("count") if self.unit == "req/s" else result.get("bytes")
        return float(result["cpu_s"]) * CPU_UNITS[self.unit][2] / work if work else None


def chunked(
    scenario: Scenario, key: str, title: str, clients: tuple[str, ...], what: str
) -> Scenario:
    """`scenario` with the same body sent chunked (`Transfer-Encoding: chunked`); `what`
    names `scenario` in the description."""
    description = f"{what} with the body sent chunked (Transfer-Encoding: chunked)"
    return replace(
        scenario, key=key, title=title, endpoint="chunked", clients=clients,
        description=description,
    )  # fmt: skip


SEQ = Scenario(
    "seq", "1. sequential GET /2k, one connection", "small", 1, "req/s",
    ("ours", "httpcore", "urllib3", "pycurl", "raw"), "urllib3",
    "one thread, back-to-back GETs of a 2 kB body on one keep-alive connection",
    takes_turns=True,
)  # fmt: skip
HTTPX_SEQ = Scenario(
    "httpx-seq", "7a. httpx.Client, sequential GET /2k", "small", 1, "req/s",
    ("httpx", "httpx-1.0.9", "niquests"), "niquests",
    "httpx.Client over ours vs over httpcore 1.0.9; niquests.Session",
    baseline="httpx-1.0.9",
    takes_turns=True,
)  # fmt: skip

SCENARIOS = [
    SEQ,
    chunked(
        SEQ, "seq-chunked", "1b. sequential GET /2k, chunked, one connection",
        ("ours", "httpcore", "urllib3"), "the sequential scenario",
    ),
    Scenario(
        "threads", "2. 8 threads, shared pool, GET /2k", "small", 8, "req/s",
        ("ours", "httpcore", "urllib3"), "urllib3",
        "8 threads sharing one pool (up to 8 connections), back-to-back GETs of 2 kB",
    ),
    Scenario(
        "stream", "3. stream 128 MiB body", "big", 1, "MB/s",
        ("ours", "httpcore", "urllib3", "raw"), "urllib3",
        "one connection, the 128 MiB body read chunk by chunk and discarded",
    ),
    Scenario(
        "asyncio", "4. asyncio, 50 tasks, GET /2k", "small", 50, "req/s",
        ("ours", "httpcore", "aiohttp"), "aiohttp",
        "50 asyncio tasks sharing one pool (up to 50 connections), GETs of 2 kB",
    ),
    Scenario(
        "asyncio-uvloop", "4b. asyncio on uvloop, 50 tasks, GET /2k", "small", 50, "req/s",
        ("ours", "httpcore", "aiohttp"), "aiohttp",
        "the asyncio scenario with uvloop's event loop",
        loop="uvloop",
    ),
    Scenario(
        "trio", "5. trio, 50 tasks, GET /2k", "small", 50, "req/s",
        ("ours", "httpcore"), None,
        "50 trio tasks sharing one pool (up to 50 connections), GETs of 2 kB",
    ),
    Scenario(
        "h2-asyncio", "6a. HTTP/2 asyncio, 100 streams", "h2", 100, "req/s",
        ("ours", "httpcore"), None,
        "100 asyncio tasks multiplexed on one TLS HTTP/2 connection, GETs of 2 kB",
    ),
    Scenario(
        "h2-threads", "6b. HTTP/2 threads, 100 streams", "h2", 100, "req/s",
        ("ours", "httpcore"), None,
        "100 threads multiplexed on one TLS HTTP/2 connection, GETs of 2 kB",
    ),
    HTTPX_SEQ,
    Scenario(
        "httpx-threads", "7b. httpx.Client, 8 threads, GET /2k", "small", 8, "req/s",
        ("httpx", "httpx-1.0.9"), None,
        "8 threads sharing one httpx.Client (up to 8 connections)",
        baseline="httpx-1.0.9",
    ),
    Scenario(
        "httpx-asyncio", "7c. httpx.AsyncClient, 50 tasks, GET /2k", "small", 50, "req/s",
        ("httpx", "httpx-1.0.9", "niquests"), "niquests",
        "50 asyncio tasks sharing one AsyncClient (HTTP/1.1, up to 50 connections); "
        "niquests.AsyncSession",
        baseline="httpx-1.0.9",
    ),
    Scenario(
        "httpx-h2", "7d. httpx.AsyncClient HTTP/2, 100 streams", "h2", 100, "req/s",
        ("httpx", "httpx-1.0.9", "niquests"), "niquests",
        "100 asyncio tasks on one AsyncClient(http2=True); niquests: batches of 100 multiplexed "
        "requests + gather()",
        baseline="httpx-1.0.9",
    ),
    chunked(
        HTTPX_SEQ, "httpx-chunked", "7e. httpx.Client, sequential GET /2k, chunked",
        HTTPX_SEQ.clients, "7a",
    ),
    Scenario(
        "https-seq", "8a. HTTPS keep-alive, sequential GET /2k", "tls", 1, "req/s",
        ("ours", "httpcore", "urllib3", "pycurl", "raw"), "urllib3",
        "one thread, back-to-back GETs on one TLS connection (HTTP/1.1)",
        takes_turns=True,
    ),
    Scenario(
        "https-new", "8b. HTTPS, new TLS connection per GET", "tls", 1, "req/s",
        ("ours", "httpcore", "urllib3"), "urllib3",
        "one thread, each GET sends Connection: close, so each opens a TLS connection "
        "(handshake rate)",
        takes_turns=True,
    ),
    Scenario(
        "upload", "9. upload 16 MiB POST bodies", "upload", 1, "MB/s",
        ("ours", "httpcore", "urllib3", "raw"), "urllib3",
        "one connection, back-to-back POSTs of an in-memory 16 MiB body, which nginx reads "
        "and drops",
    ),
    Scenario(
        "mem-idle", "10a. memory per idle keep-alive connection (lower is better)", "small",
        nginx_server.MEMORY_FAN_OUT, "kB/conn",
        ("ours", "httpcore", "aiohttp"), "aiohttp",
        "RSS growth for 1,000 idle keep-alive connections in one asyncio pool, per connection "
        "(1.0.9: 200, its pool is quadratic in them)",
    ),
    Scenario(
        "mem-h2", "10b. memory per open HTTP/2 stream (lower is better)", "tls-tiny",
        nginx_server.MEMORY_FAN_OUT, "kB/stream", ("ours", "httpcore"), None,
        "RSS growth with 1,000 streams open at once (GET /16, headers received) on 10 HTTP/2 "
        "connections, per stream",
    ),
    Scenario(
        "cold-base", "11a. cold start, import only (lower is better)", "none", 1, "ms",
        ("cold-base", "cold-1.0.9"), None,
        "best of many fresh interpreters: `import httpcore.base` (httpcore-base alone) vs "
        "`import httpcore` 1.0.9 (no extras)",
        baseline="cold-1.0.9",
    ),
    Scenario(
        "cold-all", "11b. cold start with all extras (lower is better)", "none", 1, "ms",
        ("cold-all", "cold-1.0.9-all"), None,
        "best of many fresh interpreters: `import httpcore`, every extra installed, ours vs "
        "1.0.9",
        baseline="cold-1.0.9-all",
    ),
]  # fmt: skip


@dataclass
class Cell:
    lower_is_better: bool = False
    samples: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # per run, in the unit of CPU_UNITS
    errors: list[str] = field(default_factory=list)
    request_errors: int = 0
    first_request_error: Optional[str] = None
    version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> Optional[float]:
        """The best sample: the highest rate, or the lowest memory / time."""
        if not self.samples:
            return None
        return min(self.samples) if self.lower_is_better else max(self.samples)

    @property
    def least_cpu(self) -> Optional[float]:
        return min(self.cpu) if self.cpu else None

    @property
    def broken(self) -> bool:
        return bool(self.errors) and not self.samples


def run_worker(
    python: str, client: Client, scenario: Scenario, server: nginx_server.Server, args: Any
) -> dict[str, Any]:
    url = {
        "small": server.small_url,
        "chunked": server.chunked_url,
        "big": server.big_url,
        "h2": server.h2_url,
        "tls": server.tls_url,
        "tls-tiny": server.tls_tiny_url,
        "upload": server.upload_url,
        "none": "-",
    }[scenario.endpoint]
    size = {
        "big": nginx_server.BIG_BODY_SIZE,
        "upload": nginx_server.UPLOAD_BODY_SIZE,
        "tls-tiny": nginx_server.TINY_BODY_SIZE,
    }.get(scenario.endpoint, nginx_server.SMALL_BODY_SIZE)
    command = [
        python,
        "-E",  # ignore PYTHONPATH & co: the venv alone decides which httpcore is imported
        str(WORKERS / client.worker),
        scenario.key,
        "--url", url,
        "--size", str(size),
        "--duration", str(args.duration),
        "--warmup", str(args.warmup),
        "--concurrency", str(scenario.concurrency),
        "--cafile", server.ca_file,
        "--loop", scenario.loop,
        "--module", client.module or "httpcore",
    ]  # fmt: skip
    slow = scenario.endpoint in ("big", "upload", "none") or scenario.key.startswith("mem-")
    timeout = args.warmup + args.duration + 30 + (60 if slow else 0)
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=str(WORKERS)
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                result: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            return result
    tail = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    message = tail[-1] if tail else f"exit code {proc.returncode}, no output"
    return {"ok": False, "error": message}


def fmt_rate(value: float, unit: str) -> str:
    if unit in ("MB/s", "req/s"):
        return f"{value:,.0f} {unit}"
    return f"{value:,.1f} {unit}"


def fmt_ratio(value: Optional[float], other: Optional[float]) -> str:
    if value is None or other is None or other <= 0:
        return "—"
    return f"{value / other:.2f}x"


def fmt_cpu(cell: Optional[Cell], base: Optional[Cell], unit: str) -> str:
    """The least CPU of `cell`'s runs and its ratio to the baseline's least (lower is better)."""
    value = cell.least_cpu if cell else None
    if value is None or unit not in CPU_UNITS:
        return "—"
    text = f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    base_value = base.least_cpu if base else None
    ratio = f" ({fmt_ratio(value, base_value)})" if base_value else ""
    return f"{text} {CPU_UNITS[unit][0]}{ratio}"


def short(message: str, limit: int = 140) -> str:
    message = " ".join(message.split()).replace("|", "/")
    return message if len(message) <= limit else message[: limit - 1] + "…"


def render(results: dict[str, dict[str, Cell]], scenarios: list[Scenario]) -> list[str]:
    lines = [
        "| Scenario | Client | Rate (best) | vs httpcore 1.0.9 | vs peer | CPU/req (least) "
        "| Runs |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for scenario in scenarios:
        cells = results.get(scenario.key)
        if not cells:
            continue
        base = cells.get(scenario.baseline)
        base_rate = base.rate if base else None
        peer = cells.get(scenario.peer) if scenario.peer else None
        peer_rate = peer.rate if peer else None
        for key, cell in cells.items():
            client = CLIENTS[key]
            rate = cell.rate
            if rate is None:
                error = short(cell.errors[0]) if cell.errors else "no result"
                lines.append(f"| {scenario.title} | {client.label} | error: {error} | | | — | |")
                continue
            vs_base = fmt_ratio(rate, base_rate)
            vs_peer = "—"
            if scenario.peer and key != scenario.peer and peer_rate:
                vs_peer = f"{fmt_ratio(rate, peer_rate)} {CLIENTS[scenario.peer].label}"
            digits = 0 if scenario.unit in ("MB/s", "req/s") else 1
            runs = ", ".join(f"{s:,.{digits}f}" for s in cell.samples)
            if "importtime_ms" in cell.extra:
                runs += (
                    f" (least CPU {cell.extra['cpu_ms']:.1f} ms; -X importtime total "
                    f"{cell.extra['importtime_ms']:.1f} ms)"
                )
            notes = []
            if cell.errors:
                notes.append(f"{len(cell.errors)} run(s) failed: {short(cell.errors[0], 80)}")
            if cell.request_errors:
                first = short(cell.first_request_error or "", 80)
                notes.append(f"{cell.request_errors} request error(s): {first}")
            if notes:
                runs += " — " + "; ".join(notes)
            lines.append(
                f"| {scenario.title} | {client.label} | {fmt_rate(rate, scenario.unit)} "
                f"| {vs_base} | {vs_peer} | {fmt_cpu(cell, base, scenario.unit)} | {runs} |"
            )
    return lines


def machine_info() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def placement_line(placement: str, one_cpu: set[int], all_cpus: set[int]) -> str:
    if not all_cpus:
        return "free (this OS cannot pin processes to CPUs)"
    if placement == "free" or one_cpu == all_cpus:
        return f"free: the OS places the client and nginx on CPUs {sorted(all_cpus)}"
    (cpu,) = one_cpu
    turns = ", ".join(s.title.split(".")[0] for s in SCENARIOS if s.takes_turns)
    if placement == "apart":
        elsewhere = f"the client runs on CPU {cpu} and nginx on CPU {min(all_cpus)}"
    else:
        elsewhere = f"the OS places them on CPUs {sorted(all_cpus)}"
    return (
        f"{placement}: where the client and nginx take turns (scenarios {turns}), both run on "
        f"CPU {cpu} only; elsewhere {elsewhere}"
    )


def cpu_ticks() -> Optional[list[int]]:
    """The machine's CPU time counters (/proc/stat's "cpu" line), or None off Linux."""
    try:
        with open("/proc/stat") as stat:
            return [int(n) for n in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def steal_line(before: Optional[list[int]], after: Optional[list[int]]) -> str:
    """What share of this VM's CPU time the hypervisor gave to others while the run ran."""
    if not before or not after or len(before) < 8:
        return "unknown (no /proc/stat)"
    # user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is also
    # counted in user, so the total is the first eight.
    spent = [b - a for a, b in zip(before[:8], after[:8])]
    total = sum(spent)
    return f"{100 * spent[7] / total:.1f} % of the CPU time (/proc/stat)" if total else "0 %"


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, cwd=str(HERE), timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "?"
    return out.stdout.strip() or "none yet"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, one round")
    parser.add_argument(
        "--only",
        help="comma-separated scenarios: " + ", ".join(s.key for s in SCENARIOS),
    )
    parser.add_argument("--clients", help="comma-separated clients: " + ", ".join(CLIENTS))
    parser.add_argument("--duration", type=float, help="timed seconds per run (default 1.5)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per run (default 0.3)")
    parser.add_argument("--rounds", type=int, help="runs per client and scenario (default 5)")
    parser.add_argument("--output", type=Path, default=RESULTS_MD, help="Markdown file to write")
    parser.add_argument(
        "--placement",
        choices=("turns", "free", "apart"),
        default="turns",
        help="turns (default): in the scenarios where the client and nginx take turns (one "
        "connection, one request at a time), both run on one CPU; free: the OS places every "
        "process; apart: as turns, and elsewhere the client runs on one CPU and nginx on "
        "another (a diagnostic: steadier rounds, but one CPU for a client's threads) (Linux; "
        "elsewhere always free)",
    )
    parser.add_argument(
        "--no-charts", action="store_true", help=f"do not write the SVG charts to {CHARTS_DIR}"
    )
    args = parser.parse_args()
    if args.duration is None:
        args.duration = 0.5 if args.quick else 1.5
    if args.warmup is None:
        args.warmup = 0.1 if args.quick else 0.3
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    return args


def select(args: argparse.Namespace) -> tuple[list[Scenario], set[str]]:
    scenarios = SCENARIOS
    if args.only:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = set(wanted) - {s.key for s in SCENARIOS}
        if unknown:
            sys.exit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        scenarios = [s for s in SCENARIOS if s.key in wanted]
    clients = set(CLIENTS)
    if args.clients:
        clients = {name.strip() for name in args.clients.split(",") if name.strip()}
        unknown = clients - set(CLIENTS)
        if unknown:
            sys.exit(f"unknown client(s): {', '.join(sorted(unknown))}")
    return scenarios, clients


def main() -> None:
    args = parse_args()
    scenarios, chosen = select(args)
    started = time.monotonic()
    WORK.mkdir(parents=True, exist_ok=True)

    pythons: dict[str, Optional[str]] = {}
    venv_errors: dict[str, str] = {}
    # The peers venv is always needed (it makes the TLS certificate); others only when used.
    pythons["peers"] = venvs.ensure(WORK / "venv-peers", venvs.PEERS_REQUIREMENTS)
    needed = {
        CLIENTS[key].venv for scenario in scenarios for key in scenario.clients if key in chosen
    }
    for name in sorted(needed - {"peers"}):
        pythons[name], error = venvs.try_ensure(WORK, name, VENVS[name])
        if error:
            venv_errors[name] = error
    peer_python = pythons["peers"]
    assert peer_python is not None
    peer_versions = venvs.versions(peer_python, venvs.PEER_DISTRIBUTIONS)

    # Turn SIGTERM into SystemExit so the `finally` below still stops nginx.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    server = nginx_server.start(WORK, peer_python)
    results: dict[str, dict[str, Cell]] = {}
    ticks_before = cpu_ticks()
    all_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    pinned = args.placement in ("turns", "apart")
    one_cpu = {max(all_cpus)} if all_cpus and pinned else all_cpus
    try:
        for scenario in scenarios:
            keys = [k for k in scenario.clients if k in chosen]
            if not keys:
                continue
            if all_cpus:
                # Workers inherit this process's CPUs.
                cpus = server_cpus = one_cpu if scenario.takes_turns else all_cpus
                if args.placement == "apart" and not scenario.takes_turns and one_cpu != all_cpus:
                    cpus, server_cpus = one_cpu, {min(all_cpus)}
                os.sched_setaffinity(0, cpus)
                server.pin(server_cpus)
            cells = {key: Cell(scenario.lower_is_better) for key in keys}
            results[scenario.key] = cells
            for key in keys:
                if key in CLIENTS and CLIENTS[key].venv in venv_errors:
                    cells[key].errors.append(venv_errors[CLIENTS[key].venv])
            for round_no in range(args.rounds):
                # Rotate the order each round so no client always runs first or last.
                shift = round_no % len(keys)
                for key in keys[shift:] + keys[:shift]:
                    cell = cells[key]
                    if cell.broken:
                        continue
                    client = CLIENTS[key]
                    python = pythons.get(client.venv)
                    assert python is not None
                    result = run_worker(python, client, scenario, server, args)
                    if result.get("ok"):
                        cell.samples.append(float(result["rate"]))
                        cpu = scenario.cpu_per_work(result)
                        if cpu is not None:
                            cell.cpu.append(cpu)
                        cell.version = str(result.get("version", ""))
                        for extra in ("importtime_ms", "cpu_ms"):  # cold start
                            if extra in result:
                                cell.extra[extra] = min(
                                    float(result[extra]), cell.extra.get(extra, float("inf"))
                                )
                        cell.request_errors += int(result.get("errors") or 0)
                        if result.get("first_error") and not cell.first_request_error:
                            cell.first_request_error = str(result["first_error"])
                        shown = fmt_rate(float(result["rate"]), scenario.unit)
                    else:
                        cell.errors.append(str(result.get("error")))
                        shown = "error: " + short(str(result.get("error")), 100)
                    print(
                        f"  [{scenario.key} round {round_no + 1}/{args.rounds}] "
                        f"{client.label}: {shown}",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        ticks_after = cpu_ticks()
        server.stop()
        if all_cpus:
            os.sched_setaffinity(0, all_cpus)

    elapsed = time.monotonic() - started
    table = render(results, scenarios)
    ours_version = next(
        (c.version for cells in results.values() for k, c in cells.items() if k == "ours" and
         c.version),
        "?",
    )  # fmt: skip
    if pythons.get("niquests"):
        peer_versions.update(venvs.versions(str(pythons["niquests"]), ["niquests"]))
    peer_list = ", ".join(f"{name} {ver}" for name, ver in peer_versions.items())
    header = [
        "# Benchmark results",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- command: `python benchmarks/run.py {' '.join(sys.argv[1:])}`".replace("  ", " "),
        f"- machine: {machine_info()}",
        f"- Python {platform.python_version()}, nginx {server.version}",
        f"- ours: httpcore {ours_version} (commit {git_commit()}); peers: {peer_list}",
        f"- each run: {args.warmup} s warm-up + {args.duration} s timed, in a fresh process; "
        f"best of {args.rounds} interleaved run(s); total wall time {elapsed:.0f} s",
        f"- placement: {placement_line(args.placement, one_cpu, all_cpus)}",
        f"- steal (the host running others on this machine's CPUs during the runs): "
        f"{steal_line(ticks_before, ticks_after)}",
        "- MB/s is 10^6 bytes per second, kB is 10^3 bytes; ratios are best / best (for memory and "
        "import time, lower is better and the best is the lowest)",
        "- CPU/req: the client process's CPU time (user + sys, all threads) over the timed phase "
        "per request (per 100 MB for MB/s), least of the runs, and its ratio to the baseline's "
        "least (lower is better); steadier than the rate on a busy machine",
        "",
    ]
    text = "\n".join(header + table) + "\n"
    print()
    print(text)
    args.output.write_text(text)
    units = {scenario.key: scenario.unit for scenario in scenarios}
    RESULTS_JSON.write_text(
        json.dumps(
            {
                scenario: {
                    key: {
                        "samples": c.samples,
                        "cpu": c.cpu,
                        "cpu_unit": CPU_UNITS.get(units[scenario], ("", None))[1],
                        "median": statistics.median(c.samples) if c.samples else None,
                        "errors": c.errors,
                        "request_errors": c.request_errors,
                        "version": c.version,
                        **c.extra,
                    }
                    for key, c in cells.items()
                }
                for scenario, cells in results.items()
            },
            indent=2,
        )
    )
    print(f"written to {args.output}", file=sys.stderr)
    if not args.no_charts:
        written = charts.write_all(
            CHARTS_DIR,
            [
                charts.Chart(
                    name=scenario.key,
                    title=scenario.title,
                    unit=scenario.unit,
                    lower_is_better=scenario.lower_is_better,
                    baseline=CLIENTS[scenario.baseline].label,
                    bars=[
                        charts.Bar(CLIENTS[key].label, cell.rate, CLIENTS[key].is_ours)
                        for key, cell in results[scenario.key].items()
                    ],
                    note=scenario.description,
                )
                for scenario in scenarios
                if scenario.key in results
            ],
        )
        print(f"{len(written)} chart(s) written to {CHARTS_DIR}", file=sys.stderr)


if __name__ == "__main__":
    main()
