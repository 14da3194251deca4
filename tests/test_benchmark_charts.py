"""The benchmark's SVG writer (benchmarks/charts.py): well-formed, one bar per client, ratios.

Running the benchmark itself needs nginx and several virtualenvs, far too slow for the suite;
this checks the part that turns results into the charts the documentation shows.
"""

from __future__ import annotations

import importlib.util
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

CHARTS = Path(__file__).resolve().parent.parent / "benchmarks" / "charts.py"
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
