"""One SVG bar chart per benchmark scenario, written with the standard library alone.

Each chart has a horizontal bar per client (this project's in blue), its value, and its ratio
to the scenario's baseline (httpcore 1.0.9, or httpx over it). For memory and import time the
title says that lower is better.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from xml.sax.saxutils import escape

VALUE_AREA = 190  # room for the value and ratio right of the longest bar
BAR_AREA = 250
ROW = 30
BAR = 20
TOP = 62
FONT = "font-family='-apple-system, Segoe UI, Helvetica, Arial, sans-serif'"
OURS_COLOUR = "#2f6fbf"
OTHER_COLOUR = "#a3acb9"


@dataclass
class Bar:
    label: str
    value: Optional[float]  # None: the client failed
    ours: bool = False


@dataclass
class Chart:
    name: str
    title: str
    unit: str
    lower_is_better: bool
    baseline: str
    bars: list[Bar] = field(default_factory=list)
    note: str = ""


def _fmt(value: float, unit: str) -> str:
    if unit in ("MB/s", "req/s"):
        return f"{value:,.0f} {unit}"
    return f"{value:,.1f} {unit}"


def render(chart: Chart) -> str:
    """The SVG document for `chart`."""
    base = next((bar.value for bar in chart.bars if bar.label == chart.baseline), None)
    # About 7 px per character of a 12 px bold label.
    label_width = max(200, 16 + 7 * max((len(bar.label) for bar in chart.bars), default=0))
    width = max(label_width + BAR_AREA + VALUE_AREA, 6 * len(chart.note) + 24, 560)
    top = max((bar.value for bar in chart.bars if bar.value), default=1.0) or 1.0
    height = TOP + ROW * len(chart.bars) + 34
    better = "lower is better" if chart.lower_is_better else "higher is better"
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{escape(chart.title)}'>",
        f"<rect width='{width}' height='{height}' fill='#ffffff'/>",
        f"<text x='12' y='24' {FONT} font-size='16' font-weight='600' fill='#1f2328'>"
        f"{escape(chart.title)}</text>",
        f"<text x='12' y='44' {FONT} font-size='12' fill='#57606a'>"
        f"{escape(chart.unit)}, {better}; ratios to {escape(chart.baseline)}</text>",
    ]
    for index, bar in enumerate(chart.bars):
        y = TOP + ROW * index
        weight = "600" if bar.ours else "400"
        out.append(
            f"<text x='{label_width - 8}' y='{y + BAR - 6}' {FONT} font-size='12' "
            f"font-weight='{weight}' text-anchor='end' fill='#1f2328'>{escape(bar.label)}</text>"
        )
        if not bar.value:
            out.append(
                f"<text x='{label_width}' y='{y + BAR - 6}' {FONT} font-size='12' "
                f"fill='#cf222e'>failed</text>"
            )
            continue
        length = max(1.0, BAR_AREA * bar.value / top)
        colour = OURS_COLOUR if bar.ours else OTHER_COLOUR
        text = _fmt(bar.value, chart.unit)
        if base:
            text += f"  ({bar.value / base:.2f}x)"
        out.append(
            f"<rect x='{label_width}' y='{y}' width='{length:.1f}' height='{BAR}' rx='2' "
            f"fill='{colour}'/>"
        )
        out.append(
            f"<text x='{label_width + length + 6:.1f}' y='{y + BAR - 6}' {FONT} font-size='12' "
            f"fill='#1f2328'>{escape(text)}</text>"
        )
    if chart.note:
        out.append(
            f"<text x='12' y='{height - 12}' {FONT} font-size='11' fill='#57606a'>"
            f"{escape(chart.note)}</text>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_all(directory: Path, charts: list[Chart]) -> list[Path]:
    """Write ``<name>.svg`` for each chart into `directory`; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for chart in charts:
        path = directory / f"{chart.name}.svg"
        path.write_text(render(chart))
        written.append(path)
    return written
