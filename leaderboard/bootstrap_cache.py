"""Paired patient-bootstrap intervals for the pages, cached so an unchanged rebuild is fast.

For every main-metric cell (checkpoint x task version x protocol x scale) whose checkpoint and
the natural-image baseline both saved predictions for the same seeds, ``bootstrap.paired_bootstrap``
gives the CI of (checkpoint - baseline) over test patients. That costs seconds a cell, so each
answer is stored under ``<workdir>/cache/bootstrap/<key>.json``, the key a hash of both sides'
result JSON and predictions files (by content), the metric and the bootstrap settings: a
changed result or setting misses the cache, an unchanged one reads it back, and a fixed seed
makes a cold and a warm build write the same bytes. A cell whose predictions cannot be
bootstrapped (an old or hand-made file) caches its reason and shows no interval; it never
fails the build.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from benchmark.core.atomic import write_json
from benchmark.core.errors import CTBenchError
from benchmark.core.hashing import canonical_hash, file_sha256
from benchmark.results.schema import Result
from benchmark.results.store import LoadProblem, ResultStore
from leaderboard import bootstrap
from leaderboard.stats import plain

CACHE_VERSION = 1  # bump when what a cached answer means changes


@dataclass(frozen=True)
class Settings:
    n_resamples: int = 1000
    seed: int = 0
    confidence: float = 0.95


DEFAULT_BOOTSTRAP = Settings()


def located_results(store: ResultStore, ingested: Optional[Path]) -> list[tuple[Path, Result]]:
    """Every readable result that saved predictions, with its file: local, then ingested bundles."""
    stores = [store] + [ResultStore(p) for p in sorted(Path(ingested).glob("*/results"))] if ingested else [store]
    return [(path, item) for s in stores for path, item in s.iter_files()
            if not isinstance(item, LoadProblem) and item.predictions_file and item.imported is None]


def intervals(located: Iterable[tuple[Path, Result]], baseline: Optional[str], mains: dict, cache: Path,
              settings: Settings = DEFAULT_BOOTSTRAP) -> dict[tuple, dict]:
    """(checkpoint, task, version, protocol, scale, metric) -> the cached or computed interval."""
    if baseline is None:
        return {}
    out = {}
    hashed: dict[Path, list[str]] = {}  # the baseline's files pair with every checkpoint: hash them once
    for (task, version, protocol, scale), by_checkpoint in sorted(_cells(located).items()):
        metric = mains.get((task, version), {}).get("name")
        theirs = by_checkpoint.get(baseline)
        if metric is None or theirs is None:
            continue
        for checkpoint, mine in sorted(by_checkpoint.items()):
            seeds = sorted(set(mine) & set(theirs))
            if checkpoint != baseline and seeds and None not in (mine.get(s) for s in seeds):
                pairs = [(mine[s], theirs[s]) for s in seeds]
                out[(checkpoint, task, version, protocol, scale, metric)] = _cached(pairs, metric, cache, settings,
                                                                                   hashed)
    return out


def _cells(located: Iterable[tuple[Path, Result]]) -> dict[tuple, dict[str, dict[int, Optional[tuple]]]]:
    """cell -> checkpoint -> seed -> (result path, result); None where two results claim one seed
    (two profiles, or a bundle beside a local run): which pairs with which would be a guess."""
    cells: dict[tuple, dict[str, dict[int, Optional[tuple]]]] = {}
    for path, result in located:
        job = result.job
        seeds = cells.setdefault((job.task, job.task_version, job.protocol, float(job.scale)), {}).setdefault(
            job.checkpoint, {})
        seeds[int(job.seed)] = None if int(job.seed) in seeds else (path, result)
    return cells


def _cached(pairs: list[tuple], metric: str, cache: Path, settings: Settings, hashed: dict[Path, list[str]]) -> dict:
    def fingerprint(path: Path, result: Result) -> list[str]:
        if path not in hashed:
            hashed[path] = _fingerprint(path, result)
        return hashed[path]

    key = canonical_hash({"version": CACHE_VERSION, "metric": metric, "settings": vars(settings),
                          "pairs": [[fingerprint(*a), fingerprint(*b)] for a, b in pairs]})
    path = cache / f"{key}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    answer = _compute(pairs, metric, settings)
    write_json(path, answer)
    return answer


def _fingerprint(path: Path, result: Result) -> list[str]:
    """A result by content: its JSON and its predictions file (a missing file hashes as absent)."""
    predictions = path.parent / result.predictions_file
    return [file_sha256(path), file_sha256(predictions) if predictions.is_file() else "absent"]


def _compute(pairs: list[tuple], metric: str, settings: Settings) -> dict:
    seeds = [int(a[1].job.seed) for a, _ in pairs]
    try:
        spec = pairs[0][0][1].task.spec()
        loaded = [(bootstrap.read_predictions(*a), bootstrap.read_predictions(*b)) for a, b in pairs]
        result = bootstrap.paired_bootstrap(spec, loaded, metric, n_resamples=settings.n_resamples, seed=settings.seed,
                                        confidence=settings.confidence)
    except (CTBenchError, ValueError, KeyError, IndexError, TypeError, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:300], "seeds": seeds}
    return {**{k: plain(v) for k, v in result.as_dict().items() if k != "seeds"}, "seeds": seeds}
