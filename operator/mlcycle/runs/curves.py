"""Learning curves: the per-epoch records a run's metrics.jsonl holds (see mlcycle.training), drawn with one
panel per metric and one line per run."""

from __future__ import annotations

import json
import math

# A Figure of its own, not pyplot: no global state, no GUI backend, nothing to close.
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from mlcycle.runs.compare import validation_first
from mlcycle.training import EPOCH, is_finite_number

PANEL_COLUMNS = 3
PANEL_INCHES = (4.5, 3.2)
LEGEND_COLUMNS = 4


def parse_history(data: bytes) -> list[dict]:
    """The epochs of a metrics.jsonl: one JSON object per line with an `epoch`; other lines are skipped (a file
    a user image wrote by hand may have a torn last line)."""
    epochs = []
    for line in data.decode(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and is_finite_number(entry.get(EPOCH)):
            epochs.append(entry)
    return epochs


def curve_metrics(curves: list[tuple[str, list[dict]]]) -> list[str]:
    """Every metric some run recorded per epoch."""
    return validation_first({k for _, epochs in curves for e in epochs for k, v in e.items()
                             if k != EPOCH and is_finite_number(v)})


def plot(curves: list[tuple[str, list[dict]]], path: str, metrics: list[str] | None = None) -> list[str]:
    """Draw `curves` ((label, epochs) per run) to the image file `path`, whose suffix picks the format (.png,
    .svg, .pdf). Returns the metrics drawn, one panel each."""
    metrics = metrics or curve_metrics(curves)
    if not metrics:
        raise ValueError("no per-epoch metrics to draw")
    columns = min(PANEL_COLUMNS, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    # A run keeps its colour in every panel, also where it lacks a metric.
    colors = {label: f"C{i % 10}" for i, (label, _) in enumerate(curves)}
    fig = Figure(figsize=(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for label, epochs in curves:
            points = [(e[EPOCH], e[metric]) for e in epochs if is_finite_number(e.get(metric))]
            if points:
                ax.plot(*zip(*points, strict=True), marker="." if len(points) < 30 else None, color=colors[label])
        ax.set_title(metric)
        ax.set_xlabel(EPOCH)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.legend(handles=[Line2D([], [], color=c, label=label) for label, c in colors.items()],
               loc="lower center", ncol=min(LEGEND_COLUMNS, len(colors)), frameon=False)
    # Room below the panels for the legend: one line of it per LEGEND_COLUMNS runs.
    legend_lines = math.ceil(len(colors) / LEGEND_COLUMNS)
    fig.tight_layout(rect=(0, (0.35 * legend_lines + 0.1) / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=100)
    return metrics
