"""The analysis as SVG figures, byte-identical across reruns.

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot,
so no GUI backend or global figure state is involved. Determinism: a fixed ``svg.hashsalt``
(element ids are otherwise random) and no Date in the metadata.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchmark.core.atomic import atomic_open

SVG_SALT = "ctbench-analysis"


def render_svg(draw: Callable[[Figure], None], path: Path, size: tuple[float, float]) -> Path:
    """Draw with ``draw(figure)``, then write the SVG atomically."""
    with matplotlib.rc_context({"svg.hashsalt": SVG_SALT, "svg.fonttype": "path"}):
        figure = Figure(figsize=size, layout="constrained")
        FigureCanvasAgg(figure)
        draw(figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return path


def _nan(values) -> np.ndarray:
    """None (an undefined CKA in the JSON) -> NaN, which matplotlib leaves out."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def draw_reuse(reuse: dict, stages: list[str]) -> Callable[[Figure], None]:
    """One panel per CKA kind; one line per checkpoint over the stages."""
    def draw(figure: Figure) -> None:
        axes = figure.subplots(1, 2, sharey=True)
        for ax, kind in zip(axes, ("linear", "rbf")):
            for name, entry in reuse.items():
                ax.plot(stages, _nan(entry[kind][s] for s in stages), marker="o", label=name)
            ax.set_title(f"{kind} CKA, pretrained vs finetuned")
            ax.set_ylim(0, 1.05)
            ax.set_xlabel("stage")
        axes[0].set_ylabel("CKA (1 = features reused)")
        axes[1].legend(fontsize="small")
    return draw


def draw_pairwise(pairwise: dict, names: list[str]) -> Callable[[Figure], None]:
    """One heat map of linear CKA between checkpoints per stage, values written in the cells."""
    def draw(figure: Figure) -> None:
        axes = np.atleast_1d(figure.subplots(1, len(pairwise)))
        for ax, (stage, matrix) in zip(axes, pairwise.items()):
            values = np.array([_nan(row) for row in matrix])
            ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
            for (i, j), v in np.ndenumerate(values):
                ax.text(j, i, "-" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize="small",
                        color="black" if v > 0.6 else "white")
            ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize="small")
            ax.set_yticks(range(len(names)), names if ax is axes[0] else [], fontsize="small")
            ax.set_title(stage)
        figure.suptitle("linear CKA between checkpoints on the same test slices")
    return draw


def draw_uniqueness(uniqueness: dict, stages: list[str], groups: int) -> Callable[[Figure], None]:
    """Grouped bars: stages along x, one bar per checkpoint."""
    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        width = 0.8 / max(1, len(uniqueness))
        for k, (name, values) in enumerate(uniqueness.items()):
            ax.bar(np.arange(len(stages)) + k * width, _nan(values[s] for s in stages), width, label=name)
        ax.set_xticks(np.arange(len(stages)) + width * (len(uniqueness) - 1) / 2, stages)
        ax.set_ylabel(f"1 - mean linear CKA between {groups} channel groups")
        ax.set_title("filter uniqueness (pretrained)")
        ax.legend(fontsize="small")
    return draw


def draw_who_knew_what(table: dict) -> Callable[[Figure], None]:
    """Observed vs independent-error frequency per right/wrong pattern, or why there is none."""
    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        if "patterns" not in table:
            ax.axis("off")
            ax.text(0.5, 0.5, f"who knew what: skipped\n{table['skipped']}", ha="center", va="center", wrap=True)
            return
        patterns = table["patterns"]
        y = np.arange(len(patterns))
        ax.barh(y - 0.2, [p["observed_fraction"] for p in patterns], 0.4, label="observed")
        ax.barh(y + 0.2, [p["expected_fraction"] for p in patterns], 0.4, label="if errors were independent")
        ax.set_yticks(y, [p["pattern"] for p in patterns], fontfamily="monospace")
        ax.invert_yaxis()
        ax.set_xlabel(f"fraction of {table['cases']} test cases")
        ax.set_ylabel("right (1) / wrong (0): " + ", ".join(table["checkpoints"]))
        ax.set_title(f"who knew what ({table['protocol']}, scale {table['scale']:g}, seed {table['seed']})")
        ax.legend(fontsize="small")
    return draw
