"""Render the static leaderboard: an overview, the domain-transfer view, a page per task,
per checkpoint and for the feature-space analysis, plus CSV/JSON downloads.

Everything is sorted and formatted with fixed precision, plots are byte-stable SVG, and
nothing records the time of the build, so rebuilding from the same results gives the same
bytes. Jinja2 autoescaping covers every user-given string (checkpoint names, metadata,
imported sources); the only script is the shipped ``app.js`` (sort and filter, no network).
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import re
from importlib import resources
from pathlib import Path

import jinja2
import pandas as pd

from benchmark.core.atomic import atomic_open, canonical_json
from benchmark.core.specs import NAME_PATTERN
from benchmark.results.schema import CheckpointRecord
from benchmark.results.store import LoadProblem, ResultStore
from leaderboard import stats
from leaderboard.aggregate import load, summarize, tidy
from leaderboard.imported import AnyResult
from leaderboard.plots import scale_curve

DOMAINS = ("ct", "mri", "xray", "natural")
STATIC = ("app.js", "style.css")


def build_site(store: ResultStore, out_dir: Path, imported: Path | None = None,
               analysis: Path | None = None, ingested: Path | None = None) -> tuple[Path, list[str]]:
    """Returns the index.html path and the warnings (unreadable result files, by name)."""
    results, problems = load(store, imported, ingested)
    sections, unreadable = _analysis_sections(analysis)
    board = _Board(results)
    warnings = [f"{p.path}: {p.problem}" for p in problems + unreadable]
    published = [f"{_published_path(p.path, store.root.parent)}: {p.problem}" for p in problems + unreadable]
    files = {"index.html": board.render("index.html.j2", root="", warnings=published),
             "analysis.html": board.render("analysis.html.j2", root="", sections=sections)}
    for table in board.task_tables():
        files[f"tasks/{table['slug']}.html"] = board.render("task.html.j2", root="../", page=table)
    for entry in board.entries:
        files[f"checkpoints/{slug(entry.name)}.html"] = board.render("checkpoint.html.j2", root="../",
                                                                        page=board.checkpoint_page(entry))
    buffer = io.StringIO()
    stats.write_table(board.compared, "csv", buffer)
    files["leaderboard.csv"] = buffer.getvalue()
    files["leaderboard.json"] = canonical_json(_records(board.compared))
    for name in STATIC:
        files[name] = resources.files("leaderboard").joinpath("static", name).read_text(encoding="utf-8")
    for name, text in sorted(files.items()):
        with atomic_open(out_dir / name, "wb") as handle:  # the pages say utf-8, whatever the locale
            handle.write(text.encode("utf-8"))
    return out_dir / "index.html", warnings


def slug(name: str) -> str:
    """A page name: the name itself where it is safe (every registered name is), else a hash."""
    return name if re.fullmatch(NAME_PATTERN, name) else "x-" + hashlib.sha256(name.encode()).hexdigest()[:16]


def fmt(value, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


class _Board:
    """Every table the pages show, computed once from the loaded results."""

    def __init__(self, results: list[AnyResult]):
        self.results = results
        self.frame = tidy(results)
        self.entries = stats.checkpoint_entries(results)
        self.mains = stats.main_metrics(results)
        self.baselines = stats.baselines(self.entries)
        self.summary = summarize(self.frame) if len(self.frame) else pd.DataFrame(
            columns=["checkpoint", "task", "task_version", "protocol", "scale", "metric", "n_seeds", "mean", "std",
                     "ci95_low", "ci95_high", "seeds"])
        self.compared = stats.compare(self.frame, self.entries, self.mains)
        self.overall = stats.overall(self.summary, self.mains)
        self.domains = {(r.job.task, r.job.task_version): r.task.get("domain", "?") for r in results}
        local = {r.checkpoint.name for r in results if r.imported is None}
        self.imported_names = {e["name"] for e in self.entries} - local
        self.versus = {tuple(row[k] for k in stats.CELL): row for row in self.compared.to_dict(orient="records")
                       if row["baseline_kind"] == "natural"}
        self.env = jinja2.Environment(loader=jinja2.PackageLoader("leaderboard", "templates"), autoescape=True,
                                      undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        self.env.filters["fmt"] = fmt
        self.env.filters["slug"] = slug

    def render(self, template: str, **context) -> str:
        return self.env.get_template(template).render(board=self, domains=DOMAINS, **context)

    # ------------------------------------------------------------ cells on main metrics

    def main_cells(self) -> pd.DataFrame:
        names = [self.mains.get((t, v), {}).get("name") for t, v in zip(self.summary["task"], self.summary["task_version"])]
        return self.summary[self.summary["metric"] == pd.Series(names, index=self.summary.index)]

    def cell(self, row) -> dict:
        """One checkpoint's mean ± CI on a cell, with its comparison against the natural baseline."""
        key = (row.checkpoint, row.task, row.task_version, row.protocol, row.scale, row.metric)
        versus = self.versus.get(key)
        is_baseline = row.checkpoint == self.baselines.get("natural")
        half = (row.ci95_high - row.ci95_low) / 2 if math.isfinite(row.ci95_high - row.ci95_low) else math.nan
        return {"mean": row.mean, "half": half, "std": row.std, "low": row.ci95_low, "high": row.ci95_high,
                "n": int(row.n_seeds), "tier": "baseline" if is_baseline else (versus or {}).get("tier") or "none",
                "delta": (versus or {}).get("delta_pct", math.nan), "p": (versus or {}).get("p_welch", math.nan)}

    def overview(self) -> dict:
        """Rows: task x protocol (grouped by domain), at each one's largest scale; columns: checkpoints."""
        cells = self.main_cells()
        checkpoints = [e["name"] for e in self.entries]
        rows = []
        for (task, version, protocol), group in cells.groupby(["task", "task_version", "protocol"], sort=True):
            top = group[group["scale"] == group["scale"].max()]
            by_checkpoint = {r.checkpoint: self.cell(r) for r in top.itertuples()}
            rows.append({"task": task, "version": version, "protocol": protocol, "scale": top["scale"].iloc[0],
                         "domain": self.domains.get((task, version), "?"), "metric": top["metric"].iloc[0],
                         "cells": [by_checkpoint.get(c) for c in checkpoints], "slug": slug(f"{task}.v{version}")})
        rows.sort(key=lambda r: (_domain_order(r["domain"]), r["task"], r["version"], r["protocol"]))
        return {"checkpoints": checkpoints, "rows": rows}

    def domain_view(self) -> list[dict]:
        """Per checkpoint: its advantage over the natural baseline inside CT and across the boundary.

        The advantage is the study's relative difference, signed so that positive means better
        (it flips for lower-is-better metrics), averaged over main-metric cells of every
        protocol and scale; the gap is CT minus the cross-domain average.
        """
        rows = []
        for entry in self.entries:
            name = entry.name
            if name == self.baselines.get("natural"):
                continue
            by_domain = {d: [] for d in DOMAINS}
            tiers = {"ct": [], "cross": []}
            for key, row in self.versus.items():
                if key[0] != name or self.mains.get((key[1], key[2]), {}).get("name") != key[5]:
                    continue
                sign = 1 if self.mains[(key[1], key[2])]["higher_is_better"] else -1
                domain = self.domains.get((key[1], key[2]), "?")
                if domain in by_domain and math.isfinite(row["delta_pct"]):
                    by_domain[domain].append(sign * row["delta_pct"])
                    tiers["ct" if domain == "ct" else "cross"].append(row["tier"])
            ct, cross = _mean(by_domain["ct"]), _mean([v for d in DOMAINS[1:] for v in by_domain[d]])
            rows.append({"name": name, "pretraining_domain": entry.get("pretraining_domain", "?"),
                         "per_domain": {d: _mean(v) for d, v in by_domain.items()},
                         "counts": {d: len(v) for d, v in by_domain.items()}, "ct": ct, "cross": cross,
                         "gap": ct - cross if math.isfinite(ct) and math.isfinite(cross) else math.nan,
                         "tiers": {k: {t: v.count(t) for t in ("better", "tie", "worse")} for k, v in tiers.items()}})
        return rows

    # ------------------------------------------------------------ per-task pages

    def task_tables(self) -> list[dict]:
        cells = self.main_cells()
        pages: dict[tuple, dict] = {}
        budgets = _budget_labels(self.results)
        # where each task's data comes from, as its spec said (a result run here before an imported one)
        sources = {(r.job.task, r.job.task_version): {
            k: v for k, v in r.task.as_dict().items() if k in ("license", "reference", "citation") and isinstance(v, str)}
            for r in reversed(self.results)}
        for (task, version, protocol), group in cells.groupby(["task", "task_version", "protocol"], sort=True):
            scales = sorted(group["scale"].unique(), reverse=True)
            metric = group["metric"].iloc[0]
            rows = []
            for checkpoint, mine in group.groupby("checkpoint", sort=True):
                by_scale = {r.scale: self.cell(r) for r in mine.itertuples()}
                rows.append({"checkpoint": checkpoint, "cells": [by_scale.get(s) for s in scales]})
            seeds = self.frame[(self.frame["task"] == task) & (self.frame["task_version"] == version)
                               & (self.frame["protocol"] == protocol) & (self.frame["metric"] == metric)]
            page = pages.setdefault((task, version), {
                "task": task, "version": version, "slug": slug(f"{task}.v{version}"),
                "domain": self.domains.get((task, version), "?"), "metric": metric,
                "higher_is_better": self.mains[(task, version)]["higher_is_better"], "protocols": [],
                "source": sources.get((task, version), {})})
            page["protocols"].append({
                "protocol": protocol, "rows": rows,
                "scales": [{"scale": f"{s:.4g}", "budget": budgets.get((task, version, protocol, s), "")}
                           for s in scales],
                "plot": scale_curve(group, seeds, metric, f"{task} · {protocol}") if len(scales) > 1 else None})
        return [pages[key] for key in sorted(pages)]

    # ------------------------------------------------------------ per-checkpoint pages

    def checkpoint_page(self, entry: CheckpointRecord) -> dict:
        mine = [r for r in self.results if r.checkpoint.name == entry.name]
        local = sorted((r for r in mine if r.imported is None), key=lambda r: r.job.job_id)
        provenance = local[0].provenance.as_dict() if local and local[0].provenance else {}
        cells = self.main_cells()
        rows = [{"task": r.task, "version": r.task_version, "protocol": r.protocol, "scale": r.scale,
                 "metric": r.metric, "slug": slug(f"{r.task}.v{r.task_version}"), **self.cell(r)}
                for r in cells[cells["checkpoint"] == entry.name].itertuples()]
        sources = sorted({r.imported.source for r in mine if r.imported is not None})
        return {"entry": entry, "rows": rows, "sources": sources, "n_local": len(local),
                "provenance": {k: provenance.get(k) for k in ("ctbench_version", "git", "packages", "device",
                                                              "device_name", "precision")} if provenance else {}}


def _budget_labels(results: list[AnyResult]) -> dict[tuple, str]:
    """The labelled cases each scale really used (train + val), so a floored budget is visible."""
    used: dict[tuple, set[int]] = {}
    for r in results:
        if r.counts is not None:
            key = (r.job.task, r.job.task_version, r.job.protocol, float(r.job.scale))
            used.setdefault(key, set()).add(r.counts.train_cases + r.counts.val_cases)
    return {key: (f"{min(v)}" if len(v) == 1 else f"{min(v)}–{max(v)}") + " labelled cases"
            for key, v in used.items()}


def _published_path(path: Path, workdir: Path) -> str:
    """The page names a bad file relative to the workdir: the site is published, local folders are not."""
    path = Path(path)
    return path.relative_to(workdir).as_posix() if path.is_relative_to(workdir) else path.name


def _analysis_sections(folder: Path | None) -> tuple[list[dict], list[LoadProblem]]:
    """Each ``analysis/<task>/``: its SVG plots and its numbers as tables. An unreadable
    ``analysis.json`` is a warning and an empty section, never a failed build."""
    sections, problems = [], []
    for task_dir in sorted(p for p in (folder.iterdir() if folder and folder.is_dir() else []) if p.is_dir()):
        path = task_dir / "analysis.json"
        try:
            payload = json.loads(path.read_bytes().decode("utf-8")) if path.is_file() else {}
            tables = _analysis_tables(payload)
            notes = {k: v for k, v in sorted(payload.items()) if isinstance(v, (str, int, float))}
        except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, StopIteration) as exc:
            problems.append(LoadProblem(path, f"not a readable analysis ({type(exc).__name__}: {exc})"))
            tables, notes = [], {}
        plots = [{"name": svg.stem, "uri": "data:image/svg+xml;base64," + base64.b64encode(svg.read_bytes()).decode()}
                 for svg in sorted(task_dir.glob("*.svg"))]
        sections.append({"task": task_dir.name, "tables": tables, "plots": plots, "notes": notes})
    return sections, problems


def _analysis_tables(payload: dict) -> list[dict]:
    """Feature reuse and filter uniqueness per checkpoint x stage, pairwise CKA per stage, and the
    who-knew-what patterns, as ``{name, columns, rows}``."""
    tables = []
    reuse = payload.get("reuse", {})
    if reuse:
        stages = sorted(next(iter(reuse.values()))["linear"])
        tables.append(_table("feature reuse: CKA(pretrained, finetuned), linear / RBF", ["checkpoint", *stages],
                             [[name, *(f"{fmt(r['linear'][s])} / {fmt(r['rbf'][s])}" for s in stages)]
                              for name, r in sorted(reuse.items())]))
    uniqueness = payload.get("uniqueness", {})
    if uniqueness:
        stages = sorted(next(iter(uniqueness.values())))
        tables.append(_table("filter uniqueness (1 - CKA between filter groups)", ["checkpoint", *stages],
                             [[name, *(fmt(u[s]) for s in stages)] for name, u in sorted(uniqueness.items())]))
    pairwise = payload.get("pairwise", {})
    for stage, matrix in sorted(pairwise.get("linear", {}).items()):
        names = pairwise["checkpoints"]
        tables.append(_table(f"linear CKA between checkpoints, {stage}", ["", *names],
                             [[a, *(fmt(v) for v in row)] for a, row in zip(names, matrix)]))
    patterns = payload.get("who_knew_what", {}).get("patterns", [])
    if patterns:
        tables.append(_table("who knew what: right (1) / wrong (0) per checkpoint, observed against independent errors",
                             ["pattern", "right", "observed", "expected if independent"],
                             [[p["pattern"], ", ".join(p["right"]) or "none", p["observed_count"],
                               fmt(p["expected_count"], 1)] for p in patterns]))
    return tables


def _table(name: str, columns: list[str], rows: list[list]) -> dict:
    return {"name": name, "columns": columns, "rows": [[_cell(v) for v in row] for row in rows]}


def _cell(value) -> str:
    if isinstance(value, float):
        return fmt(value)
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _domain_order(domain: str) -> int:
    return DOMAINS.index(domain) if domain in DOMAINS else len(DOMAINS)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _records(table: pd.DataFrame) -> list[dict]:
    return [{k: stats.plain(v) for k, v in row.items()} for row in table.to_dict(orient="records")]
