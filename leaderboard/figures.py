"""The front page's two figures: the leaderboard's question as a picture.

The first puts each checkpoint's advantage over the natural-image baseline inside CT against
its advantage across the domain boundary, with intervals; a point under the diagonal is a
checkpoint whose CT advantage does not carry over. The second is the label-budget curve of the
headline CT task, where a reader sees at which budget the domain starts to matter. Both are
byte-stable SVG through ``plots.svg_data_uri``, as the task pages' plots are.
"""
from __future__ import annotations

import math

import pandas as pd

from leaderboard.plots import literal, plt, scale_curve, svg_data_uri


def advantage_scatter(points: list[dict]) -> str | None:
    """``points``: name, ct, cross, their (low, high) intervals and whether the row is ranked.
    Hollow markers are shown-but-unranked rows; None when no checkpoint has both numbers."""
    points = [p for p in points if math.isfinite(p["ct"]) and math.isfinite(p["cross"])]
    if not points:
        return None
    figure, axis = plt.subplots(figsize=(6, 4.2))
    for index, p in enumerate(sorted(points, key=lambda p: p["name"])):
        colour = f"C{index % 10}"
        axis.errorbar(p["ct"], p["cross"], xerr=_error(p["ct"], p["ct_ci"]), yerr=_error(p["cross"], p["cross_ci"]),
                      fmt="o", color=colour, mfc=colour if p["ranked"] else "none", capsize=3,
                      label=literal(p["name"]) + ("" if p["ranked"] else f" ({literal(p['status'])})"))
    _diagonal(axis, points)
    axis.set_xlabel("advantage inside CT (% vs natural-image baseline)")
    axis.set_ylabel("advantage across the boundary (%)")
    axis.set_title("below the diagonal: the CT advantage does not carry over", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, frameon=False, loc="best")
    return svg_data_uri(figure)


def budget_curves(cells: pd.DataFrame, per_seed: pd.DataFrame, metric: str, title: str) -> str | None:
    """The headline CT task's metric against label fraction; None with fewer than two budgets."""
    return scale_curve(cells, per_seed, metric, title) if cells["scale"].nunique() > 1 else None


def _error(centre: float, interval: tuple[float, float]) -> list[list[float]] | None:
    """Asymmetric error bars from a (low, high) interval; none where it is undefined."""
    low, high = interval
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return [[centre - low], [high - centre]]


def _diagonal(axis, points: list[dict]) -> None:
    """y = x (the advantage carries over unchanged) and the zero lines (no advantage)."""
    values = [v for p in points for v in (p["ct"], p["cross"], *p["ct_ci"], *p["cross_ci"]) if math.isfinite(v)]
    low, high = min(values + [0.0]), max(values + [0.0])
    pad = (high - low) * 0.1 or 1.0
    axis.plot([low - pad, high + pad], [low - pad, high + pad], color="#999", linewidth=0.8, linestyle="--")
    axis.axhline(0, color="#bbb", linewidth=0.6)
    axis.axvline(0, color="#bbb", linewidth=0.6)
