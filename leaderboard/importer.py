"""``ctbench results import``: per-seed rows computed elsewhere, onto this workdir's leaderboard.

The input is what ``results export`` writes (``checkpoint,task,task_version,protocol,scale,
seed,metric,value``), optionally with ``task_domain``, ``checkpoint_domain``, ``source``,
``main_metric`` and ``higher_is_better`` (a task's, the same on each of its rows) and ``headline``
(true where the row's metric belongs on the overview though the task has no main metric).
Every row is checked before anything is written, and a bad one is named by its line, so a
file is imported whole or not at all. The validated rows land in ``<workdir>/imported/
<file stem>.json`` (atomically, canonical JSON): importing the same file again writes the
same bytes, and importing a corrected file of the same name replaces the earlier import.

Imported rows have no predictions, so they join every per-seed statistic but never the
patient bootstrap; ``aggregate.load`` hands them out (``imported.py`` reads them back) as
``ImportedResult`` records marked ``imported``.
"""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Optional, get_args

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from benchmark.catalog.registries import checkpoint_registry, task_registry
from benchmark.core.atomic import canonical_json, write_json
from benchmark.core.errors import DataError
from benchmark.core.hashing import file_sha256
from benchmark.core.specs import NAME_PATTERN, VERSION_PATTERN, Domain, PretrainingDomain, validate_scale
from benchmark.core.workdir import Workdir
from benchmark.results.store import ResultStore
from leaderboard.aggregate import TIDY_COLUMNS, load
from leaderboard.csv_safety import restore
from leaderboard.imported import imported_dir

IMPORT_SCHEMA_VERSION = 1
# main_metric / higher_is_better: a task's, on every row of it; headline: this row's metric is shown on
# the overview (for a task without a main metric; a main metric always is)
OPTIONAL_COLUMNS = ["task_domain", "checkpoint_domain", "source", "main_metric", "higher_is_better", "headline"]
TRUE, FALSE = ("1", "true", "yes", "y"), ("0", "false", "no", "n")
KEY = TIDY_COLUMNS[:-1]  # checkpoint .. metric: one value per key
# A task version as ``TaskSpec`` spells it (the pattern of its ``version`` field).
__all__ = ["ImportRow", "import_csv", "imported_dir"]  # imported_dir lives in imported.py; the CLI imports it here


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
        "rows": [row.model_dump(include={*TIDY_COLUMNS, "source", "line"}) for row in rows],
    }
    replaced = target.is_file() and target.read_text() != canonical_json(payload)
    write_json(target, payload)
    return target, len(rows), replaced


# ---------------------------------------------------------------- reading and validating


def _read_rows(path: Path) -> list[ImportRow]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: spreadsheets write a BOM
            reader = csv.DictReader(handle)
            _check_header(path, reader.fieldnames)
            rows = _rows_of(path, reader)
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


def _rows_of(path: Path, reader: csv.DictReader) -> list[ImportRow]:
    return [ImportRow.from_csv(path, reader.line_num, raw) for raw in reader]


def _field_error(problem: str) -> PydanticCustomError:
    return PydanticCustomError("import_row", problem)


class ImportRow(BaseModel):
    """One CSV row, checked; the fields are checked (and their problems reported) in this order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    checkpoint: str
    task: str
    protocol: str
    task_version: str
    metric: str
    scale: float
    seed: int
    value: Optional[float]  # None: undefined (an empty cell, as ``results export`` writes it, or nan)
    task_domain: Optional[Domain] = None
    checkpoint_domain: Optional[PretrainingDomain] = None
    source: str
    main_metric: Optional[str] = None
    higher_is_better: Optional[bool] = None
    headline: bool = False
    line: int

    @classmethod
    def from_csv(cls, path: Path, line: int, raw: dict) -> "ImportRow":
        """Raises ``DataError`` naming the file and line for the first problem of the row."""
        if None in raw:
            raise DataError(f"line {line}: has more fields than the header", path)
        if any(v is None for v in raw.values()):
            raise DataError(f"line {line}: has fewer fields than the header", path)
        text = {k: restore((v or "").strip()) for k, v in raw.items()}  # an export's quoted formula cells
        fields = {**{c: text.get(c) or None for c in OPTIONAL_COLUMNS}, **{c: text[c] for c in TIDY_COLUMNS},
                  "source": text.get("source") or path.name, "headline": text.get("headline") or "0", "line": line}
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise DataError(f"line {line}: {exc.errors(include_url=False)[0]['msg']}", path) from None

    @field_validator("checkpoint", "task", "protocol", mode="before")
    @classmethod
    def _name(cls, text: str, info: ValidationInfo) -> str:
        if not re.match(NAME_PATTERN, text):
            raise _field_error(f"{info.field_name} {text!r} is not a valid name")
        return text

    @field_validator("task_version", mode="before")
    @classmethod
    def _version(cls, text: str) -> str:
        if not re.match(VERSION_PATTERN, text):
            raise _field_error(f"task_version {text!r} is not a version like 1 or 1.2")
        return text

    @field_validator("metric", mode="before")
    @classmethod
    def _metric(cls, text: str) -> str:
        if not text:
            raise _field_error("metric is empty")
        return text

    @field_validator("scale", mode="before")
    @classmethod
    def _scale(cls, text: str) -> float:
        try:
            scale = float(text)
        except ValueError:
            raise _field_error(f"scale {text!r} is not a number") from None
        try:
            return validate_scale(scale)
        except ValueError:
            raise _field_error(f"scale {text} is not a fraction in (0, 1]") from None

    @field_validator("seed", mode="before")
    @classmethod
    def _seed(cls, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise _field_error(f"seed {text!r} is not an integer") from None

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, text: str) -> Optional[float]:
        if text == "" or text.lower() == "nan":
            return None
        try:
            value = float(text)
        except ValueError:
            raise _field_error(f"value {text!r} is not a number") from None
        if not math.isfinite(value):
            raise _field_error(f"value {text!r} is not finite")
        return value

    @field_validator("higher_is_better", "headline", mode="before")
    @classmethod
    def _flag(cls, text: Optional[str], info: ValidationInfo) -> Optional[bool]:
        if text is None:
            return None
        if text.lower() not in TRUE + FALSE:
            raise _field_error(f"{info.field_name} {text!r} is not true or false")
        return text.lower() in TRUE

    @field_validator("task_domain", "checkpoint_domain", mode="before")
    @classmethod
    def _choice(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        allowed = get_args(Domain if info.field_name == "task_domain" else PretrainingDomain)
        if value is not None and value not in allowed:
            raise _field_error(f"{info.field_name} {value!r} is not one of {', '.join(allowed)}")
        return value


def _deduplicated(path: Path, rows: list[ImportRow]) -> list[ImportRow]:
    """A repeated key with the same value is the same fact (kept once); with another value, an error."""
    seen: dict[tuple, ImportRow] = {}
    for row in rows:
        first = seen.setdefault(_key(row), row)
        if first is not row and not _same(first.value, row.value):
            raise DataError(f"line {row.line}: {_describe(row)} is {row.value} here but "
                            f"{first.value} on line {first.line}", path)
    return list(seen.values())


def _key(row: ImportRow) -> tuple:
    return tuple(getattr(row, k) for k in KEY)


def _same(a: float | None, b: float | None) -> bool:
    return a == b or (a is None and b is None)


def _describe(row: ImportRow) -> str:
    return (f"{row.metric} of {row.checkpoint} on {row.task}@{row.task_version} "
            f"{row.protocol} scale {row.scale:g} seed {row.seed}")


# ---------------------------------------------------------------- what the rows belong to


def _task_infos(path: Path, rows: list[ImportRow]) -> list[dict]:
    """Domain, main metric, direction and headline metrics per task version.

    A registered task takes them from the registry (a column that contradicts it is refused).
    An unknown task needs its ``task_domain``; its main metric is the ``main_metric`` column,
    else its only metric, else none (then it ranks nowhere, but still gets its page and an
    overview row per ``headline`` metric); higher is better unless ``higher_is_better`` says no.
    """
    registry = task_registry()
    infos = []
    for task, version in sorted({(r.task, r.task_version) for r in rows}):
        mine = [r for r in rows if (r.task, r.task_version) == (task, version)]
        domain = _consistent(path, mine, "task_domain", f"task {task}")
        main = _main_metric(path, mine, task)
        higher = _consistent(path, mine, "higher_is_better", f"task {task}")
        if task in registry:
            spec = registry.get(task).spec
            for column, given, known in (("task_domain", domain, spec.domain), ("main_metric", main, spec.main_metric),
                                         ("higher_is_better", higher, spec.higher_is_better)):
                _agrees(path, mine, column, given, known, task)
            infos.append(_task_info(task, version, spec.domain, spec.main_metric, spec.higher_is_better, mine))
        elif domain is None:
            line = next(r.line for r in mine)
            raise DataError(f"line {line}: unknown task {task!r}; give its task_domain column "
                            f"({', '.join(get_args(Domain))}) to import it", path)
        else:
            main = main or _only(sorted({r.metric for r in mine}))
            infos.append(_task_info(task, version, domain, main, True if higher is None else higher, mine))
    return infos


def _main_metric(path: Path, rows: list[ImportRow], task: str) -> str | None:
    """The ``main_metric`` column of a task's rows, which must name one of the metrics they hold."""
    main = _consistent(path, rows, "main_metric", f"task {task}")
    if main is not None and main not in {r.metric for r in rows}:
        line = next(r.line for r in rows if r.main_metric == main)
        raise DataError(f"line {line}: main_metric {main!r} is not a metric of task {task}'s rows", path)
    return main


def _agrees(path: Path, rows: list[ImportRow], column: str, given, known, task: str) -> None:
    """A column given for a registered task must say what its spec says."""
    if given is not None and given != known:
        line = next(r.line for r in rows if getattr(r, column) == given)
        raise DataError(f"line {line}: {column} {given} contradicts task {task}'s {column} {known}", path)


def _task_info(task: str, version: str, domain: str, main: str | None, higher_is_better: bool,
               rows: list[ImportRow]) -> dict:
    """``headline_metrics``: the overview's rows for this task, its main metric and every marked one."""
    headline = sorted({r.metric for r in rows if r.headline} | ({main} if main else set()))
    return {"task": task, "task_version": version, "domain": domain, "main_metric": main,
            "higher_is_better": higher_is_better, "headline_metrics": headline}


def _only(metrics: list[str]) -> str | None:
    return metrics[0] if len(metrics) == 1 else None


def _checkpoint_infos(path: Path, rows: list[ImportRow]) -> list[dict]:
    """Pretraining domain per checkpoint: the column, else the registry's, else unknown (None)."""
    registry = checkpoint_registry()
    infos = []
    for name in sorted({r.checkpoint for r in rows}):
        domain = _consistent(path, [r for r in rows if r.checkpoint == name], "checkpoint_domain",
                             f"checkpoint {name}")
        if domain is None and name in registry:
            domain = registry.get(name).pretraining_domain
        infos.append({"name": name, "pretraining_domain": domain})
    return infos


def _consistent(path: Path, rows: list[ImportRow], column: str, what: str) -> str | None:
    given = {getattr(r, column) for r in rows} - {None}
    if len(given) > 1:
        line = next(r.line for r in rows if getattr(r, column) == sorted(given)[1])
        raise DataError(f"line {line}: {what} is given {column}s {', '.join(map(str, sorted(given)))}", path)
    return next(iter(given), None)


def _check_against_stored(path: Path, rows: list[ImportRow], workdir: Workdir, replacing: Path) -> None:
    """A value that contradicts a stored result or another import is refused; an equal one is fine."""
    results, _ = load(ResultStore(workdir.results), imported_dir(workdir))
    stored = {}
    for r in results:
        source_file = r.imported.file if r.imported else None
        if source_file == replacing.name:
            continue
        where = source_file or f"result {r.job.job_id}"
        job = r.job
        for metric, value in r.metrics.items():
            key = (job.checkpoint, job.task, job.task_version, job.protocol, float(job.scale), int(job.seed), metric)
            stored.setdefault(key, (value, where))
    for row in rows:
        value, where = stored.get(_key(row), (row.value, None))
        if where is not None and not _same(value, row.value):
            raise DataError(f"line {row.line}: {_describe(row)} is {row.value} here but {value} in {where}", path)
