"""The result JSON as a typed record: ``Result`` and the sub-records it is made of.

One file per job (``ResultStore``) holds one ``Result``: the job, its metrics, the checkpoint and
task it ran, and where the numbers came from. The model is strict: unknown top-level fields,
wrong types, NaN or Infinity anywhere are refused (JSON has no NaN; an undefined metric is
stored as null). The checkpoint and task sections are the specs a run had (``CheckpointSpec``
and ``TaskSpec`` dumps), read permissively here so that a spec field added or dropped later
never makes an older file unreadable.

Files carry ``schema_version``. ``migrate`` brings a payload written as any version this
code knows (``MIGRATIONS``, keyed by version) to what the current model reads; a file
without ``schema_version`` is version 1, the first one written.
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable, Literal, Optional

from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from baselines import builtin_checkpoints
from benchmark.core.specs import BaselineRole, TaskSpec
from benchmark.results.values import MAX_INT, Count, Fraction, Metric, Metrics, Number  # noqa: F401 (re-exported)

RESULT_SCHEMA_VERSION = 1




class Record(BaseModel):
    """A read-only record of a stored JSON section.

    ``get`` and ``[]`` read it as the mapping it was stored as: a key the file did not hold is
    absent (``get`` gives the default) even where the model has a default for it. The page
    templates read checkpoint sections that way; code reads attributes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    def get(self, key: str, default=None):
        if key in self.model_fields_set:
            return getattr(self, key)
        return (self.__pydantic_extra__ or {}).get(key, default)

    def __getitem__(self, key: str):
        missing = object()
        value = self.get(key, missing)
        if value is missing:
            raise KeyError(key)
        return value

    def as_dict(self) -> dict:
        """The section as stored: only the keys it was given, unknown (allowed) ones included."""
        return self.model_dump(exclude_unset=True)


class _Open(Record):
    """A spec section: its known fields are typed, fields of other spec versions are kept as they are."""

    model_config = ConfigDict(extra="allow", frozen=True)


# ---------------------------------------------------------------- sections


class JobRecord(Record):
    """``Job.as_dict()``: what defines the job, and its id."""

    job_id: StrictStr
    checkpoint: StrictStr
    checkpoint_sha256: StrictStr
    task: StrictStr
    task_version: StrictStr
    protocol: StrictStr
    protocol_version: StrictStr
    profile: StrictStr
    scale: Fraction
    seed: Count
    split_version: Optional[Count] = None  # absent from results written before splits were versioned
    input_convention: Optional[StrictStr] = None  # set only where a run forced one on every checkpoint
    budget_unit: Optional[Literal["patient", "slice"]] = None
    max_epochs: Optional[Count] = None


class CheckpointRecord(_Open):
    """The ``CheckpointSpec`` the job ran (an imported row holds only name and domain)."""

    name: StrictStr
    pretraining_domain: Optional[StrictStr] = None
    sha256: Optional[StrictStr] = None
    baseline_role: Optional[BaselineRole] = None


class TaskRecord(_Open):
    """The ``TaskSpec`` the job ran (an imported row holds only name, version and domain)."""

    name: Optional[StrictStr] = None
    version: Optional[StrictStr] = None
    domain: Optional[StrictStr] = None

    def spec(self) -> TaskSpec:
        return TaskSpec.model_validate(self.as_dict())


class MainMetric(Record):
    name: StrictStr
    higher_is_better: StrictBool
    value: Metric = None


class ProtocolRecord(Record):
    name: StrictStr
    version: StrictStr


class Counts(Record):
    """Labelled cases the job used; a step-budgeted job may have seen fewer than its budget held."""

    train_cases: Count
    val_cases: Count
    test_cases: Optional[Count] = None
    train_cases_seen: Optional[Count] = None
    train_patients: Optional[Count] = None
    val_patients: Optional[Count] = None
    test_patients: Optional[Count] = None


class Splits(Record):
    split_sha256: Optional[StrictStr] = None
    budget_sha256: Optional[StrictStr] = None
    split_manifest: Optional[StrictStr] = None
    budget_manifest: Optional[StrictStr] = None
    budget_floored: Optional[StrictBool] = None
    # who is in each set (benchmark.data.membership): equal across labs' copies of a published split
    split_membership: Optional[StrictStr] = None
    budget_membership: Optional[StrictStr] = None


class Provenance(Record):
    """Where the number came from (``benchmark.results.provenance.collect`` plus the job's own)."""

    ctbench_version: Optional[StrictStr] = None
    git: Optional[dict[str, Any]] = None
    packages: Optional[dict[StrictStr, Optional[StrictStr]]] = None
    python: Optional[StrictStr] = None
    platform: Optional[StrictStr] = None
    device: Optional[StrictStr] = None
    device_name: Optional[StrictStr] = None
    torch_threads: Optional[Count] = None
    precision: Optional[StrictStr] = None
    channels_last: Optional[StrictBool] = None
    compile: Optional[StrictBool] = None
    batch_size: Optional[Count] = None
    checkpoint_sha256: Optional[StrictStr] = None
    throughput: Optional[list[dict[str, Any]]] = None  # a training job's per-epoch img/s and data-wait share
    resumed: Optional[list[dict[str, Any]]] = None  # where a training job picked up its saved state (epoch, step)
    distributed: Optional[dict[str, Any]] = None  # world size, backend and devices of a job trained on several
    task_version: Optional[StrictStr] = None
    split_sha256: Optional[StrictStr] = None
    data_root: Optional[StrictStr] = None
    data_selection: Optional[dict[str, Any]] = None  # how the task read its folder (Task.provenance): series chosen
    wall_time_s: Optional[Number] = None
    worker: Optional[dict[str, Any]] = None


class InputRecord(Record):
    """The input convention the network saw, and whether the run forced it instead of the checkpoint's own."""

    convention: dict[str, Any]
    native: StrictStr
    forced: StrictBool


class Rescored(Record):
    """Written by ``ctbench rescore`` when recomputed metrics differ from the stored ones."""

    previous_metrics: Metrics
    ctbench_version: StrictStr


class ImportSource(Record):
    """Marks a row that was computed elsewhere (``ctbench results import``)."""

    source: StrictStr
    file: Optional[StrictStr] = None


class Submission(Record):
    """Marks a result that came in a submission bundle (``ctbench leaderboard ingest``): "verified"
    when the maintainer recomputed every metric from its predictions against their own labels,
    "self-reported" when ingested without the data."""

    status: Literal["verified", "self-reported"]
    submitter: StrictStr
    bundle_sha256: StrictStr
    ingested_with: StrictStr  # the ctbench version that checked it


# ---------------------------------------------------------------- the result


class Result(Record):
    """One job's stored result. Field order is the order problems are reported in."""

    schema_version: Literal[1] = RESULT_SCHEMA_VERSION
    job: JobRecord
    metrics: Metrics
    checkpoint: CheckpointRecord
    task: TaskRecord
    main_metric: Optional[MainMetric] = None
    counts: Optional[Counts] = None
    provenance: Optional[Provenance] = None
    imported: Optional[ImportSource] = None
    predictions_file: Optional[StrictStr] = None
    run_spec: Optional[dict[str, Any]] = None
    protocol: Optional[ProtocolRecord] = None
    hyperparameters: Optional[dict[str, Any]] = None
    splits: Optional[Splits] = None
    preprocessing: Optional[dict[str, Any]] = None
    feature_cache_key: Optional[StrictStr] = None
    checkpoint_load: Optional[dict[str, Any]] = None
    input: Optional[InputRecord] = None
    classes_absent: Optional[dict[str, list[StrictStr]]] = None  # split -> classes its rows lack
    rescored: Optional[Rescored] = None
    submission: Optional[Submission] = None

    @model_validator(mode="before")
    @classmethod
    def _nothing_non_finite(cls, data):
        where = _non_finite(data)
        if where is not None:
            raise PydanticCustomError("ctbench", "{where} is not finite; an undefined value is stored as null",
                                      {"where": where})
        return data

    @model_validator(mode="after")
    def _checkpoint_is_the_jobs(self) -> "Result":
        """The site groups rows by the job's checkpoint and describes them by the checkpoint spec."""
        if self.checkpoint.name != self.job.checkpoint:
            raise PydanticCustomError("ctbench", "checkpoint.name {a} differs from job.checkpoint {b}",
                                      {"a": shown(self.checkpoint.name), "b": shown(self.job.checkpoint)})
        return self

    @classmethod
    def build(cls, payload: dict) -> "Result":
        """A new result from what a job produced: a non-finite number (an undefined metric) becomes null.

        Raises ``ValueError`` naming the first problem (a bug in the producer, reported in one line)."""
        try:
            return cls.model_validate(finite_or_none(payload))
        except ValidationError as exc:
            raise ValueError(problem(exc)) from None

    @classmethod
    def from_stored(cls, payload: dict) -> "Result":
        """A result as read from a file of any known version; raises ``ValueError`` naming the first problem."""
        try:
            return cls.model_validate(migrate(payload))
        except ValidationError as exc:
            raise ValueError(problem(exc)) from None

    def payload(self) -> dict:
        """The JSON object to store (keys as given, plus the schema version)."""
        return {**self.as_dict(), "schema_version": self.schema_version}


# ---------------------------------------------------------------- versions


def _v1(payload: dict) -> dict:
    """Version 1 as written before checkpoints had a ``baseline_role``: the four built-in reference
    checkpoints get the role their spec in ``baselines`` declares; everything else reads the role
    from the result (``leaderboard.stats.baselines``)."""
    checkpoint = payload.get("checkpoint")
    if not isinstance(checkpoint, dict) or "baseline_role" in checkpoint:
        return payload
    role = builtin_baseline_role(checkpoint.get("name"))
    return payload if role is None else {**payload, "checkpoint": {**checkpoint, "baseline_role": role}}


# Read from the built-in references themselves (baselines/), so no second list of names can drift.
BUILTIN_BASELINE_ROLES = {spec.name: spec.baseline_role for spec in builtin_checkpoints() if spec.baseline_role}

# The version a file was written as -> what turns it into a payload the current ``Result`` reads.
# A version 2 adds its entry and makes every older one end in the step to 2.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {1: _v1}


def builtin_baseline_role(name) -> Optional[str]:
    """The role of a built-in reference checkpoint, for records written before roles were stored."""
    return BUILTIN_BASELINE_ROLES.get(name) if isinstance(name, str) else None


def migrate(payload: dict) -> dict:
    version = payload.get("schema_version")
    version = 1 if version is None else version
    step = MIGRATIONS.get(version) if isinstance(version, int) and not isinstance(version, bool) else None
    if step is None:
        known = ", ".join(str(v) for v in sorted(MIGRATIONS))
        raise ValueError(f"schema_version is {shown(version)}, not one this ctbench reads ({known})")
    return {**step(payload), "schema_version": RESULT_SCHEMA_VERSION}


# ---------------------------------------------------------------- helpers


def finite_or_none(value):
    """JSON has no NaN; an undefined metric (one class in the test set) becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def _non_finite(value, where: str = "") -> Optional[str]:
    if isinstance(value, float) and not math.isfinite(value):
        return where or "the value"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, inner in items:
        found = _non_finite(inner, f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}".lstrip("."))
        if found:
            return found
    return None


_EXPECTED = {"string_type": "a string", "bool_type": "a boolean", "int_type": "an integer", "dict_type": "an object",
             "model_type": "an object", "model_attributes_type": "an object", "literal_error": "one of {expected}"}


def problem(error: ValidationError) -> str:
    """The first problem of a validation error, as one line in the words the store has always used."""
    first = error.errors(include_url=False)[0]
    kind, loc = first["type"], first["loc"]
    where = _where(loc)
    if kind == "missing":
        return f"not a ctbench result (no {where!r})"
    if kind == "extra_forbidden":
        return f"{where} is not a field of a ctbench result"
    if not loc:  # the model's own checks (consistency, non-finite values) word the whole problem
        return first["msg"]
    expected = _EXPECTED[kind].format(**first.get("ctx", {})) if kind in _EXPECTED else first["msg"]
    return f"{where} is {shown(first['input'])}, not {expected}"


def _where(loc: tuple) -> str:
    """('job', 'seed') -> job.seed; a metric's name is a key, not a field: metrics['auc']."""
    text = ""
    for index, part in enumerate(loc):
        keyed = isinstance(part, int) or (index and loc[index - 1] in ("metrics", "previous_metrics"))
        text += f"[{shown(part)}]" if keyed else (f".{part}" if text else str(part))
    return text


def shown(value) -> str:
    """A short one-line rendering of a bad value for a message."""
    try:
        text = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
