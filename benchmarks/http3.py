"""HTTP/3: this project vs niquests, and vs its own HTTP/2: 100 concurrent GETs on one connection.

The server runs in a subprocess of its own, so that client and server do not share a GIL:
`--server hypercorn` (the default: TLS + QUIC on one port, `tests/servers/app.py`; pure-Python
aioquic, ~1 ms of CPU per request, so on a small machine it sets the rate) or `--server qh3`
(`h3_server_qh3.py`: qh3's Rust QUIC, fixed bodies, a fraction of the clients' CPU per request,
so the rate measures the clients; HTTP/3 only, so no HTTP/2 rows). Run it in the development
environment (`hatch run hatch-test.py3.11:python benchmarks/http3.py`); options:
`--duration S`, `--rounds N`, `--concurrency N`, `--no-niquests`, `--flavour asyncio|sync`,
`--download-mb N`, `--pattern batch|steady`, `--profile FILE` (cProfile of ours, asyncio, one
extra run, stats to FILE).
It prints requests per second (best of the rounds, then each round's) and CPU time per request,
for asyncio and for the sync API, then the speed of one download (ours, HTTP/3 and HTTP/2):

- ours: one pool, over HTTP/3 with prior knowledge, then over HTTP/2 (same server, same TLS
  certificate). `--pattern batch` (the default, niquests' workload): `concurrency` requests
  started together (asyncio tasks gathered, or threads) and gathered whole, again and again;
  `--pattern steady`: `concurrency` tasks or threads each sending requests back to back, so
  that as many are always in flight. The server's work per request grows with the number of
  streams open on its connection (aioquic walks them all to build each packet), so steady
  costs it more: about 96 open streams against 49 for batches;
- niquests 3 (its own venv, `benchmarks/.work/venv-niquests`, built on first use:
  urllib3-future would clash with urllib3 here): a `multiplexed=True` session sends
  `concurrency` requests on one connection and collects them with `gather()`, niquests' way
  of multiplexing. It is told the origin speaks HTTP/3 through its QUIC cache
  (`quic_cache_layer`, the store it fills from Alt-Svc), and each run checks that the answers
  really came over HTTP/3 (`response.http_version == 30`).

Servers and clients in Python on one machine: the numbers compare clients under the same
server, not absolute speed.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

# Only the standard library at the top: the niquests side runs this file in its own venv.

ROOT = Path(__file__).resolve().parent.parent
ERRORS: List[BaseException] = []  # failed requests (e.g. a GOAWAY with an error), all runs


def free_port() -> int:
    """A port number free for both TCP and UDP on 127.0.0.1."""
    while True:
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(port)


def start_server(certfile: str, port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "hypercorn",
        "--certfile",
        certfile,
        "--keyfile",
        certfile,
        "--bind",
        f"127.0.0.1:{port}",
        "--quic-bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "error",
        "servers.app:app",
    ]
    process = subprocess.Popen(command, cwd=ROOT / "tests")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("hypercorn did not start")


def start_qh3_server(python: str, certfile: str) -> Tuple[subprocess.Popen[bytes], int]:
    """`h3_server_qh3.py` under `python` (a venv with qh3); returns it and its UDP port."""
    script = Path(__file__).resolve().parent / "h3_server_qh3.py"
    process = subprocess.Popen(
        [python, str(script), "--certfile", certfile],
        stdin=subprocess.PIPE,  # it exits when this closes
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()  # "port <n>", or "" if it died
    if not line.startswith("port "):
        process.kill()
        process.wait(10)
        raise RuntimeError(f"the qh3 server did not start ({line!r})")
    return process, int(line.split()[1])


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


def pool_kwargs(protocol: str, context: ssl.SSLContext) -> Dict[str, Any]:
    """The pool of one run: HTTP/3 with prior knowledge ("h3"), or HTTP/2 ("h2")."""
    if protocol == "h3":
        return {"ssl_context": context, "http1": False, "http2": False, "http3": True}
    return {"ssl_context": context, "http1": False, "http2": True}


#: What one run measured: requests done, seconds, CPU seconds of the client process.
Sample = Tuple[int, float, float]


async def run_asyncio(
    url: str, kwargs: Dict[str, Any], concurrency: int, duration: float, batch: bool
) -> Sample:
    """`concurrency` requests at a time on one pool: in batches gathered whole (`batch`, as
    niquests' gather()), or kept up by as many tasks (steady)."""
    import httpcore

    async with httpcore.AsyncConnectionPool(**kwargs) as pool:
        expected = (await pool.request("GET", url)).extensions["http_version"]  # connect
        assert expected == (b"HTTP/3" if kwargs.get("http3") else b"HTTP/2"), expected
        done = 0
        deadline = time.monotonic() + duration

        async def one() -> int:
            try:
                response = await pool.request("GET", url)
            except httpcore.ProtocolError as exc:
                ERRORS.append(exc)  # counted, not in the rate
                return 0
            assert response.status == 200
            assert response.extensions["http_version"] == expected
            return 1

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                ok = await one()  # not `done += await ...`: that reads `done` before awaiting
                done += ok

        started, cpu = time.monotonic(), time.process_time()
        if batch:
            while time.monotonic() < deadline:
                done += sum(await asyncio.gather(*(one() for _ in range(concurrency))))
        else:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done, time.monotonic() - started, time.process_time() - cpu


def run_threads(
    url: str, kwargs: Dict[str, Any], concurrency: int, duration: float, batch: bool
) -> Sample:
    """`concurrency` threads sharing one pool, in batches or steady (see `run_asyncio`)."""
    import httpcore

    with httpcore.ConnectionPool(**kwargs) as pool:
        expected = pool.request("GET", url).extensions["http_version"]
        assert expected == (b"HTTP/3" if kwargs.get("http3") else b"HTTP/2"), expected
        deadline = time.monotonic() + duration

        def one(_: int = 0) -> int:
            try:
                response = pool.request("GET", url)
            except httpcore.ProtocolError as exc:
                ERRORS.append(exc)
                return 0
            assert response.status == 200
            assert response.extensions["http_version"] == expected
            return 1

        def worker(_: int) -> int:
            count = 0
            while time.monotonic() < deadline:
                count += one()
            return count

        with concurrent.futures.ThreadPoolExecutor(concurrency) as executor:
            list(executor.map(one, range(concurrency)))  # start the threads
            started, cpu = time.monotonic(), time.process_time()
            done = 0
            if batch:
                while time.monotonic() < deadline:
                    done += sum(executor.map(one, range(concurrency)))
            else:
                done = sum(executor.map(worker, range(concurrency)))
        return done, time.monotonic() - started, time.process_time() - cpu


# -- niquests (run in its own venv: `python http3.py --niquests-worker ...`) ------------------


def niquests_cache(port: int) -> Dict[Any, Any]:
    """niquests' QUIC cache, preloaded: (host, port) of the origin -> its HTTP/3 authority."""
    return {("127.0.0.1", port): ("127.0.0.1", port)}


def niquests_check(responses: List[Any]) -> int:
    for response in responses:
        if response.status_code != 200 or response.http_version != 30:
            raise RuntimeError(f"niquests: {response.status_code}, HTTP {response.http_version}")
    return len(responses)


async def niquests_asyncio(
    url: str, cafile: str, port: int, concurrency: int, duration: float
) -> Sample:
    import niquests

    cache = niquests_cache(port)
    async with niquests.AsyncSession(multiplexed=True, quic_cache_layer=cache) as session:
        # The CA is given per request: the session-level `verify` is not applied here.
        first = await session.get(url, verify=cafile)
        await session.gather()
        niquests_check([first])
        done = 0
        started, cpu = time.monotonic(), time.process_time()
        deadline = started + duration
        while time.monotonic() < deadline:
            responses = [await session.get(url, verify=cafile) for _ in range(concurrency)]
            await session.gather()
            done += niquests_check(responses)
        return done, time.monotonic() - started, time.process_time() - cpu


def niquests_sync(url: str, cafile: str, port: int, concurrency: int, duration: float) -> Sample:
    import niquests

    cache = niquests_cache(port)
    with niquests.Session(multiplexed=True, quic_cache_layer=cache) as session:
        first = session.get(url, verify=cafile)
        session.gather()
        niquests_check([first])
        done = 0
        started, cpu = time.monotonic(), time.process_time()
        deadline = started + duration
        while time.monotonic() < deadline:
            responses = [session.get(url, verify=cafile) for _ in range(concurrency)]
            session.gather()
            done += niquests_check(responses)
        return done, time.monotonic() - started, time.process_time() - cpu


def niquests_worker(args: argparse.Namespace) -> None:
    url, cafile, port = args.url, args.cafile, args.port
    if args.niquests_worker == "asyncio":
        sample = asyncio.run(niquests_asyncio(url, cafile, port, args.concurrency, args.duration))
    else:
        sample = niquests_sync(url, cafile, port, args.concurrency, args.duration)
    import niquests

    print(json.dumps({"sample": sample, "version": niquests.__version__}))


def niquests_python() -> str:
    """The niquests venv's python (built on first use, see benchmarks/venvs.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import venvs

    work = Path(__file__).resolve().parent / ".work"
    return venvs.ensure(work / "venv-niquests", venvs.NIQUESTS_REQUIREMENTS)


def run_niquests(
    python: str, flavour: str, url: str, cafile: str, port: int, args: argparse.Namespace
) -> Sample:
    command = [
        python,
        __file__,
        "--niquests-worker",
        flavour,
        "--url",
        url,
        "--cafile",
        cafile,
        "--port",
        str(port),
        "--concurrency",
        str(args.concurrency),
        "--duration",
        str(args.duration),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"niquests {flavour} failed:\n{result.stderr[-2000:]}")
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    NIQUESTS_VERSION[:] = [outcome["version"]]
    done, seconds, cpu = outcome["sample"]
    return int(done), float(seconds), float(cpu)


NIQUESTS_VERSION: List[str] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--no-niquests", action="store_true", help="only this project")
    parser.add_argument("--download-mb", type=int, default=8, help="0: no download")
    parser.add_argument(
        "--pattern",
        choices=["batch", "steady"],
        default="batch",
        help="ours: batches of --concurrency requests gathered whole (the niquests workload), "
        "or that many requests kept in flight",
    )
    parser.add_argument("--flavour", choices=["asyncio", "sync"], help="only this one")
    parser.add_argument(
        "--server",
        choices=["hypercorn", "qh3"],
        default="hypercorn",
        help="hypercorn (HTTP/3 and HTTP/2, pure Python: often the bottleneck) or "
        "h3_server_qh3.py (HTTP/3 only, Rust QUIC: the clients set the rate)",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="after the rounds: one more asyncio run of ours (HTTP/3) under cProfile, "
        "stats written to FILE and the top functions printed",
    )
    parser.add_argument("--niquests-worker", choices=["asyncio", "sync"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--cafile", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.niquests_worker:
        niquests_worker(args)
        return

    import trustme

    python = None if args.no_niquests else niquests_python()
    qh3 = args.server == "qh3"
    ca = trustme.CA()
    with tempfile.TemporaryDirectory() as tmp:
        certfile = os.path.join(tmp, "server.pem")
        cafile = os.path.join(tmp, "ca.pem")
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(certfile)
        ca.cert_pem.write_to_path(cafile)
        context = ssl.create_default_context()
        ca.configure_trust(context)
        if qh3:
            server, port = start_qh3_server(niquests_python(), certfile)
            print("qh3 server: HTTP/3 only, so no HTTP/2 rows (they need hypercorn's TCP)")
        else:
            port = free_port()
            server = start_server(certfile, port)
        url = f"https://127.0.0.1:{port}/"
        batch = args.pattern == "batch"
        runs: Dict[str, Callable[[str], Sample]] = {
            "asyncio": lambda client: asyncio.run(
                run_asyncio(
                    url, pool_kwargs(client, context), args.concurrency, args.duration, batch
                )
            ),
            "sync": lambda client: run_threads(
                url, pool_kwargs(client, context), args.concurrency, args.duration, batch
            ),
        }
        run_asyncio_once = runs["asyncio"]  # for --profile, whatever --flavour says
        if args.flavour:
            runs = {args.flavour: runs[args.flavour]}
        ours = ["h3"] if qh3 else ["h3", "h2"]
        clients = ours + ([] if args.no_niquests else ["niquests"])
        # (flavour, client) -> [(req/s, client CPU us/req, server CPU us/req)] per round
        results: Dict[str, List[Tuple[float, float, Optional[float]]]] = {}
        try:
            for _ in range(args.rounds):
                for flavour, run in runs.items():
                    for client in clients:
                        del ERRORS[:]
                        server_cpu = process_tree_cpu(server.pid)
                        if client == "niquests":
                            assert python is not None
                            done, seconds, cpu = run_niquests(
                                python, flavour, url, cafile, port, args
                            )
                        else:
                            done, seconds, cpu = run(client)
                        # The server's CPU includes the warm-up request and the connection.
                        server_after = process_tree_cpu(server.pid)
                        per_server = None
                        if server_cpu is not None and server_after is not None:
                            per_server = 1e6 * (server_after - server_cpu) / max(done, 1)
                        results.setdefault(f"{flavour} {client}", []).append(
                            (done / seconds, 1e6 * cpu / max(done, 1), per_server)
                        )
                        if ERRORS:
                            print(f"{flavour} {client}: {len(ERRORS)} failed: {ERRORS[0]!r}")
            if args.profile:
                profile(args.profile, lambda: run_asyncio_once("h3"))
            downloads: Dict[str, List[float]] = {}
            size = args.download_mb << 20
            for _ in range(args.rounds if size else 0):
                for flavour in runs:
                    for client in ours:
                        seconds = download(
                            flavour, f"{url}bytes/{size}", pool_kwargs(client, context), size
                        )
                        downloads.setdefault(f"{flavour} {client}", []).append(size / seconds)
        finally:
            stop_server(server)
    report(args, results, not args.no_niquests)
    for flavour in runs:
        if downloads:
            speeds = [
                f"HTTP/{client[1]} {max(downloads[f'{flavour} {client}']) / 1e6:.1f} MB/s"
                for client in ours
            ]
            print(
                f"{args.download_mb} MiB download, {flavour}: {', '.join(speeds)} "
                f"(best of {args.rounds})"
            )


def profile(path: str, run: Callable[[], Sample]) -> None:
    """`run` under cProfile: stats to `path`, the top 30 by own time printed."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    done, seconds, _ = profiler.runcall(run)
    profiler.dump_stats(path)
    print(f"profile of ours, asyncio HTTP/3: {done} requests in {seconds:.1f} s -> {path}")
    pstats.Stats(path).sort_stats("tottime").print_stats(30)


def download(flavour: str, url: str, kwargs: Dict[str, Any], size: int) -> float:
    """Seconds to read one `size`-byte body on a connection opened beforehand."""
    import httpcore

    first_url = url.rsplit("/bytes/", 1)[0] + "/"
    if flavour == "sync":
        with httpcore.ConnectionPool(**kwargs) as pool:
            pool.request("GET", first_url)
            started = time.monotonic()
            response = pool.request("GET", url)
            assert len(response.content) == size
            return time.monotonic() - started

    async def main() -> float:
        async with httpcore.AsyncConnectionPool(**kwargs) as pool:
            await pool.request("GET", first_url)
            started = time.monotonic()
            response = await pool.request("GET", url)
            assert len(response.content) == size
            return time.monotonic() - started

    return asyncio.run(main())


def process_tree_cpu(pid: int) -> Optional[float]:
    """CPU seconds used by a process and its children so far (Linux /proc), else None."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += process_tree_cpu(int(child)) or 0.0
        return total
    except (OSError, ValueError, IndexError):
        return None


def report(
    args: argparse.Namespace,
    results: Dict[str, List[Tuple[float, float, Optional[float]]]],
    with_niquests: bool,
) -> None:
    """Best rate of the rounds; CPU per request as the median of the rounds (it depends less
    on what else the machine runs than the rate does)."""
    import statistics

    def best(key: str) -> Tuple[float, float, Optional[float]]:
        rounds = results[key]
        servers = [r[2] for r in rounds if r[2] is not None]
        return (
            max(r[0] for r in rounds),
            statistics.median(r[1] for r in rounds),
            statistics.median(servers) if servers else None,
        )

    def line(key: str, label: str, extra: str) -> str:
        sample = best(key)
        server = "" if sample[2] is None else f", server {sample[2]:5.0f}"
        rounds = "/".join(f"{r[0]:.0f}" for r in results[key])
        return (
            f"  {label:13} {sample[0]:6.0f} req/s   CPU us/req: client {sample[1]:5.0f}{server}"
            f"   (rounds {rounds})   {extra}"
        )

    server = "hypercorn" if args.server == "hypercorn" else "qh3 (h3_server_qh3.py)"
    title = f"{args.concurrency} concurrent GET / on one connection ({args.pattern}), {server}"
    print(f"{title}, best of {args.rounds} rounds of {args.duration:g} s")
    if NIQUESTS_VERSION:
        print(f"niquests {NIQUESTS_VERSION[0]}, HTTP/3 (multiplexed=True, gather())")
    for flavour in ("asyncio", "sync"):
        if f"{flavour} h3" not in results:
            continue
        print("asyncio:" if flavour == "asyncio" else "sync (threads for ours):")
        h3 = best(f"{flavour} h3")
        print(line(f"{flavour} h3", "ours HTTP/3", ""))
        if f"{flavour} h2" in results:
            h2 = best(f"{flavour} h2")
            ratio = f"ours HTTP/3 / HTTP/2 = {h3[0] / h2[0]:.2f}x"
            print(line(f"{flavour} h2", "ours HTTP/2", ratio))
        if with_niquests:
            peer = best(f"{flavour} niquests")
            ratio = f"ours / niquests = {h3[0] / peer[0]:.2f}x (client CPU {peer[1] / h3[1]:.2f}x)"
            print(line(f"{flavour} niquests", "niquests H/3", ratio))


if __name__ == "__main__":
    main()
