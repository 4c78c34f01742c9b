"""Plan the grid, and run one job: its task's slices and split, its budget, its protocol, its result.

``run`` picks the jobs still to do and hands them to an executor (``benchmark.executors``),
whose workers call ``JobRunner`` through the shared loop in ``benchmark.worker``. Jobs whose
result file exists are skipped before any data is touched, so a finished grid reruns in
seconds and an interrupted one resumes.
"""
from __future__ import annotations

import copy
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from . import checkpoints as checkpoint_files
from . import provenance
from .accel import Accelerator
from .atomic import sweep_stale_temps
from .errors import ConfigError, CTBenchError, DataError, JobError
from .grid import Job, expand
from .jobstate import JobState, worker_id
from .plugins import checkpoint_registry, task_registry
from .profiles import PROFILES, ProfileSettings
from .protocols import PROTOCOLS, JobContext, Protocol
from .specs import CheckpointSpec, RunSpec
from .splits import MANIFEST_VERSION, Manifest, indices_for, make_budget, make_split
from .store import ResultStore
from .task import Task, resolve_data_root
from .workdir import Workdir

if TYPE_CHECKING:
    from .executors import ExecOptions
    from .slices import SliceSet

Log = Callable[[str], None]
log = logging.getLogger(__name__)


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
    skipped: list[Job] = field(default_factory=list)  # done before this run
    done: list[Job] = field(default_factory=list)  # finished during this run, here or by a worker
    failed: dict[str, str] = field(default_factory=dict)  # job id -> one-line error, from this run
    held_back: dict[str, str] = field(default_factory=dict)  # failed in an earlier run and not retried
    not_run: list[Job] = field(default_factory=list)  # pending jobs no worker finished (one died)
    submitted: list[str] = field(default_factory=list)  # cluster job ids of a run that did not wait


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


def run(spec: RunSpec, workdir: Workdir, log: Log = print, options: "ExecOptions | None" = None) -> RunSummary:
    """Plan the grid, pick the jobs still to do, and hand them to the executor."""
    from .executors import ExecOptions, executor_for

    options = options or ExecOptions()
    sweep_partial_writes(workdir, log)
    grid = plan(spec, workdir)
    jobs = grid.jobs
    if grid.not_applicable:
        log("not evaluated, the protocol does not take the task's kind: "
            + ", ".join(f"{task} under {protocol}" for task, protocol in grid.not_applicable))
    store, state = ResultStore(workdir.results), JobState(workdir.jobs)
    state.write_grid(jobs, spec.profile)
    summary, pending = _select(jobs, store, state.failures(), options.retry_failed, log)
    if not pending:
        return summary
    report = executor_for(options).run(pending, spec, workdir, grid.checkpoints, log)
    if report.submitted:
        summary.submitted = report.submitted
        return summary
    summary.failed = report.failed
    summary.done = [j for j in pending if store.is_done(j)]
    summary.not_run = [j for j in pending if not store.is_done(j) and j.job_id not in report.failed]
    log(f"ran {len(report.ran)} job(s)" + (f", {len(report.by_others)} finished by another process"
                                            if report.by_others else ""))
    return summary


def sweep_partial_writes(workdir: Workdir, log: Log) -> None:
    """Remove the temp files of writers killed mid-write (SIGKILL, out of memory, a lost node),
    which nothing else would ever remove, and their running markers. Only orphans go: a live
    writer's temp file and a live worker's marker, this run's or a concurrent run's, are locked."""
    removed = sweep_stale_temps(_written_through_atomic(workdir))
    JobState(workdir.jobs).clear_dead_markers()
    if removed:
        log(f"removed {len(removed)} partial file(s) that a killed run left")


def _written_through_atomic(workdir: Workdir) -> list[Path]:
    """The workdir less the datasets (large trees, written otherwise) and the slice cache (whole
    folders, renamed into place under their own lock); the feature cache is written atomically."""
    if not workdir.root.is_dir():
        return []
    skip = {workdir.data, workdir.root / "cache"}
    return [p for p in sorted(workdir.root.iterdir()) if p.is_dir() and p not in skip] + [workdir.features]


def _select(jobs: list[Job], store: ResultStore, failures: dict[str, dict], retry_failed: bool,
            log: Log) -> tuple[RunSummary, list[Job]]:
    """Jobs without a result, less those that failed before, which only ``--retry-failed`` reruns."""
    summary = RunSummary(jobs=jobs, skipped=[j for j in jobs if store.is_done(j)])
    open_jobs = [j for j in jobs if not store.is_done(j)]
    retry = [j for j in open_jobs if j.job_id in failures]
    pending = retry if retry_failed else [j for j in open_jobs if j.job_id not in failures]
    if not retry_failed:
        summary.held_back = {j.job_id: failures[j.job_id].get("error", "") for j in retry}
    note = (f"{len(retry)} failed before, retried now" if retry_failed
            else f"{len(retry)} failed before (--retry-failed reruns them), {len(pending)} to run" if retry
            else f"{len(pending)} to run")
    log(f"{len(jobs)} jobs in the grid: {len(summary.skipped)} already done, {note}")
    return summary, pending


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
        self.owner = (model.spec.name, data.task.spec.name)
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


class JobRunner:
    """Runs single jobs in this process. It holds one task's data and one checkpoint x task's
    features at a time, so a worker walking a sorted job list reads each once."""

    def __init__(self, spec: RunSpec, workdir: Workdir, checkpoints: dict[str, CheckpointSpec]):
        self.spec, self.workdir, self.checkpoints = spec, workdir, checkpoints
        self.accel = Accelerator.create(pick_device(spec.device), spec.precision, spec.compile)
        self.profile = PROFILES[spec.profile]
        self.store = ResultStore(workdir.results)
        self._data: TaskData | None = None
        self._models: dict[str, CheckpointModel] = {}
        self._features: LazyFeatures | None = None

    def prepare(self, job: Job) -> TaskData:
        """The job's task data; a CTBenchError here is bad input, not a failed job."""
        if self._data is None or self._data.task.spec.name != job.task:
            self._data, self._features = None, None
            self._data = prepare_task(task_registry().get(job.task), self.spec, self.workdir, self.profile)
        return self._data

    def _model(self, name: str) -> CheckpointModel:
        if name not in self._models:
            self._models[name] = CheckpointModel(self.checkpoints[name])
        return self._models[name]

    def _features_for(self, model: CheckpointModel, data: TaskData) -> LazyFeatures:
        if self._features is None or self._features.owner != (model.spec.name, data.task.spec.name):
            self._features = LazyFeatures(model, data, self.workdir, self.accel, self.profile)
        return self._features

    def run(self, job: Job) -> Path:
        """Evaluate one job and store its result; raises whatever the job raises."""
        started = time.perf_counter()
        data, model = self.prepare(job), self._model(job.checkpoint)
        features = self._features_for(model, data)
        budget = _budget(job, data)
        ctx = JobContext(task=data.task.spec, checkpoint=model.spec, slices=data.slices,
                         train=indices_for(data.slices.patient_ids, budget.payload["train_patients"]),
                         val=indices_for(data.slices.patient_ids, budget.payload["val_patients"]),
                         test=data.test, seed=job.seed, features=features, backbone=model.fresh, accel=self.accel,
                         profile=self.profile)
        log.info("%s: %d train, %d val, %d test cases (budget %s); device %s, %s, %d CPU thread(s)", job.protocol,
                 len(ctx.train), len(ctx.val), len(ctx.test), budget.path, self.accel.device, self.accel.precision,
                 torch.get_num_threads())
        seed_everything(job.seed)
        protocol: Protocol = PROTOCOLS.get(job.protocol)
        outcome = protocol.run(ctx)
        wall_time = time.perf_counter() - started
        log.info("%s = %s in %.1f s", data.task.spec.main_metric, outcome.metrics[data.task.spec.main_metric], wall_time)
        result = _result_payload(job, self.spec, data, model, budget, ctx, outcome, protocol, features, self.accel,
                                 self.profile, wall_time=wall_time)
        return self.store.write(job, result, {
            "case_ids": data.slices.case_ids[ctx.test],
            "patient_ids": data.slices.patient_ids[ctx.test],
            "y_true": data.slices.labels[ctx.test],
            **{name: _compact(array) for name, array in outcome.predictions.items()},
        })


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
            "worker": worker_id(),
        },
    }


def require_success(summary: RunSummary) -> None:
    """One line for the user; ``ctbench status`` has each failure's traceback and log."""
    if summary.failed:
        first_id, first_error = next(iter(summary.failed.items()))
        raise JobError(f"{len(summary.failed)} job(s) failed; first: {first_id}: {first_error} "
                       "(`ctbench status` shows each error and log; --retry-failed reruns them)")
    if summary.held_back:
        first_id, first_error = next(iter(summary.held_back.items()))
        raise JobError(f"{len(summary.held_back)} job(s) failed in an earlier run and were not retried; first: "
                       f"{first_id}: {first_error} (rerun them with --retry-failed)")
    if summary.not_run:
        raise JobError(f"{len(summary.not_run)} job(s) did not finish (a worker ended early); "
                       "run the same command again to resume")
