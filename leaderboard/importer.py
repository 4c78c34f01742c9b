"""``ctbench results import``: per-seed rows computed elsewhere, onto this workdir's leaderboard.

The input is what ``results export`` writes (``checkpoint,task,task_version,protocol,scale,
seed,metric,value``), optionally with ``task_domain``, ``checkpoint_domain`` and ``source``.
Every row is checked before anything is written, and a bad one is named by its line, so a
file is imported whole or not at all. The validated rows land in ``<workdir>/imported/
<file stem>.json`` (atomically, canonical JSON): importing the same file again writes the
same bytes, and importing a corrected file of the same name replaces the earlier import.

Imported rows have no predictions, so they join every per-seed statistic but never the
patient bootstrap; ``aggregate.load`` hands them out as result-shaped dicts marked
``imported``.
"""
from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import get_args

from benchmark.core.atomic import canonical_json, write_json
from benchmark.core.errors import DataError
from benchmark.core.hashing import file_sha256
from benchmark.core.specs import NAME_PATTERN, Domain, PretrainingDomain
from benchmark.core.workdir import Workdir
from benchmark.results.store import LoadProblem
from leaderboard.aggregate import TIDY_COLUMNS

IMPORT_SCHEMA_VERSION = 1
OPTIONAL_COLUMNS = ["task_domain", "checkpoint_domain", "source"]
KEY = TIDY_COLUMNS[:-1]  # checkpoint .. metric: one value per key
VERSION_PATTERN = r"^\d+(\.\d+)*$"


def imported_dir(workdir: Workdir) -> Path:
    return workdir.root / "imported"


def import_csv(path: Path, workdir: Workdir) -> tuple[Path, int, bool]:
    """Validate ``path`` whole, then store it; returns the stored file, its row count and
    whether it replaced a different earlier import of the same file name."""
    path = Path(path)
    rows = _read_rows(path)
    target = imported_dir(workdir) / f"{path.stem}.json"
    _check_against_stored(path, rows, workdir, replacing=target)
    payload = {
        "schema_version": IMPORT_SCHEMA_VERSION, "file": path.name, "sha256": file_sha256(path),
        "tasks": _task_infos(path, rows), "checkpoints": _checkpoint_infos(path, rows),
        "rows": [{k: row[k] for k in [*TIDY_COLUMNS, "source", "line"]} for row in rows],
    }
    replaced = target.is_file() and target.read_text() != canonical_json(payload)
    write_json(target, payload)
    return target, len(rows), replaced


# ---------------------------------------------------------------- reading and validating


def _read_rows(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: spreadsheets write a BOM
            reader = csv.DictReader(handle)
            _check_header(path, reader.fieldnames)
            rows = [_row(path, reader.line_num, raw) for raw in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read ({exc})", path) from None
    if not rows:
        raise DataError("holds a header but no rows", path)
    return _deduplicated(path, rows)


def _check_header(path: Path, header: list[str] | None) -> None:
    """Unknown columns are refused like unknown spec fields: a typo must not drop data silently."""
    header = header or []
    missing = [c for c in TIDY_COLUMNS if c not in header]
    if missing:
        raise DataError(f"line 1: missing column(s) {', '.join(missing)} (expected {','.join(TIDY_COLUMNS)}"
                        f" and optionally {', '.join(OPTIONAL_COLUMNS)})", path)
    unknown = [c for c in header if c not in TIDY_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise DataError(f"line 1: unknown column(s) {', '.join(unknown)}", path)


def _row(path: Path, line: int, raw: dict) -> dict:
    def fail(problem: str):
        raise DataError(f"line {line}: {problem}", path)

    if None in raw:
        fail("has more fields than the header")
    if any(v is None for v in raw.values()):
        fail("has fewer fields than the header")
    text = {k: (v or "").strip() for k, v in raw.items()}
    for column in ("checkpoint", "task", "protocol"):
        if not re.match(NAME_PATTERN, text[column]):
            fail(f"{column} {text[column]!r} is not a valid name")
    if not re.match(VERSION_PATTERN, text["task_version"]):
        fail(f"task_version {text['task_version']!r} is not a version like 1 or 1.2")
    if not text["metric"]:
        fail("metric is empty")
    return {
        "checkpoint": text["checkpoint"], "task": text["task"], "task_version": text["task_version"],
        "protocol": text["protocol"], "scale": _scale(text["scale"], fail), "seed": _seed(text["seed"], fail),
        "metric": text["metric"], "value": _value(text["value"], fail),
        "task_domain": _choice(text, "task_domain", get_args(Domain), fail),
        "checkpoint_domain": _choice(text, "checkpoint_domain", get_args(PretrainingDomain), fail),
        "source": text.get("source") or path.name, "line": line,
    }


def _scale(text: str, fail) -> float:
    try:
        scale = float(text)
    except ValueError:
        fail(f"scale {text!r} is not a number")
    if not 0 < scale <= 1:
        fail(f"scale {text} is not a fraction in (0, 1]")
    return scale


def _seed(text: str, fail) -> int:
    try:
        return int(text)
    except ValueError:
        fail(f"seed {text!r} is not an integer")


def _value(text: str, fail) -> float | None:
    """Empty (what ``results export`` writes for an undefined metric) or nan is kept as undefined."""
    if text == "" or text.lower() == "nan":
        return None
    try:
        value = float(text)
    except ValueError:
        fail(f"value {text!r} is not a number")
    if not math.isfinite(value):
        fail(f"value {text!r} is not finite")
    return value


def _choice(text: dict, column: str, allowed: tuple, fail) -> str | None:
    value = text.get(column) or None
    if value is not None and value not in allowed:
        fail(f"{column} {value!r} is not one of {', '.join(allowed)}")
    return value


def _deduplicated(path: Path, rows: list[dict]) -> list[dict]:
    """A repeated key with the same value is the same fact (kept once); with another value, an error."""
    seen: dict[tuple, dict] = {}
    for row in rows:
        first = seen.setdefault(_key(row), row)
        if first is not row and not _same(first["value"], row["value"]):
            raise DataError(f"line {row['line']}: {_describe(row)} is {row['value']} here but "
                            f"{first['value']} on line {first['line']}", path)
    return list(seen.values())


def _key(row: dict) -> tuple:
    return tuple(row[k] for k in KEY)


def _same(a: float | None, b: float | None) -> bool:
    return a == b or (a is None and b is None)


def _describe(row: dict) -> str:
    return (f"{row['metric']} of {row['checkpoint']} on {row['task']}@{row['task_version']} "
            f"{row['protocol']} scale {row['scale']:g} seed {row['seed']}")


# ---------------------------------------------------------------- what the rows belong to


def _task_infos(path: Path, rows: list[dict]) -> list[dict]:
    """Domain and main metric per task version: from the registry if the task is known there.

    An unknown task needs its ``task_domain``; its main metric is its only metric, or none
    (then it is in every table but in no overall ranking), and higher is taken as better
    (true of every metric ctbench computes).
    """
    from benchmark.catalog.registries import task_registry

    registry = task_registry()
    infos = []
    for task, version in sorted({(r["task"], r["task_version"]) for r in rows}):
        mine = [r for r in rows if (r["task"], r["task_version"]) == (task, version)]
        domain = _consistent(path, mine, "task_domain", f"task {task}")
        if task in registry:
            spec = registry.get(task).spec
            if domain not in (None, spec.domain):
                line = next(r["line"] for r in mine if r["task_domain"] == domain)
                raise DataError(f"line {line}: task_domain {domain} contradicts task {task}'s domain {spec.domain}",
                                path)
            infos.append(_task_info(task, version, spec.domain, spec.main_metric, spec.higher_is_better))
        elif domain is None:
            line = next(r["line"] for r in mine)
            raise DataError(f"line {line}: unknown task {task!r}; give its task_domain column "
                            f"({', '.join(get_args(Domain))}) to import it", path)
        else:
            infos.append(_task_info(task, version, domain, _only(sorted({r["metric"] for r in mine})), True))
    return infos


def _task_info(task: str, version: str, domain: str, main: str | None, higher_is_better: bool) -> dict:
    return {"task": task, "task_version": version, "domain": domain, "main_metric": main,
            "higher_is_better": higher_is_better}


def _only(metrics: list[str]) -> str | None:
    return metrics[0] if len(metrics) == 1 else None


def _checkpoint_infos(path: Path, rows: list[dict]) -> list[dict]:
    """Pretraining domain per checkpoint: the column, else the registry's, else unknown (None)."""
    from benchmark.catalog.registries import checkpoint_registry

    registry = checkpoint_registry()
    infos = []
    for name in sorted({r["checkpoint"] for r in rows}):
        domain = _consistent(path, [r for r in rows if r["checkpoint"] == name], "checkpoint_domain",
                             f"checkpoint {name}")
        if domain is None and name in registry:
            domain = registry.get(name).pretraining_domain
        infos.append({"name": name, "pretraining_domain": domain})
    return infos


def _consistent(path: Path, rows: list[dict], column: str, what: str) -> str | None:
    given = {r[column] for r in rows} - {None}
    if len(given) > 1:
        line = next(r["line"] for r in rows if r[column] == sorted(given)[1])
        raise DataError(f"line {line}: {what} is given {column}s {', '.join(sorted(given))}", path)
    return next(iter(given), None)


def _check_against_stored(path: Path, rows: list[dict], workdir: Workdir, replacing: Path) -> None:
    """A value that contradicts a stored result or another import is refused; an equal one is fine."""
    from benchmark.results.store import ResultStore
    from leaderboard.aggregate import load

    results, _ = load(ResultStore(workdir.results), imported_dir(workdir))
    stored = {}
    for r in results:
        if r.get("imported", {}).get("file") == replacing.name:
            continue
        where = r.get("imported", {}).get("file") or f"result {r['job'].get('job_id', '?')}"
        for metric, value in r["metrics"].items():
            job = r["job"]
            key = (job["checkpoint"], job["task"], job["task_version"], job["protocol"], float(job["scale"]),
                   int(job["seed"]), metric)
            stored.setdefault(key, (value, where))
    for row in rows:
        value, where = stored.get(_key(row), (row["value"], None))
        if where is not None and not _same(value, row["value"]):
            raise DataError(f"line {row['line']}: {_describe(row)} is {row['value']} here but {value} in {where}",
                            path)


# ---------------------------------------------------------------- reading imports back


def load_imported(folder: Path) -> tuple[list[dict], list[LoadProblem]]:
    """Every stored import as result-shaped dicts (one per job key and source), in file order."""
    results, problems = [], []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            payload = json.loads(path.read_text())
            results += _as_results(path, payload)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            problems.append(LoadProblem(path, f"not a readable ctbench import ({type(exc).__name__}: {exc})"))
    return results, problems


def _as_results(path: Path, payload: dict) -> list[dict]:
    tasks = {(t["task"], t["task_version"]): t for t in payload["tasks"]}
    checkpoints = {c["name"]: c for c in payload["checkpoints"]}
    jobs: dict[tuple, dict] = {}
    for row in payload["rows"]:
        job_key = (*(row[k] for k in KEY[:-1]), row["source"])
        if job_key not in jobs:
            jobs[job_key] = _result(path, row, tasks[(row["task"], row["task_version"])],
                                    checkpoints[row["checkpoint"]])
        jobs[job_key]["metrics"][row["metric"]] = row["value"]
    for result in jobs.values():
        if result["main_metric"] is not None:
            result["main_metric"]["value"] = result["metrics"].get(result["main_metric"]["name"])
    return list(jobs.values())


def _result(path: Path, row: dict, task: dict, checkpoint: dict) -> dict:
    job = {k: row[k] for k in KEY[:-1]}
    job["job_id"] = (f"imported:{path.stem}:{row['task']}--{row['protocol']}--{row['checkpoint']}"
                     f"--s{row['scale']:g}--seed{row['seed']}")
    main = task["main_metric"]
    return {
        "job": job,
        "checkpoint": {"name": checkpoint["name"], "pretraining_domain": checkpoint["pretraining_domain"]},
        "task": {"name": task["task"], "version": task["task_version"], "domain": task["domain"]},
        "main_metric": None if main is None else {"name": main, "value": None,
                                                  "higher_is_better": task["higher_is_better"]},
        "metrics": {},
        "imported": {"source": row["source"], "file": path.name},
    }
