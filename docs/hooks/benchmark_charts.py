"""MkDocs hook: show the benchmark charts on the performance page, if there are any.

`python benchmarks/run.py` writes one SVG bar chart per scenario into `docs/assets/benchmarks/`.
The marker `<!-- benchmark-charts -->` in `performance.md` becomes one image per chart, in
file-name order; with no chart yet it becomes a note saying how to make them, so the strict
build never links to a missing file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MARKER = "<!-- benchmark-charts -->"
CHARTS = Path(__file__).resolve().parents[1] / "assets" / "benchmarks"

PLACEHOLDER = """\
!!! note "Charts not generated yet"

    `python benchmarks/run.py` writes one SVG chart per scenario into
    `docs/assets/benchmarks/`; they appear here on the next build.
"""


def _charts_markdown() -> str:
    charts = sorted(CHARTS.glob("*.svg")) if CHARTS.is_dir() else []
    if not charts:
        return PLACEHOLDER
    return "\n\n".join(
        f"![{chart.stem.replace('_', ' ')}](assets/benchmarks/{chart.name})" for chart in charts
    )


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, _charts_markdown())
