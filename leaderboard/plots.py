"""Matplotlib figures as byte-stable SVG data URIs, embedded in the pages.

SVG from matplotlib carries a creation date and random element ids; a fixed hash salt
and no date make the same data give the same bytes, which the site's byte-identical
rebuild needs.
"""
from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import pandas as pd  # noqa: E402

matplotlib.rcParams["svg.hashsalt"] = "ctbench"
matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, and no font-dependent paths


def literal(text: str) -> str:
    """User text drawn as itself: an unescaped ``$`` would start mathtext, and a name like
    ``$\\foo$`` would then abort the whole build with a parse error."""
    return str(text).replace("$", r"\$")


def svg_data_uri(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(figure)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue().encode()).decode()


def scale_curve(cells: pd.DataFrame, per_seed: pd.DataFrame, metric: str, title: str) -> str:
    """Metric against label fraction per checkpoint: the mean line, its 95 % CI band and every seed."""
    figure, axis = plt.subplots(figsize=(6, 3.6))
    for index, (checkpoint, group) in enumerate(cells.groupby("checkpoint", sort=True)):
        group = group.sort_values("scale")
        colour = f"C{index % 10}"
        axis.plot(group["scale"], group["mean"], marker="o", color=colour, label=literal(checkpoint))
        axis.fill_between(group["scale"], group["ci95_low"], group["ci95_high"], color=colour, alpha=0.15,
                          linewidth=0)
        seeds = per_seed[per_seed["checkpoint"] == checkpoint]
        axis.scatter(seeds["scale"], seeds["value"], color=colour, s=10, alpha=0.6)
    axis.set_xscale("log")
    axis.set_xlabel("fraction of the training labels")
    axis.set_ylabel(literal(metric))
    axis.set_title(literal(title), fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, frameon=False)
    return svg_data_uri(figure)
