"""``ctbench results export``: the per-seed long table, for people who want their own stats."""
from __future__ import annotations

import json
from typing import TextIO

from benchmark.results.store import ResultStore
from leaderboard.aggregate import TIDY_COLUMNS, load, tidy
from leaderboard.csv_safety import neutralise_columns


def export(store: ResultStore, fmt: str, out: TextIO) -> list[str]:
    """Writes the table to ``out`` and returns warnings about unreadable result files."""
    results, problems = load(store)
    frame = tidy(results)
    if fmt == "csv":
        text = [c for c in TIDY_COLUMNS if c not in ("scale", "seed", "value")]
        safe = neutralise_columns(frame[TIDY_COLUMNS], text)
        safe.to_csv(out, index=False, lineterminator="\n", float_format="%.10g")
    else:
        out.write(json.dumps(frame[TIDY_COLUMNS].to_dict(orient="records"), indent=2) + "\n")
    return [f"{p.path}: {p.problem}" for p in problems]
