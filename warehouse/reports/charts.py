"""PNG charts with matplotlib's Agg canvas: no display, no pyplot global state.

Reports are built in the Dagster daemon's runs and by ``ece warehouse report``, both
headless and possibly several at once, so each chart is its own ``Figure`` drawn
by ``FigureCanvasAgg`` (pyplot's implicit current figure is neither needed nor
thread-safe). Charts are small (about 20-40 KB) because each one is embedded as
base64 in the HTML page and in the Dagster materialization's metadata.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

WIDTH_IN, HEIGHT_IN, DPI = 7.0, 3.2, 90
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()


def _label(text: str, width: int = 18) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def bars(title: str, labels: Sequence[str], series: dict[str, Sequence[float]],
         ylabel: str = "", horizontal: bool = False) -> bytes:
    """Grouped bars: one group per label, one bar per series (a single series is plain bars)."""
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    names = list(series)
    width = 0.8 / max(len(names), 1)
    positions = list(range(len(labels)))
    for n, name in enumerate(names):
        shifted = [p - 0.4 + width * (n + 0.5) for p in positions]
        values = [float(v) for v in series[name]]
        if horizontal:
            ax.barh(shifted, values, height=width, label=name)
        else:
            ax.bar(shifted, values, width=width, label=name)
    short = [_label(str(label)) for label in labels]
    if horizontal:
        ax.set_yticks(positions, short, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
    else:
        ax.set_xticks(positions, short, fontsize=8, rotation=20 if len(labels) > 4 else 0)
        ax.set_ylabel(ylabel)
    if len(names) > 1:
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x" if horizontal else "y", alpha=0.3)
    return _png(fig)
