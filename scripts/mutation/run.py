"""Mutation testing of one module against the tests that concern it (cosmic-ray).

    hatch run mutate:run -- base/_pool.py            # one module (see MODULES)
    hatch run mutate:run -- base/_pool.py --list     # only count the mutants
    hatch run mutate:run -- --report base/_pool.py   # the report of the last session

cosmic-ray applies each mutant to the file on disk, runs the module's tests (``pytest -x``, fixed
order) and restores the file: run it in a copy of the tree (README.md), not in the checkout
you are working in. The session (SQLite) is kept in ``scripts/mutation/.sessions/``,
so an interrupted run resumes where it stopped; the summary and the surviving mutants (as
diffs) go to ``scripts/mutation/results/<module>.txt``. See README.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SESSIONS = HERE / ".sessions"
RESULTS = HERE / "results"

PACKAGES = {
    "base": "packages/httpcore-base/src/httpcore/base",
    "http2": "packages/httpcore-http2/src/httpcore/http2",
    "socks": "packages/httpcore-socks/src/httpcore/socks",
    "aio": "packages/httpcore-async/src/httpcore/aio",
}

# module -> the tests that exercise it (fast enough to run once per mutant). By default only
# the sync flavour of the sync/asyncio/trio tests runs (`FLAVOUR_FILTER`): the protocol code is
# the same generators under all three; `--all-flavours` runs them all (3x slower).
FLAVOUR_FILTER = "not asyncio and not trio"
# Where that filter would drop the module's own tests: the sync backend's happy-eyeballs tests
# run inside anyio's asyncio backend, with the sync backend as the `kind` parameter.
FLAVOUR_FILTERS = {"base/_sync_backend.py": "not trio and (not asyncio or asyncio-sync)"}
HTTP2_TESTS = [
    "tests/test_http2_mutants.py",
    "tests/test_http2.py",
    "tests/test_timeouts.py",
    "tests/test_http2_servers.py",
]
# The SOCKS handshake and the connection around it over mock backends, then the real proxies.
SOCKS_TESTS = [
    "tests/test_socks_handshake.py",
    "tests/test_socks_connection.py",
    "tests/test_socks_proxies.py",
]
# The seven smaller HTTP/2 modules: their own mutant tests first (mock backends, ~2 s).
HTTP2_PARTS_TESTS = [
    "tests/test_http2_stream_mutants.py",
    "tests/test_http2_headers_mutants.py",
    "tests/test_http2_io_mutants.py",
    *HTTP2_TESTS,
]
# Listed fastest-first: with `-x` the run stops at the first failure, so a mutant the module's
# own unit tests catch costs one short run.
MODULES: Dict[str, List[str]] = {
    "base/_pool_state.py": [
        "tests/test_pool_state.py",
        "tests/test_pool_state_mutants.py",
        "tests/test_pool.py",
        "tests/test_pool_mutants.py",
    ],
    "base/_pool.py": [
        "tests/test_pool.py",
        "tests/test_missing_host.py",
        "tests/test_proxy_mock.py",
        "tests/test_stale_retry.py",
        "tests/test_safety_net.py",
        "tests/test_pool_mutants.py",
        "tests/test_http3_pool.py",
    ],
    "base/_proxy.py": [
        "tests/test_proxy_mock.py",
        "tests/test_safety_net.py::test_connect_answered_502_by_a_real_proxy",
        "tests/test_safety_net.py::test_connect_answered_502_with_keep_alive",
        "tests/test_async_integration.py",
        "tests/test_proxy_mutants.py",
        "tests/test_proxy_http2.py",
        "tests/test_pool_mutants.py",
        "tests/test_cancellation.py",
        "tests/test_cold_import.py",
    ],
    "base/_connection.py": [
        "tests/test_connection.py",
        "tests/test_connection_mutants.py",
        "tests/test_uds_and_socket.py",
        "tests/test_pool.py",
        "tests/test_tls_retry.py",
        "tests/test_shared_connect.py",
        "tests/test_http3_pool.py",
    ],
    "base/_http11_simple.py": [
        "tests/test_http11_simple_mutants.py",
        "tests/test_http11.py",
        "tests/test_simple_head.py",
        "tests/test_safety_net.py",
        "tests/test_stale_retry.py",
        "tests/test_cold_import.py",
    ],
    "base/_http11.py": [
        "tests/test_http11.py",
        "tests/test_http11_mutants.py",
        "tests/test_body_close.py",
        "tests/test_trace_logging.py",
        "tests/test_safety_net.py",
        "tests/test_timeouts.py",
        "tests/test_stale_retry.py",
    ],
    # The h11 exchange (`H11Exchange`) moved here from _http11.py after the scores were taken.
    "base/_http11_h11.py": [
        "tests/test_http11.py",
        "tests/test_http11_mutants.py",
        "tests/test_body_close.py",
        "tests/test_safety_net.py",
        "tests/test_cold_import.py",
    ],
    # The blocking backend: connects, and the plain stream (kernel timeouts on Linux).
    "base/_sync_backend.py": [
        "tests/test_sync_kernel_timeouts.py",
        "tests/test_idle_readable.py",
        "tests/test_backends_sync.py",
        "tests/test_backends_interfaces.py",
        "tests/test_happy_eyeballs.py",
        "tests/test_cold_import.py",
    ],
    # Sync TLS: an SSLObject over memory BIOs, a reader and a writer thread at once.
    "base/_sync_tls.py": [
        "tests/test_sync_tls_stream.py",
        "tests/test_sync_tls_threads.py",
        "tests/test_idle_readable.py",
        "tests/test_sync_kernel_timeouts.py",
        "tests/test_backends_sync.py",
    ],
    "socks/_core.py": SOCKS_TESTS,
    "http2/_core.py": HTTP2_TESTS,
    "http2/_send.py": HTTP2_PARTS_TESTS,
    "http2/_receive.py": HTTP2_PARTS_TESTS,
    "http2/_reader.py": HTTP2_PARTS_TESTS,
    "http2/_writer.py": ["tests/test_http2_writer.py", *HTTP2_PARTS_TESTS],
    "http2/_stream.py": HTTP2_PARTS_TESTS,
    "http2/_headers.py": HTTP2_PARTS_TESTS,
    # The differential tests of the h2 shortcuts (against h2's own methods) come first.
    "http2/_patches.py": ["tests/test_http2_speed_paths.py", *HTTP2_PARTS_TESTS],
    # The request lifecycle and the reader role that HTTP/2 and HTTP/3 share (split out of
    # http2/_core.py by the redesign); HTTP/3's own tests come after HTTP/2's.
    "base/_multiplex_core.py": [
        "tests/test_http2_request_validation.py",
        *HTTP2_PARTS_TESTS,
        "tests/test_multiplex.py",
        "tests/test_http3.py",
    ],
}

# `--recheck` (survivors only) runs these, every flavour; default: the module's own tests.
RECHECK: Dict[str, List[str]] = {
    "base/_pool_state.py": [*MODULES["base/_pool_state.py"], "tests/test_safety_net.py"],
    "base/_pool.py": [*MODULES["base/_pool.py"], "tests/test_cancellation.py"],
    "base/_proxy.py": [*MODULES["base/_proxy.py"], *SOCKS_TESTS],
    "base/_connection.py": [
        *MODULES["base/_connection.py"],
        "tests/test_cancellation.py",
        "tests/test_http3.py",
        "tests/test_happy_eyeballs.py",
        "tests/test_stale_retry.py",
        "tests/test_leaks.py",
    ],
    "base/_sync_tls.py": [*MODULES["base/_sync_tls.py"], "tests/test_leaks.py"],
    "base/_http11.py": [
        *MODULES["base/_http11.py"],
        "tests/test_simple_head.py",
        "tests/test_cancellation.py",
    ],
}
for _name in MODULES:
    if _name.startswith("http2/") or _name == "base/_multiplex_core.py":
        RECHECK[_name] = [*MODULES[_name], "tests/test_multiplex.py", "tests/test_cancellation.py"]

# Operators kept: one or two replacements per construct rather than cosmic-ray's every
# combination (each binary operator into all ten others, each comparison into all others),
# which mostly repeats the same question at 10x the cost. Excluded as noise: VariableInserter
# and VariableReplacer (random names), RemoveDecorator.
KEEP_BINARY = {"Add_Sub", "Sub_Add", "Mul_Div", "Div_Mul", "FloorDiv_Mul", "Mod_Mul"}
KEEP_COMPARISON = {
    "Eq_NotEq",
    "NotEq_Eq",
    "Lt_LtE",
    "LtE_Lt",
    "Gt_GtE",
    "GtE_Gt",
    "Lt_GtE",
    "Gt_LtE",
    "Is_IsNot",
    "IsNot_Is",
    "In_NotIn",
    "NotIn_In",
}


# One pytest run per mutant: stop at the first failure, fixed order, no cache, none of the
# project's addopts; a test that hangs (a mutant that loses a wake-up) fails after
# `TEST_TIMEOUT` seconds, so such a mutant counts as killed at a bounded cost. cosmic-ray's own
# `timeout` (whole run, `--timeout`) kills the process group and also counts as killed
# (cosmic-ray 8.7: test_outcome "killed", output "timeout").
TEST_TIMEOUT = 20
PYTEST_OPTIONS = [
    "-x",
    "-q",
    "-p",
    "no:randomly",
    "-p",
    "no:cacheprovider",
    "-o",
    "addopts=",
    f"--timeout={TEST_TIMEOUT}",
]


def excluded_operators(python: str) -> List[str]:
    listing = subprocess.run(
        [python, "-m", "cosmic_ray.cli", "operators"], capture_output=True, text=True, check=True
    ).stdout.split()
    excluded = []
    for name in listing:
        short = name.split("/", 1)[1]
        if short.startswith("ReplaceBinaryOperator_"):
            keep = short[len("ReplaceBinaryOperator_") :] in KEEP_BINARY
        elif short.startswith("ReplaceComparisonOperator_"):
            keep = short[len("ReplaceComparisonOperator_") :] in KEEP_COMPARISON
        else:
            keep = short not in ("VariableInserter", "VariableReplacer", "RemoveDecorator")
        if not keep:
            excluded.append("^" + name.replace("/", "/") + "$")
    return excluded


def source_of(module: str) -> Path:
    package, _, filename = module.partition("/")
    return ROOT / PACKAGES[package] / filename


def write_config(module: str, timeout: float, all_flavours: bool) -> Tuple[Path, Path]:
    python = sys.executable
    name = module.replace("/", "_").replace(".py", "")
    SESSIONS.mkdir(exist_ok=True)
    config = SESSIONS / f"{name}.toml"
    session = SESSIONS / f"{name}.sqlite"
    tests = " ".join(shlex.quote(t) for t in MODULES[module])
    if not all_flavours:
        tests += " -k " + shlex.quote(FLAVOUR_FILTERS.get(module, FLAVOUR_FILTER))
    command = f"{shlex.quote(python)} -m pytest {' '.join(PYTEST_OPTIONS)} {tests}"
    exclude = ",\n  ".join(json.dumps(op) for op in excluded_operators(python))
    config.write_text(
        "[cosmic-ray]\n"
        f"module-path = {json.dumps(str(source_of(module).relative_to(ROOT)))}\n"
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(command)}\n\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n\n'
        "[cosmic-ray.filters.operators-filter]\n"
        f"exclude-operators = [\n  {exclude}\n]\n"
    )
    return config, session


def run(args: List[str]) -> None:
    subprocess.run(args, cwd=ROOT, check=True)


def summarize(module: str, session: Path, seconds: float) -> str:
    dump = subprocess.run(
        [sys.executable, "-m", "cosmic_ray.cli", "dump", str(session)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts = {"killed": 0, "survived": 0, "timeout": 0, "incompetent": 0, "pending": 0}
    survivors = []
    for line in dump.splitlines():
        item, result = json.loads(line)
        if result is None:
            counts["pending"] += 1
            continue
        if result["worker_outcome"] == "skipped":  # an operator left out (see KEEP_*)
            continue
        if result["worker_outcome"] == "timeout" or result.get("output") == "timeout":
            counts["timeout"] += 1
        elif result["test_outcome"] == "survived":
            counts["survived"] += 1
            mutation = item["mutations"][0]
            survivors.append(
                f"--- {mutation['operator_name']} #{mutation['occurrence']} "
                f"line {mutation['start_pos'][0]}\n{result['diff']}"
            )
        elif result["test_outcome"] == "incompetent":
            counts["incompetent"] += 1
        else:
            counts["killed"] += 1
    total = sum(counts.values())
    done = total - counts["pending"]
    caught = counts["killed"] + counts["timeout"]
    score = 100.0 * caught / done if done else 0.0
    head = (
        f"{module}: {total} mutants, {counts['killed']} killed, {counts['survived']} survived, "
        f"{counts['timeout']} timeout, {counts['incompetent']} incompetent, "
        f"{counts['pending']} pending; score {score:.1f}% of those run"
        + (f"; this run took {seconds / 60:.1f} min" if seconds else "")
    )
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / (module.replace("/", "_").replace(".py", "") + ".txt")
    path.write_text(
        head + "\n\nTests: " + " ".join(MODULES[module]) + "\n\n" + "\n".join(survivors)
    )
    return head


def recheck(module: str, session: Path, timeout: float) -> None:
    """Run each survivor again against every flavour of the `RECHECK` files; list the ones
    that still survive (those need a test, or an entry in SURVIVORS.md)."""
    dump = subprocess.run(
        [sys.executable, "-m", "cosmic_ray.cli", "dump", str(session)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    source = source_of(module)
    original = source.read_bytes()
    tests = RECHECK.get(module, MODULES[module])
    still = []
    killed = 0
    import cosmic_ray.plugins  # only in the mutate environment
    from cosmic_ray.mutating import apply_mutation

    for line in dump.splitlines():
        item, result = json.loads(line)
        if result is None or result.get("test_outcome") != "survived":
            continue
        mutation = item["mutations"][0]
        diff = (
            f"--- {mutation['operator_name']} #{mutation['occurrence']} "
            f"line {mutation['start_pos'][0]}\n"
            + result["diff"].split("--- mutation diff ---\n", 1)[-1].rstrip("\n")
            + "\n"
        )
        try:
            # The mutant made again by cosmic-ray (`patch` of its diff fails for a mutant on
            # the last line of a file: the diff shows an empty line past the end).
            operator_class = cosmic_ray.plugins.get_operator(mutation["operator_name"])
            operator = operator_class(**(mutation.get("operator_args") or {}))
            apply_mutation(source, operator, mutation["occurrence"])
            assert source.read_bytes() != original, f"no mutation made: {mutation}"
            command = [sys.executable, "-m", "pytest", *PYTEST_OPTIONS, *tests]
            try:
                returncode = subprocess.run(
                    command, cwd=ROOT, capture_output=True, timeout=timeout
                ).returncode
            except subprocess.TimeoutExpired:
                returncode = -1  # a hang is a detected mutant, as in the first pass
        finally:
            source.write_bytes(original)
        if returncode == 0:
            still.append(diff)
        else:
            killed += 1
    print(f"{module}: rechecked survivors: {killed} killed, {len(still)} still survive")
    path = RESULTS / (module.replace("/", "_").replace(".py", "") + ".recheck.txt")
    RESULTS.mkdir(exist_ok=True)
    path.write_text(
        f"{killed} killed on recheck, {len(still)} still survive\n\n" + "\n".join(still)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("module", choices=sorted(MODULES))
    parser.add_argument("--list", action="store_true", help="only create the session and count")
    parser.add_argument("--report", action="store_true", help="only summarise the last session")
    parser.add_argument("--fresh", action="store_true", help="discard the previous session")
    parser.add_argument("--timeout", type=float, default=120.0, help="per mutant, seconds")
    parser.add_argument("--all-flavours", action="store_true", help="asyncio and trio too")
    parser.add_argument(
        "--recheck", action="store_true", help="rerun the survivors with all flavours + RECHECK"
    )
    options = parser.parse_args()

    config, session = write_config(options.module, options.timeout, options.all_flavours)
    if options.report:
        print(summarize(options.module, session, 0.0))
        return
    if options.recheck:
        recheck(options.module, session, options.timeout * 3)
        return
    if options.fresh and session.exists():
        session.unlink()
    if not session.exists():
        run([sys.executable, "-m", "cosmic_ray.cli", "init", str(config), str(session)])
        run(
            [
                sys.executable,
                "-m",
                "cosmic_ray.tools.filters.operators_filter",
                str(session),
                str(config),
            ]
        )
    if options.list:
        print(summarize(options.module, session, 0.0))
        return
    source = source_of(options.module)
    original = source.read_bytes()
    start = time.monotonic()
    try:
        run([sys.executable, "-m", "cosmic_ray.cli", "exec", str(config), str(session)])
    finally:
        # cosmic-ray restores the file after each mutant; make sure an interruption did too.
        if source.read_bytes() != original:
            source.write_bytes(original)
            print(f"warning: restored {source} (left mutated)", file=sys.stderr)
    print(summarize(options.module, session, time.monotonic() - start))


if __name__ == "__main__":
    main()
