"""The benchmark's SVG writer (benchmarks/charts.py): well-formed, one bar per client, ratios;
and the table of benchmarks/run.py: its CPU-per-request column.

Running the benchmark itself needs nginx and several virtualenvs, far too slow for the suite;
this checks the parts that turn results into the charts and the table the documentation shows.
"""

from __future__ import annotations

import importlib.util
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

CHARTS = Path(__file__).resolve().parent.parent / "benchmarks" / "charts.py"
RUN = CHARTS.parent / "run.py"
SVG = "{http://www.w3.org/2000/svg}"


def load_charts() -> Any:
    spec = importlib.util.spec_from_file_location("bench_charts", CHARTS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses looks its module up while building classes
    spec.loader.exec_module(module)
    return module


def test_chart_has_a_bar_per_client_and_ratios_to_the_baseline(tmp_path: Path) -> None:
    charts = load_charts()
    chart = charts.Chart(
        name="seq",
        title="1. sequential <GET> & co",
        unit="req/s",
        lower_is_better=False,
        baseline="httpcore 1.0.9",
        bars=[
            charts.Bar("ours", 3000.0, True),
            charts.Bar("httpcore 1.0.9", 2000.0),
            charts.Bar("broken", None),
        ],
        note="a note",
    )
    [path] = charts.write_all(tmp_path / "out", [chart])
    assert path.name == "seq.svg"
    root = ET.parse(path).getroot()  # well-formed, the title's markup escaped
    texts = ["".join(node.itertext()) for node in root.iter(f"{SVG}text")]
    assert "1. sequential <GET> & co" in texts
    assert "3,000 req/s  (1.50x)" in texts
    assert "2,000 req/s  (1.00x)" in texts
    assert "failed" in texts
    bars = [rect for rect in root.iter(f"{SVG}rect") if rect.get("height") != root.get("height")]
    widths = sorted(float(rect.get("width", 0)) for rect in bars)
    assert len(bars) == 2 and abs(widths[1] - 1.5 * widths[0]) < 0.1  # 250 px for the top


def test_lower_is_better_units_say_so() -> None:
    charts = load_charts()
    chart = charts.Chart("mem", "memory", "kB/conn", True, "b", [charts.Bar("b", 20.0)])
    assert "kB/conn, lower is better" in charts.render(chart)


def load_run(monkeypatch: Any) -> Any:
    """benchmarks/run.py, which imports its neighbours (charts, nginx_server, venvs) by name."""
    monkeypatch.syspath_prepend(str(RUN.parent))
    for name in ("charts", "nginx_server", "venvs"):
        monkeypatch.delitem(sys.modules, name, raising=False)  # as they were, after the test
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_table_shows_the_least_cpu_per_request_and_its_ratio_to_the_baseline(
    monkeypatch: Any,
) -> None:
    run = load_run(monkeypatch)
    scenarios = {s.key: s for s in run.SCENARIOS}
    seq, stream, mem = scenarios["seq"], scenarios["stream"], scenarios["mem-idle"]
    # What a worker reports: 0.5 s of CPU for 2,000 requests is 250 µs a request.
    assert seq.cpu_per_work({"cpu_s": 0.5, "count": 2000, "bytes": 1}) == 250.0
    assert stream.cpu_per_work({"cpu_s": 0.5, "count": 1, "bytes": 10**9}) == 50.0
    assert mem.cpu_per_work({"cpu_s": 0.5, "count": 1000}) is None
    assert seq.cpu_per_work({"count": 2000}) is None  # an older worker

    Cell = run.Cell
    results = {
        "seq": {
            "ours": Cell(samples=[4000.0, 4500.0], cpu=[230.0, 221.0]),
            "httpcore": Cell(samples=[2500.0], cpu=[425.0]),
            "urllib3": Cell(samples=[2400.0]),  # no CPU reported
            "raw": Cell(errors=["boom"]),
        },
        "stream": {
            "ours": Cell(samples=[1800.0], cpu=[52.5]),
            "httpcore": Cell(samples=[1500.0], cpu=[70.0]),
        },
        "mem-idle": {"ours": Cell(True, samples=[12.0]), "httpcore": Cell(True, samples=[20.0])},
    }
    lines = run.render(results, [seq, stream, mem])
    header, separator, *rows = lines
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[5] == "CPU/req (least)" and columns[4] == "vs peer"
    assert separator.count("|") == header.count("|")
    cpu = {}
    for row in rows:
        cells = [c.strip() for c in row[1:-1].split("|")]
        assert len(cells) == len(columns), row
        cpu[cells[0].split(".")[0], cells[1]] = cells[5]
    assert cpu["1", "ours (httpcore 1.1.0)"] == "221 µs (0.52x)"
    assert cpu["1", "httpcore 1.0.9"] == "425 µs (1.00x)"
    assert cpu["1", "urllib3"] == "—"
    assert cpu["1", "raw socket"] == "—"  # the error row
    assert cpu["3", "ours (httpcore 1.1.0)"] == "52.5 ms/100 MB (0.75x)"
    assert cpu["10a", "ours (httpcore 1.1.0)"] == "—"
    assert cpu["10a", "httpcore 1.0.9"] == "—"

    # Without the baseline's CPU, the value alone.
    del results["seq"]["httpcore"]
    ours = next(row for row in run.render(results, [seq]) if "ours" in row)
    assert "| 221 µs |" in ours


def test_the_header_says_where_the_processes_ran(monkeypatch: Any) -> None:
    run = load_run(monkeypatch)
    line = run.placement_line
    turns = "scenarios 1, 1b, 7a, 7e, 8a, 8b"
    assert line("turns", {1}, {0, 1}).endswith("elsewhere the OS places them on CPUs [0, 1]")
    assert turns in line("turns", {1}, {0, 1})
    apart = line("apart", {1}, {0, 1})
    assert turns in apart and apart.endswith("the client runs on CPU 1 and nginx on CPU 0")
    assert line("free", {0, 1}, {0, 1}).startswith("free:")
    assert line("apart", {0}, {0}).startswith("free:")  # one CPU: nothing to pin apart
