"""Benchmark: this project's httpcore against httpcore 1.0.9, urllib3, aiohttp and raw sockets.

    python benchmarks/run.py [--quick] [--only SCENARIO[,SCENARIO...]] [--clients NAME,...]

Starts a private nginx on loopback, builds two virtualenvs under benchmarks/.work/ (our
project and httpcore 1.0.9 share the import name, so they cannot share one), then measures
each (scenario, client) pair in a fresh subprocess, several rounds with the clients
interleaved, and prints a Markdown table of rates and ratios (also written to
benchmarks/results.md). It never passes or fails on the numbers.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import nginx_server
import venvs

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
WORKERS = HERE / "workers"
RESULTS_MD = HERE / "results.md"
RESULTS_JSON = WORK / "results.json"

BASELINE = "httpcore"


@dataclass(frozen=True)
class Client:
    key: str
    label: str
    venv: str  # "peers" or "ours"
    worker: str


CLIENTS = {
    c.key: c
    for c in (
        Client("ours", "ours (httpcore 1.1.0)", "ours", "httpcore_worker.py"),
        Client("httpcore", "httpcore 1.0.9", "peers", "httpcore_worker.py"),
        Client("urllib3", "urllib3", "peers", "urllib3_worker.py"),
        Client("aiohttp", "aiohttp", "peers", "aiohttp_worker.py"),
        Client("raw", "raw socket", "peers", "raw_worker.py"),
    )
}


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    endpoint: str  # "small", "big" or "h2"
    concurrency: int
    unit: str
    clients: tuple[str, ...]
    peer: Optional[str]
    description: str


SCENARIOS = [
    Scenario(
        "seq", "1. sequential GET /2k, one connection", "small", 1, "req/s",
        ("ours", "httpcore", "urllib3", "raw"), "urllib3",
        "one thread, back-to-back GETs of a 2 kB body on one keep-alive connection",
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
]  # fmt: skip


@dataclass
class Cell:
    samples: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    request_errors: int = 0
    first_request_error: Optional[str] = None
    version: str = ""

    @property
    def rate(self) -> Optional[float]:
        return max(self.samples) if self.samples else None

    @property
    def broken(self) -> bool:
        return bool(self.errors) and not self.samples


def run_worker(
    python: str, client: Client, scenario: Scenario, server: nginx_server.Server, args: Any
) -> dict[str, Any]:
    url = {"small": server.small_url, "big": server.big_url, "h2": server.h2_url}[scenario.endpoint]
    size = nginx_server.BIG_BODY_SIZE if scenario.endpoint == "big" else 2048
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
    ]  # fmt: skip
    timeout = args.warmup + args.duration + 30 + (30 if scenario.endpoint == "big" else 0)
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
    if unit == "MB/s":
        return f"{value:,.0f} MB/s"
    return f"{value:,.0f} req/s"


def fmt_ratio(value: Optional[float], other: Optional[float]) -> str:
    if value is None or other is None or other <= 0:
        return "—"
    return f"{value / other:.2f}x"


def short(message: str, limit: int = 140) -> str:
    message = " ".join(message.split()).replace("|", "/")
    return message if len(message) <= limit else message[: limit - 1] + "…"


def render(results: dict[str, dict[str, Cell]], scenarios: list[Scenario]) -> list[str]:
    lines = [
        "| Scenario | Client | Rate (best) | vs httpcore 1.0.9 | vs peer | Runs |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for scenario in scenarios:
        cells = results.get(scenario.key)
        if not cells:
            continue
        base = cells.get(BASELINE)
        base_rate = base.rate if base else None
        peer = cells.get(scenario.peer) if scenario.peer else None
        peer_rate = peer.rate if peer else None
        for key, cell in cells.items():
            client = CLIENTS[key]
            rate = cell.rate
            if rate is None:
                error = short(cell.errors[0]) if cell.errors else "no result"
                lines.append(f"| {scenario.title} | {client.label} | error: {error} | | | |")
                continue
            vs_base = fmt_ratio(rate, base_rate)
            vs_peer = "—"
            if scenario.peer and key != scenario.peer and peer_rate:
                vs_peer = f"{fmt_ratio(rate, peer_rate)} {CLIENTS[scenario.peer].label}"
            runs = ", ".join(f"{s:,.0f}" for s in cell.samples)
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
                f"| {vs_base} | {vs_peer} | {runs} |"
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
    parser.add_argument("--duration", type=float, help="timed seconds per run (default 2)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per run (default 0.3)")
    parser.add_argument("--rounds", type=int, help="runs per client and scenario (default 3)")
    parser.add_argument("--output", type=Path, default=RESULTS_MD, help="Markdown file to write")
    args = parser.parse_args()
    if args.duration is None:
        args.duration = 0.5 if args.quick else 2.0
    if args.warmup is None:
        args.warmup = 0.1 if args.quick else 0.3
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
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
    pythons["peers"] = venvs.ensure(WORK / "venv-peers", venvs.PEERS_REQUIREMENTS)
    if "ours" in chosen:
        pythons["ours"], error = venvs.ensure_ours(WORK)
        if error:
            venv_errors["ours"] = error
    peer_python = pythons["peers"]
    assert peer_python is not None
    peer_versions = venvs.versions(peer_python, venvs.PEER_DISTRIBUTIONS)

    # Turn SIGTERM into SystemExit so the `finally` below still stops nginx.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    server = nginx_server.start(WORK, peer_python)
    results: dict[str, dict[str, Cell]] = {}
    try:
        for scenario in scenarios:
            keys = [k for k in scenario.clients if k in chosen]
            if not keys:
                continue
            cells = {key: Cell() for key in keys}
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
                        cell.version = str(result.get("version", ""))
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
        server.stop()

    elapsed = time.monotonic() - started
    table = render(results, scenarios)
    ours_version = next(
        (c.version for cells in results.values() for k, c in cells.items() if k == "ours" and
         c.version),
        "?",
    )  # fmt: skip
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
        "- MB/s is 10^6 bytes per second; ratios are best rate / best rate",
        "",
    ]
    text = "\n".join(header + table) + "\n"
    print()
    print(text)
    args.output.write_text(text)
    RESULTS_JSON.write_text(
        json.dumps(
            {
                scenario: {
                    key: {
                        "samples": c.samples,
                        "median": statistics.median(c.samples) if c.samples else None,
                        "errors": c.errors,
                        "request_errors": c.request_errors,
                        "version": c.version,
                    }
                    for key, c in cells.items()
                }
                for scenario, cells in results.items()
            },
            indent=2,
        )
    )
    print(f"written to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
