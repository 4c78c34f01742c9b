"""Where each leaderboard row came from: its status, submitter and bundle, and its split.

Statuses come from ``ingested`` (verified / local / self-reported / imported). A row's split is
"published" when the split membership its result recorded is the task's published one
(``benchmark.data.published``), "custom" when it differs, "unpublished" when the task has no
published split, and "" when unknown (an import, or a result from before memberships were kept).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from leaderboard.aggregate import best_status
from leaderboard.imported import AnyResult
from leaderboard.ingested import RANKED


def published_memberships(workdir: Path, tasks: Iterable[tuple[str, str]] | None = None) -> dict[tuple[str, str], str]:
    """(task, version) -> the published split's membership, shipped and imported into ``workdir``; only
    for ``tasks`` where given (a site reads the sets of the tasks it shows, not all nine).
    An unreadable published set stops the build with its one-line DataError: marking no row custom
    would silently rank custom splits beside published ones."""
    from benchmark.data.published import find_published
    from benchmark.data.published import published_memberships as memberships

    if tasks is None:
        return memberships(workdir)
    found = {key: find_published(*key, workdir) for key in sorted(set(tasks))}
    return {key: published.split_membership for key, published in found.items() if published is not None}


def with_split(frame: pd.DataFrame, published: dict[tuple[str, str], str] | None) -> pd.DataFrame:
    """Each row's split: "published" (its membership is the task's published one), "custom" (it
    differs), "unpublished" (the task has none: every lab's split is its own), "" (not known)."""
    if published is None or frame.empty:
        return frame.assign(split="")
    classes = ["" if not m else "unpublished" if (t, v) not in published else
               "published" if published[(t, v)] == m else "custom"
               for t, v, m in zip(frame["task"], frame["task_version"], frame["membership"])]
    return frame.assign(split=classes)


def checkpoint_provenance(frame: pd.DataFrame) -> dict[str, dict]:
    """Per checkpoint: its best status, whether any of its rows is ranked, its submitters and bundles."""
    out = {}
    for name, rows in frame.groupby("checkpoint", sort=True):
        status = best_status(rows["status"])
        out[name] = {"status": status, "ranked": status in RANKED,
                     "submitters": sorted(set(rows["submitter"]) - {""}),
                     "bundles": sorted(set(rows["bundle"]) - {""})}
    return out


def submissions(results: list[AnyResult]) -> list[dict]:
    """One row per ingested bundle, by sha256: its status, submitter, checker version and results."""
    bundles: dict[str, dict] = {}
    for r in results:
        sub = getattr(r, "submission", None)
        if sub is None:
            continue
        row = bundles.setdefault(sub.bundle_sha256, {"sha256": sub.bundle_sha256, "status": sub.status,
                                                     "submitter": sub.submitter, "ingested_with": sub.ingested_with,
                                                     "n_results": 0, "checkpoints": set()})
        row["n_results"] += 1
        row["checkpoints"].add(r.checkpoint.name)
    return [{**row, "checkpoints": sorted(row["checkpoints"])} for _, row in sorted(bundles.items())]
