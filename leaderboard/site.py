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
from leaderboard.aggregate import best_status, ci95, load, split_class, summarize, tidy
from leaderboard.bootstrap_cache import DEFAULT_BOOTSTRAP, Settings, intervals, located_results
from leaderboard.figures import advantage_scatter, budget_curves
from leaderboard.imported import AnyResult
from leaderboard.ingested import RANKED, STATUSES, status_of
from leaderboard.plots import scale_curve
from leaderboard.provenance import checkpoint_provenance, published_memberships, submissions, with_split

DOMAINS = ("ct", "mri", "xray", "natural")
STATIC = ("app.js", "style.css")


def build_site(store: ResultStore, out_dir: Path, imported: Path | None = None,
               analysis: Path | None = None, ingested: Path | None = None, cache: Path | None = None,
               bootstrap: Settings | None = DEFAULT_BOOTSTRAP) -> tuple[Path, list[str]]:
    """Returns the index.html path and the warnings (unreadable result files, by name).

    ``cache``: where bootstrap intervals are kept (default ``<workdir>/cache/bootstrap``, the
    workdir being the store's parent); ``bootstrap=None`` leaves the intervals out.
    """
    results, problems = load(store, imported, ingested)
    sections, unreadable = _analysis_sections(analysis)
    board = _Board(results, published_memberships(store.root.parent, {(r.job.task, r.job.task_version) for r in results}))
    if bootstrap is not None:
        board.intervals = intervals(located_results(store, ingested), board.baselines.get("natural"), board.mains,
                                    cache or store.root.parent / "cache" / "bootstrap", bootstrap)
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
    """A page name, unique even on a case-insensitive file system (macOS, Windows, many web servers).

    A lower-case registered name is its own slug; one with upper case is lower-cased and given
    ``_`` and a short hash of the exact name (``Mine`` -> ``mine_3f2a...``), so ``Mine`` and
    ``mine`` never share a file: no registered name holds ``_``, so no plain slug can equal a
    suffixed one. Anything else (not a registered name) is ``x-`` and a hash.
    """
    digest = hashlib.sha256(name.encode()).hexdigest()
    if not re.fullmatch(NAME_PATTERN, name):
        return "x-" + digest[:16]
    return name if name == name.lower() else f"{name.lower()}_{digest[:10]}"


def fmt(value, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


class _Board:
    """Every table the pages show, computed once from the loaded results."""

    def __init__(self, results: list[AnyResult], published: dict[tuple[str, str], str] | None = None):
        self.results = results
        self.frame = with_split(tidy(results), published)
        self.entries = stats.checkpoint_entries(results)
        self.mains = stats.main_metrics(results)
        self.baselines = stats.baselines(self.entries)
        self.summary = summarize(self.frame) if len(self.frame) else pd.DataFrame(
            columns=["checkpoint", "task", "task_version", "protocol", "scale", "metric", "n_seeds", "mean", "std",
                     "ci95_low", "ci95_high", "seeds", "status", "split"])
        self.directions = stats.directions(results)
        self.headlines = stats.headline_metrics(results)
        self.budgets = _budget_labels(results)
        self.compared = stats.compare(self.frame, self.entries, self.directions)
        self.overall = stats.overall(self.ranked_summary(), self.mains)
        self.provenance = checkpoint_provenance(self.frame)
        self.intervals: dict[tuple, dict] = {}  # bootstrap CIs vs the natural baseline, set by build_site
        self.submissions = submissions(results)
        self.domains = {(r.job.task, r.job.task_version): r.task.get("domain", "?") for r in results}
        local = {r.checkpoint.name for r in results if r.imported is None}
        self.imported_names = {e["name"] for e in self.entries} - local
        self.versus = {tuple(row[k] for k in stats.CELL): row for row in self.compared.to_dict(orient="records")
                       if row["baseline_kind"] == "natural"}
        self.env = jinja2.Environment(loader=jinja2.PackageLoader("leaderboard", "templates"), autoescape=True,
                                      undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        self.env.filters["fmt"] = fmt
        self.env.filters["slug"] = slug
        self.env.globals.update(statuses=STATUSES, ranked=RANKED)

    def render(self, template: str, **context) -> str:
        return self.env.get_template(template).render(board=self, domains=DOMAINS, **context)

    # ------------------------------------------------------------ cells on main metrics

    def ranked_summary(self) -> pd.DataFrame:
        """The cells the Borda count ranks: verified and local rows, never on a custom split (the
        others are shown, marked, but a self-reported number or a lab's own split ranks nowhere)."""
        if not len(self.summary):
            return self.summary
        return self.summary[self.summary["status"].isin(RANKED) & (self.summary["split"] != "custom")]

    def main_cells(self) -> pd.DataFrame:
        """The overview's cells: each task's headline metrics (its main one, or those an import marked)."""
        if not len(self.summary):
            return self.summary
        keep = [m in self.headlines.get((t, v), ())
                for t, v, m in zip(self.summary["task"], self.summary["task_version"], self.summary["metric"])]
        return self.summary[keep]

    def cell(self, row) -> dict:
        """One checkpoint's mean ± CI on a cell, with its comparison against the natural baseline."""
        key = (row.checkpoint, row.task, row.task_version, row.protocol, row.scale, row.metric)
        versus = self.versus.get(key)
        is_baseline = row.checkpoint == self.baselines.get("natural")
        half = (row.ci95_high - row.ci95_low) / 2 if math.isfinite(row.ci95_high - row.ci95_low) else math.nan
        return {"status": row.status, "split": row.split, "boot": self.intervals.get(key) if versus else None,
                "mean": row.mean, "half": half, "std": row.std, "low": row.ci95_low, "high": row.ci95_high,
                "n": int(row.n_seeds), "tier": "baseline" if is_baseline else (versus or {}).get("tier") or "none",
                "delta": (versus or {}).get("delta_pct", math.nan), "p": (versus or {}).get("p_welch", math.nan)}

    def overview(self) -> dict:
        """Rows: task x protocol (grouped by domain), at each one's largest scale; columns: checkpoints."""
        cells = self.main_cells()
        checkpoints = [e["name"] for e in self.entries]
        rows = []
        for (task, version, protocol, _), group in cells.groupby(["task", "task_version", "protocol", "metric"],
                                                                 sort=True):
            top = group[group["scale"] == group["scale"].max()]
            by_checkpoint = {r.checkpoint: self.cell(r) for r in top.itertuples()}
            rows.append({"task": task, "version": version, "protocol": protocol, "scale": top["scale"].iloc[0],
                         "domain": self.domains.get((task, version), "?"), "metric": top["metric"].iloc[0],
                         "unpublished": set(group["split"]) == {"unpublished"},
                         "cells": [by_checkpoint.get(c) for c in checkpoints], "slug": slug(f"{task}.v{version}")})
        rows.sort(key=lambda r: (_domain_order(r["domain"]), r["task"], r["version"], r["protocol"], r["metric"]))
        return {"checkpoints": checkpoints, "rows": rows, "statuses": [self.status(c) for c in checkpoints]}

    def status(self, checkpoint: str) -> str:
        return self.provenance.get(checkpoint, {}).get("status", "local")

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
            crossing = [v for d in DOMAINS[1:] for v in by_domain[d]]
            ct, cross = _mean(by_domain["ct"]), _mean(crossing)
            rows.append({"name": name, "status": self.status(name), "ranked": self.status(name) in RANKED,
                         "ct_ci": ci95(by_domain["ct"]), "cross_ci": ci95(crossing),
                         "pretraining_domain": entry.get("pretraining_domain", "?"),
                         "per_domain": {d: _mean(v) for d, v in by_domain.items()},
                         "counts": {d: len(v) for d, v in by_domain.items()}, "ct": ct, "cross": cross,
                         "gap": ct - cross if math.isfinite(ct) and math.isfinite(cross) else math.nan,
                         "tiers": {k: {t: v.count(t) for t in ("better", "tie", "worse")} for k, v in tiers.items()}})
        return rows

    # ------------------------------------------------------------ the front page's figures

    def figures(self) -> dict:
        """The advantage scatter and the headline CT task's budget curves (None where no data)."""
        headline = self.headline_ct_task()
        curves = None
        if headline is not None:
            task, version, protocol, metric, cells = headline
            seeds = self.frame[(self.frame["task"] == task) & (self.frame["task_version"] == version)
                               & (self.frame["protocol"] == protocol) & (self.frame["metric"] == metric)]
            curves = {"task": task, "protocol": protocol, "slug": slug(f"{task}.v{version}"),
                      "plot": budget_curves(cells, seeds, metric, f"{task} · {protocol}: {metric} by label budget")}
        return {"scatter": advantage_scatter(self.domain_view()), "curves": curves if curves and curves["plot"] else None}

    def headline_ct_task(self) -> tuple | None:
        """The CT task (main metric) with the most label budgets, then checkpoints; linear probing
        first among its protocols, then by name, so the choice never depends on file order."""
        cells = self.main_cells()
        if not len(cells):
            return None
        mains = cells[[self.domains.get((t, v)) == "ct" and m == self.mains.get((t, v), {}).get("name")
                       for t, v, m in zip(cells["task"], cells["task_version"], cells["metric"])]]
        ranked = sorted(((-g["scale"].nunique(), -g["checkpoint"].nunique(), p != "linear", t, v, p, m), g)
                        for (t, v, p, m), g in mains.groupby(["task", "task_version", "protocol", "metric"]))
        if not ranked:
            return None
        (_, _, _, task, version, protocol, metric), group = ranked[0]
        return task, version, protocol, metric, group

    # ------------------------------------------------------------ per-task pages

    def task_tables(self) -> list[dict]:
        """A page per task version: its main metric per protocol, or, for a task without one (an
        import's), every metric it has, so no imported result is left without a page."""
        pages: dict[tuple, dict] = {}
        # where each task's data comes from, as its spec said (a result run here before an imported one)
        sources = {(r.job.task, r.job.task_version): {
            k: v for k, v in r.task.as_dict().items() if k in ("license", "reference", "citation") and isinstance(v, str)}
            for r in reversed(self.results)}
        for (task, version, protocol, metric), group in self.page_cells().groupby(
                ["task", "task_version", "protocol", "metric"], sort=True):
            main = self.mains.get((task, version), {}).get("name")
            page = pages.setdefault((task, version), {
                "task": task, "version": version, "slug": slug(f"{task}.v{version}"),
                "domain": self.domains.get((task, version), "?"), "metric": main,
                "higher_is_better": self.directions.get((task, version), {}).get("higher_is_better", True),
                "protocols": [], "source": sources.get((task, version), {})})
            page["protocols"].append(self.protocol_table(task, version, protocol, metric, group, main))
        return [pages[key] for key in sorted(pages)]

    def page_cells(self) -> pd.DataFrame:
        """The summary rows the task pages show: a task's main metric where it has one, else every metric."""
        if not len(self.summary):
            return self.summary
        keep = [m == self.mains[(t, v)]["name"] if (t, v) in self.mains else True
                for t, v, m in zip(self.summary["task"], self.summary["task_version"], self.summary["metric"])]
        return self.summary[keep]

    def protocol_table(self, task: str, version: str, protocol: str, metric: str, group: pd.DataFrame,
                       main: str | None) -> dict:
        """One table of a task page: a row per checkpoint, a column per label budget, and its plot."""
        scales = sorted(group["scale"].unique(), reverse=True)
        budgets = self.budgets
        rows = []
        for checkpoint, mine in group.groupby("checkpoint", sort=True):
            by_scale = {r.scale: self.cell(r) for r in mine.itertuples()}
            prov = self.provenance.get(checkpoint, {})
            rows.append({"checkpoint": checkpoint, "cells": [by_scale.get(s) for s in scales],
                         "status": best_status(mine["status"]), "split": split_class(mine["split"]),
                         "submitters": prov.get("submitters", []),
                         "bundles": prov.get("bundles", [])})
        seeds = self.frame[(self.frame["task"] == task) & (self.frame["task_version"] == version)
                           & (self.frame["protocol"] == protocol) & (self.frame["metric"] == metric)]
        title = f"{task} · {protocol}" + ("" if metric == main else f" · {metric}")
        return {"protocol": protocol, "metric": metric, "is_main": metric == main, "rows": rows,
                "scales": [{"scale": f"{s:.4g}", "budget": budgets.get((task, version, protocol, s), "")}
                           for s in scales],
                "plot": scale_curve(group, seeds, metric, title) if len(scales) > 1 else None}

    # ------------------------------------------------------------ per-checkpoint pages

    def checkpoint_page(self, entry: CheckpointRecord) -> dict:
        mine = [r for r in self.results if r.checkpoint.name == entry.name]
        local = sorted((r for r in mine if status_of(r) == "local"), key=lambda r: r.job.job_id)
        provenance = local[0].provenance.as_dict() if local and local[0].provenance else {}
        cells = self.main_cells()
        rows = [{"task": r.task, "version": r.task_version, "protocol": r.protocol, "scale": r.scale,
                 "metric": r.metric, "slug": slug(f"{r.task}.v{r.task_version}"), **self.cell(r)}
                for r in cells[cells["checkpoint"] == entry.name].itertuples()]
        sources = sorted({r.imported.source for r in mine if r.imported is not None})
        status = self.provenance.get(entry.name, {"status": "local", "submitters": [], "bundles": []})
        return {"entry": entry, "rows": rows, "sources": sources, "n_local": len(local), "status": status,
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
