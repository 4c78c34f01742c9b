"""Reading ingested submissions back, and the status every leaderboard row carries.

``ctbench leaderboard ingest`` (``leaderboard.ingest``) stores each accepted bundle under
``<workdir>/ingested/<folder>/results/`` as an ordinary result store (results and their
predictions, laid out as ``ResultStore`` lays them out) whose results carry a ``submission``
section: "verified" or "self-reported", who submitted, the bundle's sha256. This module is the
read side, so the aggregate never imports the ingest code.

Statuses, in the order the site ranks them: a row is "verified" (recomputed by the maintainer),
"local" (run in this workdir), "self-reported" (a bundle ingested without the data) or
"imported" (a CSV of numbers). Default views rank only ``RANKED`` rows.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.core.workdir import Workdir
from benchmark.results.schema import Result
from benchmark.results.store import LoadProblem, ResultStore

STATUSES = ("verified", "local", "self-reported", "imported")
RANKED = ("verified", "local")


def ingested_dir(workdir: Workdir) -> Path:
    return workdir.root / "ingested"


def status_of(result) -> str:
    """One of ``STATUSES``; ``result`` a ``Result`` or an ``ImportedResult``."""
    submission = getattr(result, "submission", None)
    if submission is not None:
        return submission.status
    return "imported" if result.imported is not None else "local"


def submitter_of(result) -> str:
    submission = getattr(result, "submission", None)
    return submission.submitter if submission is not None else ""


def load_ingested(folder: Path) -> tuple[list[Result], list[LoadProblem]]:
    """Every ingested bundle's results, bundle folders in name order; a result without its
    ``submission`` section was not written by the ingest and is a problem, not a local row."""
    results: list[Result] = []
    problems: list[LoadProblem] = []
    for store_root in sorted(Path(folder).glob("*/results")):
        for path, item in ResultStore(store_root).iter_files():
            if isinstance(item, LoadProblem):
                problems.append(item)
            elif item.submission is None:
                problems.append(LoadProblem(path, "an ingested result without its submission section"))
            else:
                results.append(item)
    return results, problems
