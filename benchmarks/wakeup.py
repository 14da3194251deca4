"""How much of a sequential request's wall time is the machine waking a sleeping client.

After sending a request, a client that blocks in `recv` at once lets its CPU go idle; when the
response comes, waking it costs time that is neither the client's CPU nor nginx's. This script
sends sequential GETs with this project's sync pool and, after each request is written, spins
for 0-40 µs before reading, so that the response is already there when `recv` is called. It
prints the wall time and the client's CPU time per request for each spin, in interleaved
rounds (best of them):

    python benchmarks/run.py --only seq --rounds 1   # once: builds benchmarks/.work
    benchmarks/.work/venv-ours/bin/python benchmarks/wakeup.py

If the wall time falls as the spin grows while the CPU time rises by less, the difference was
waiting to be woken. A client that does more CPU work between its write and its read (httpcore
1.0.9 does) hides that wait, which is why its rate is closer to its CPU time than ours is.
A diagnostic only: the library never spins.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import nginx_server  # noqa: E402

import httpcore  # noqa: E402
from httpcore.base import _sync_backend  # noqa: E402

SPINS_US = (0, 10, 20, 30, 40)
REQUESTS = 2000
ROUNDS = 8


def main() -> None:
    spin = [0.0]
    stream_class = _sync_backend._KernelTimeoutStream
    if not _sync_backend._KERNEL_TIMEOUTS:
        stream_class = _sync_backend.SyncStream  # type: ignore[assignment]
    write = stream_class.write

    def write_then_spin(self: object, buffer: bytes, timeout: object = None) -> None:
        write(self, buffer, timeout)  # type: ignore[arg-type]
        if spin[0]:
            until = time.perf_counter() + spin[0]
            while time.perf_counter() < until:
                pass

    stream_class.write = write_then_spin  # type: ignore[method-assign]
    # The certificates are made by the peers' venv (it has trustme), as by run.py.
    peers_python = HERE / ".work" / "venv-peers" / "bin" / "python"
    server = nginx_server.start(HERE / ".work", str(peers_python))
    results: dict[int, list[tuple[float, float]]] = {us: [] for us in SPINS_US}
    try:
        with httpcore.ConnectionPool(max_connections=1) as pool:
            for _ in range(500):
                pool.request("GET", server.small_url).read()
            for _ in range(ROUNDS):
                for us in SPINS_US:
                    spin[0] = us / 1e6
                    wall, cpu = time.perf_counter(), time.process_time()
                    for _ in range(REQUESTS):
                        pool.request("GET", server.small_url).read()
                    results[us].append(
                        (
                            (time.perf_counter() - wall) / REQUESTS * 1e6,
                            (time.process_time() - cpu) / REQUESTS * 1e6,
                        )
                    )
    finally:
        server.stop()
    print("spin after write | wall µs/req (best, median) | client CPU µs/req (least, median)")
    for us in SPINS_US:
        walls = sorted(w for w, _ in results[us])
        cpus = sorted(c for _, c in results[us])
        print(
            f"{us:>5} µs | {walls[0]:7.1f} {walls[len(walls) // 2]:7.1f}"
            f" | {cpus[0]:7.1f} {cpus[len(cpus) // 2]:7.1f}"
        )


if __name__ == "__main__":
    main()
