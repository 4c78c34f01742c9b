"""Run the grid: for each task, prepare its slices and split once; for each checkpoint,
extract features once; then run every pending scale x seed job and store its result.

Jobs whose result file exists are skipped before any data is touched, so a finished
grid reruns in seconds and an interrupted one resumes.
"""
from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from . import checkpoints as checkpoint_files
from . import provenance
from .accel import Accelerator
from .errors import ConfigError, CTBenchError, DataError, JobError
from .grid import Job, expand
from .plugins import checkpoint_registry, task_registry
from .profiles import PROFILES, ProfileSettings
from .protocols import PROTOCOLS, JobContext, Protocol
from .specs import CheckpointSpec, RunSpec
from .splits import MANIFEST_VERSION, Manifest, indices_for, make_budget, make_split
from .store import ResultStore
from .task import Task, resolve_data_root
from .workdir import Workdir

if TYPE_CHECKING:
    from .slices import SliceSet

Log = Callable[[str], None]


@dataclass
class TaskData:
    task: Task
    root: Path
    slices: "SliceSet"
    split: Manifest
    test: np.ndarray


@dataclass
class RunSummary:
    jobs: list[Job]
    skipped: list[Job] = field(default_factory=list)
    done: list[Job] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # job id -> one-line error


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise CTBenchError("--device cuda was given, but no CUDA device is visible")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


@dataclass
class Plan:
    jobs: list[Job]
    checkpoints: dict[str, CheckpointSpec]
    not_applicable: list[tuple[str, str]]  # (task, protocol) pairs whose task kind the protocol cannot evaluate


def plan(spec: RunSpec, workdir: Workdir) -> Plan:
    """The full grid, with every checkpoint resolved to a hashed file (ids depend on the hash).

    Cheap checks of the user's input come first: resolving a checkpoint can mean minutes
    of pretraining, which a mistyped --data folder should not cost.
    """
    tasks = [task_registry().get(name) for name in spec.tasks]
    check_data_roots(spec)
    registry = checkpoint_registry(workdir)
    checkpoints = {name: checkpoint_files.resolve(registry.get(name), workdir, spec.weights, spec.allow_download)
                   for name in spec.checkpoints}
    jobs, not_applicable = [], []
    for protocol in (PROTOCOLS.get(name) for name in spec.protocols):
        applicable = [t for t in tasks if t.spec.kind in protocol.kinds]
        not_applicable += [(t.spec.name, protocol.name) for t in tasks if t.spec.kind not in protocol.kinds]
        jobs += expand([(c.name, c.sha256) for c in checkpoints.values()],
                       [(t.spec.name, t.spec.version, spec.scales or t.spec.default_scales) for t in applicable],
                       [(protocol.name, protocol.version)], spec.seeds, spec.profile)
    if not jobs:
        raise ConfigError(f"no protocol among {spec.protocols} applies to tasks {spec.tasks}")
    return Plan(sorted(jobs), checkpoints, not_applicable)


def run(spec: RunSpec, workdir: Workdir, log: Log = print) -> RunSummary:
    grid = plan(spec, workdir)
    jobs, checkpoints = grid.jobs, grid.checkpoints
    if grid.not_applicable:
        log("not evaluated, the protocol does not take the task's kind: "
            + ", ".join(f"{task} under {protocol}" for task, protocol in grid.not_applicable))
    store = ResultStore(workdir.results)
    summary = RunSummary(jobs=jobs)
    summary.skipped = [j for j in jobs if store.is_done(j)]
    pending = [j for j in jobs if not store.is_done(j)]
    log(f"{len(jobs)} jobs in the grid: {len(summary.skipped)} already done, {len(pending)} to run")
    if not pending:
        return summary
    accel = Accelerator.create(pick_device(spec.device), spec.precision, spec.compile)
    profile = PROFILES[spec.profile]
    progress = tqdm(total=len(pending), desc="jobs", unit="job")
    for task_name, task_jobs in groupby(sorted(pending, key=lambda j: j.task), key=lambda j: j.task):
        data = prepare_task(task_registry().get(task_name), spec, workdir, profile)
        for ck_name, ck_jobs in groupby(sorted(task_jobs, key=lambda j: j.checkpoint), key=lambda j: j.checkpoint):
            model = CheckpointModel(checkpoints[ck_name])
            features = LazyFeatures(model, data, workdir, accel, profile)
            for job in ck_jobs:
                _run_one(job, spec, data, model, features, store, accel, profile, summary)
                progress.update(1)
    progress.close()
    return summary


def check_data_roots(spec: RunSpec) -> None:
    for name, root in spec.data_roots.items():
        task_registry().get(name)
        if not Path(root).expanduser().is_dir():
            raise DataError(f"is not a directory (given with --data {name}=...)", root)


def prepare_task(task: Task, spec: RunSpec, workdir: Workdir, profile: ProfileSettings) -> TaskData:
    from .slices import load_slices  # MONAI takes seconds to import; a finished grid never needs it

    root = resolve_data_root(task, spec.data_roots, workdir.data)
    task = task.bind(root)
    fingerprint = task.fingerprint(root)
    prep = profile.preprocessing(task.spec.preprocessing)
    slices = load_slices(task, root, prep, workdir.slices, fingerprint)
    split_dir = workdir.splits / f"{task.spec.name}@{task.spec.version}" / f"{fingerprint[:16]}-m{MANIFEST_VERSION}"
    split_path = split_dir / "split.json"
    split = make_split(task.spec.name, task.spec.version, fingerprint, slices.patient_ids, slices.labels, split_path,
                       slices.official)
    return TaskData(task, root, slices, split, indices_for(slices.patient_ids, split.payload["test_patients"]))


class CheckpointModel:
    """A checkpoint's model, read from its file once per run and handed out as fresh copies,
    so that a job that trains never starts from another job's weights."""

    def __init__(self, spec: CheckpointSpec):
        self.spec = spec
        self._model = None
        self.load_record: dict | None = None  # how the checkpoint file was mapped onto the model

    def fresh(self) -> torch.nn.Module:
        """Building the timm model draws from torch's generator; forking it keeps a job's seeded
        stream the same whether or not an earlier job already loaded the checkpoint."""
        if self._model is None:
            from .models import load_backbone

            with torch.random.fork_rng(devices=[]):
                self._model = load_backbone(self.spec)
            self.load_record = self._model.ctbench_load
        return copy.deepcopy(self._model)


class LazyFeatures:
    """Frozen features for one checkpoint x task, computed (or loaded) on first call, so
    protocols that train end to end never pay for them."""

    def __init__(self, model: CheckpointModel, data: TaskData, workdir: Workdir, accel: Accelerator,
                 profile: ProfileSettings):
        from .features import feature_cache_key  # the features module imports MONAI: only when a job runs

        self._model, self._data = model, data
        self._accel, self._batch_size = accel, profile.batch_size
        prep = profile.preprocessing(data.task.spec.preprocessing)
        self.cache_key = feature_cache_key(model.spec, data.task.spec.name, data.task.spec.version,
                                           data.split.sha256, prep, accel.precision)
        self._path = workdir.features / f"{self.cache_key}.npz"
        self._value: np.ndarray | None = None

    def __call__(self) -> np.ndarray:
        from .features import cached_features

        if self._value is None:
            self._value, record = cached_features(self._path, self._data.slices, self._extract)
            self._model.load_record = self._model.load_record or record
        return self._value

    def _extract(self) -> tuple[np.ndarray, dict]:
        from .features import extract

        features = extract(self._model.fresh(), self._data.slices, self._model.spec, self._accel, self._batch_size)
        return features, self._model.load_record


def _run_one(job: Job, spec: RunSpec, data: TaskData, model: CheckpointModel, features: LazyFeatures,
             store: ResultStore, accel: Accelerator, profile: ProfileSettings, summary: RunSummary) -> None:
    started = time.perf_counter()
    try:
        budget = _budget(job, data)
        ctx = JobContext(task=data.task.spec, checkpoint=model.spec, slices=data.slices,
                         train=indices_for(data.slices.patient_ids, budget.payload["train_patients"]),
                         val=indices_for(data.slices.patient_ids, budget.payload["val_patients"]),
                         test=data.test, seed=job.seed, features=features, backbone=model.fresh, accel=accel,
                         profile=profile)
        seed_everything(job.seed)
        protocol: Protocol = PROTOCOLS.get(job.protocol)
        outcome = protocol.run(ctx)
    except CTBenchError as exc:
        summary.failed[job.job_id] = str(exc)
        return
    result = _result_payload(job, spec, data, model, budget, ctx, outcome, protocol, features, accel, profile,
                             wall_time=time.perf_counter() - started)
    store.write(job, result, {
        "case_ids": data.slices.case_ids[ctx.test],
        "patient_ids": data.slices.patient_ids[ctx.test],
        "y_true": data.slices.labels[ctx.test],
        **{name: _compact(array) for name, array in outcome.predictions.items()},
    })
    summary.done.append(job)


def _compact(predictions: np.ndarray) -> np.ndarray:
    """Probabilities as float32 (metrics do not need float64); label maps keep their dtype."""
    return predictions.astype(np.float32) if np.issubdtype(predictions.dtype, np.floating) else predictions


def _budget(job: Job, data: TaskData) -> Manifest:
    folder = data.split.path.parent / f"seed{job.seed}"
    return make_budget(data.split, job.seed, job.scale, data.slices.patient_ids, folder / f"scale-{job.scale:g}.json")


def _result_payload(job: Job, spec: RunSpec, data: TaskData, model: CheckpointModel, budget: Manifest,
                    ctx: JobContext, outcome, protocol: Protocol, features: LazyFeatures, accel: Accelerator,
                    profile: ProfileSettings, wall_time: float) -> dict:
    task, checkpoint = data.task.spec, model.spec
    return {
        "job": job.as_dict(),
        "run_spec": spec.model_dump(mode="json"),
        "task": task.model_dump(mode="json"),
        "checkpoint": checkpoint.model_dump(mode="json"),
        "protocol": {"name": protocol.name, "version": protocol.version},
        "main_metric": {"name": task.main_metric, "value": outcome.metrics[task.main_metric],
                        "higher_is_better": task.higher_is_better},
        "metrics": outcome.metrics,
        "hyperparameters": outcome.hyperparameters,
        "counts": {
            "train_cases": int(len(ctx.train)), "val_cases": int(len(ctx.val)), "test_cases": int(len(ctx.test)),
            # a step-budgeted training job may present fewer cases than its budget holds
            "train_cases_seen": int(outcome.hyperparameters.get("train_cases_seen", len(ctx.train))),
            "train_patients": int(len(budget.payload["train_patients"])),
            "val_patients": int(len(budget.payload["val_patients"])),
            "test_patients": int(data.split.payload["counts"]["test_patients"]),
        },
        "splits": {
            "split_sha256": data.split.sha256, "budget_sha256": budget.sha256,
            "split_manifest": str(data.split.path), "budget_manifest": str(budget.path),
            "budget_floored": budget.payload["floored"],
        },
        "preprocessing": profile.preprocessing(task.preprocessing).model_dump(mode="json"),
        "feature_cache_key": features.cache_key if protocol.uses_features else None,
        "checkpoint_load": model.load_record,
        "predictions_file": f"{job.job_id}.predictions.npz",
        "provenance": {
            **provenance.collect(accel, batch_size=profile.batch_size),
            "checkpoint_sha256": checkpoint.sha256,
            "task_version": task.version,
            "split_sha256": data.split.sha256,
            "data_root": str(data.root),
            "wall_time_s": round(wall_time, 3),
        },
    }


def require_success(summary: RunSummary) -> None:
    if summary.failed:
        first_id, first_error = next(iter(summary.failed.items()))
        raise JobError(f"{len(summary.failed)} job(s) failed; first: {first_id}: {first_error}")
