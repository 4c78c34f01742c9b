"""One job in this process: its task's slices and split, its label budget, its protocol, its result.

Workers (``benchmark.execution.worker``) hold one ``JobRunner`` and walk a sorted job list, so
each task's data and each checkpoint x task's frozen features are read once per worker.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from benchmark.catalog.registries import task_registry
from benchmark.core.errors import DataError
from benchmark.core.specs import CheckpointSpec, InputConvention, Preprocessing, RunSpec, input_convention
from benchmark.core.workdir import Workdir
from benchmark.data.membership import budget_membership, split_membership
from benchmark.data.published import PublishedSet, adopt_split, coverage_problem, find_published, warn_custom
from benchmark.data.splits import MANIFEST_VERSION, Manifest, budget_rows, indices_for, make_budget, make_split
from benchmark.data.task import Task, resolve_data_root
from benchmark.evaluation import distributed
from benchmark.evaluation.accel import Accelerator, pick_device, seed_everything
from benchmark.evaluation.inputs import InputPipeline
from benchmark.evaluation.metrics import absent_classes
from benchmark.evaluation.profiles import PROFILES, ProfileSettings
from benchmark.evaluation.protocols import PROTOCOLS, JobContext, Protocol
from benchmark.evaluation.protocols.training_state import DEFAULT_EVERY_MIN, Checkpointing
from benchmark.execution.jobstate import worker_id
from benchmark.results import provenance
from benchmark.results.job import Job
from benchmark.results.schema import Result
from benchmark.results.store import ResultStore

if TYPE_CHECKING:
    from benchmark.data.slices import SliceSet

log = logging.getLogger(__name__)


@dataclass
class TaskData:
    task: Task
    root: Path
    slices: "SliceSet"  # the first cache stage read; its rows are every stage's rows
    split: Manifest
    test: np.ndarray
    fingerprint: str
    cache_dir: Path
    prep: Preprocessing
    _stages: dict = field(default_factory=dict)
    published: PublishedSet | None = None  # the published set the split was adopted from, if any

    def inputs_for(self, convention: InputConvention) -> tuple["SliceSet", InputPipeline]:
        """The task's slices cached as ``convention`` needs them (raw, or mapped its way), and the
        pipeline that feeds them to a network in that convention."""
        from benchmark.data.slices import cache_stage, load_slices

        stage = cache_stage(convention, self.task.spec.domain, self.prep.windows)
        key = json.dumps(stage, sort_keys=True)
        if self.slices.stage == stage:
            slices = self.slices
        else:
            if key not in self._stages:
                self._stages[key] = load_slices(self.task, self.root, self.prep, self.cache_dir, self.fingerprint,
                                                convention)
            slices = self._stages[key]
        return slices, InputPipeline(convention, self.task.spec.domain, tuple(self.prep.windows), slices.mapped)


def prepare_task(task: Task, spec: RunSpec, workdir: Workdir, profile: ProfileSettings,
                 convention: InputConvention | None = None) -> TaskData:
    """The task's slices and split manifest. The dataset is named by its contents (a copy elsewhere, with
    new mtimes, reuses both); a workdir from before that moves its caches and writes new manifests."""
    from benchmark.data.fingerprint import legacy_split_folder, report_split_migration, task_fingerprint
    from benchmark.data.slices import load_slices  # MONAI takes seconds to import; a finished grid never needs it

    root = resolve_data_root(task, spec.data_roots, workdir.data)
    task = task.bind(root)
    fingerprint = task_fingerprint(task, root, workdir.root / "cache" / "file-hashes")
    prep = profile.preprocessing(task.spec.preprocessing)
    slices = load_slices(task, root, prep, workdir.slices, fingerprint, convention)
    split_dir = workdir.splits / f"{task.spec.name}@{task.spec.version}" / f"{fingerprint[:16]}-m{MANIFEST_VERSION}"
    split_path = split_dir / "split.json"
    legacy_dir = legacy_split_folder(split_dir, root)
    split, published = _task_split(task, root, fingerprint, slices, split_path, workdir)
    if legacy_dir is not None:
        report_split_migration(task.spec.name, split.payload, legacy_dir, split_dir)
    return TaskData(task, root, slices, split, indices_for(slices.patient_ids, split.payload["test_patients"]),
                    fingerprint, workdir.slices, prep, published=published)


def _task_split(task: Task, root: Path, fingerprint: str, slices: "SliceSet", path: Path,
                workdir: Workdir) -> tuple[Manifest, PublishedSet | None]:
    """The published split where the task has one (shipped or imported) and this copy holds exactly its
    patients, so every lab tests on the same patients; a copy holding patients it does not list is refused.
    Otherwise the split derived from the copy, as before: a subset (a fixture, a partial download) gets one
    too, marked custom by its membership hash rather than refused."""
    published = find_published(task.spec.name, task.spec.version, workdir.root)
    if published is not None:
        way, why = coverage_problem(published, slices.patient_ids)
        if way == "foreign":
            raise DataError(f"{why}: another release or a renamed copy, which the published split cannot cover",
                            root)
        if not way:
            return adopt_split(published, fingerprint, slices.patient_ids, slices.official, path), published
        warn_custom(task.spec.name, why)
    return make_split(task.spec.name, task.spec.version, fingerprint, slices.patient_ids, slices.labels, path,
                      slices.official), None


def convention_for(checkpoint: CheckpointSpec, forced: str | None) -> InputConvention:
    """The checkpoint's own input convention, or the run's forced one (keeping the network's channel count
    and pooling: the ablation is of the input, and the network is built once per checkpoint)."""
    if not forced:
        return checkpoint.input
    return input_convention(forced).model_copy(update={"channels": checkpoint.input.channels,
                                                       "pooling": checkpoint.input.pooling})


class CheckpointModel:
    """A checkpoint's model, read from its file once per run and handed out as fresh copies,
    so that a job that trains never starts from another job's weights."""

    def __init__(self, spec: CheckpointSpec, img_size: int | None = None):
        self.spec, self.img_size = spec, img_size
        self._model = None
        self.load_record: dict | None = None  # how the checkpoint file was mapped onto the model

    def fresh(self) -> torch.nn.Module:
        """Building the timm model draws from torch's generator; forking it keeps a job's seeded
        stream the same whether or not an earlier job already loaded the checkpoint."""
        if self._model is None:
            from benchmark.models.load import load_backbone

            with torch.random.fork_rng(devices=[]):
                self._model = load_backbone(self.spec, self.img_size)
            self.load_record = self._model.ctbench_load
        return copy.deepcopy(self._model)


class LazyFeatures:
    """Frozen features for one checkpoint x task x input convention, computed (or loaded) on first
    call, so protocols that train end to end never pay for them."""

    def __init__(self, model: CheckpointModel, data: TaskData, pipeline: InputPipeline, slices: "SliceSet",
                 workdir: Workdir, accel: Accelerator, profile: ProfileSettings):
        from benchmark.evaluation.features import (  # the features module imports MONAI: only when a job runs
            FEATURE_SUFFIX,
            feature_cache_key,
        )

        self._model, self._slices, self._pipeline = model, slices, pipeline
        self._accel, self._batch_size = accel, profile.batch_size
        seen_as = model.spec.model_copy(update={"input": pipeline.convention})  # a forced convention is its own key
        self.cache_key = feature_cache_key(seen_as, data.task.spec.name, data.task.spec.version,
                                           data.split.sha256, data.prep, accel.precision)
        self._path = workdir.features / f"{self.cache_key}{FEATURE_SUFFIX}"  # a memory-mapped .npy + sidecar
        self.owner = (model.spec.name, data.task.spec.name, pipeline.convention.key())
        self._value: np.ndarray | None = None

    def __call__(self) -> np.ndarray:
        from benchmark.evaluation.features import cached_features

        if self._value is None:
            self._value, record = cached_features(self._path, self._slices, self._extract)
            self._model.load_record = self._model.load_record or record
        return self._value

    def _extract(self, sink) -> dict:
        """Rows go straight into the cache file as they come (a 1.28M-slice task's features do not fit
        in memory twice); returns the load record the sidecar keeps."""
        from benchmark.evaluation.features import extract

        extract(self._model.fresh(), self._slices, self._model.spec, self._accel, self._batch_size, self._pipeline,
                into=sink)
        return self._model.load_record


@dataclass(frozen=True)
class RunnerSettings:
    """How jobs run here, beyond the run spec: none of it is in a job's identity. The micro-batch
    shapes BatchNorm's batches, so results record it (``hyperparameters.micro_batch``)."""

    checkpoint_every_s: float = DEFAULT_EVERY_MIN * 60  # a training job saves its resumable state this often
    micro_batch: int | None = None  # caps a device's micro-batch; gradient accumulation fills the recipe's batch


class JobRunner:
    """Runs single jobs in this process. It holds one task's data and one checkpoint x task's
    features at a time, so a worker walking a sorted job list reads each once."""

    def __init__(self, spec: RunSpec, workdir: Workdir, checkpoints: dict[str, CheckpointSpec],
                 settings: RunnerSettings | None = None):
        self.spec, self.workdir, self.checkpoints = spec, workdir, checkpoints
        self.settings = settings or RunnerSettings()
        self.world = distributed.current()
        accel = Accelerator.create(pick_device(spec.device), spec.precision, spec.compile)
        self.accel = dataclasses.replace(accel, micro_batch=self.settings.micro_batch)
        # who shares a distributed job's training; gathered here, where every rank is (a collective)
        self.world_record = {"world_size": self.world.size, "backend": self.world.backend,
                             "devices": distributed.devices(self.accel.device)} if self.world.distributed else None
        self.profile = PROFILES[spec.profile]
        self.store = ResultStore(workdir.results)
        self._data: TaskData | None = None
        self._models: dict[str, CheckpointModel] = {}
        self._features: LazyFeatures | None = None

    def prepare(self, job: Job) -> TaskData:
        """The job's task data; a CTBenchError here is bad input, not a failed job."""
        if self._data is None or self._data.task.spec.name != job.task:
            self._data, self._features = None, None
            convention = convention_for(self.checkpoints[job.checkpoint], job.input_convention)
            self._data = prepare_task(task_registry().get(job.task), self.spec, self.workdir, self.profile, convention)
        return self._data

    def _model(self, name: str) -> CheckpointModel:
        if name not in self._models:
            self._models[name] = CheckpointModel(self.checkpoints[name], self.profile.image_size)
        return self._models[name]

    def _features_for(self, model: CheckpointModel, data: TaskData, pipeline: InputPipeline,
                      slices: "SliceSet") -> LazyFeatures:
        owner = (model.spec.name, data.task.spec.name, pipeline.convention.key())
        if self._features is None or self._features.owner != owner:
            self._features = LazyFeatures(model, data, pipeline, slices, self.workdir, self.accel, self.profile)
        return self._features

    def run(self, job: Job) -> Path:
        """Evaluate one job and store its result; raises whatever the job raises."""
        started = time.perf_counter()
        data, model = self.prepare(job), self._model(job.checkpoint)
        protocol: Protocol = PROTOCOLS.get(job.protocol)
        convention = convention_for(model.spec, job.input_convention)
        slices, pipeline = data.inputs_for(convention)
        features = self._features_for(model, data, pipeline, slices)
        budget = _budget(job, data, holdout=holds_out(protocol, self.profile, data))
        train, val = budget_rows(budget, slices.patient_ids, slices.case_ids)
        state = Checkpointing(self.workdir.jobs / "state" / f"{job.job_id}.pt", self.settings.checkpoint_every_s,
                              {"job": job.job_id}) if protocol.trains else None
        ctx = JobContext(task=data.task.spec, checkpoint=model.spec, slices=slices, train=train, val=val,
                         test=data.test, seed=job.seed, features=features, backbone=model.fresh, accel=self.accel,
                         profile=self.profile, inputs=pipeline, max_epochs=job.max_epochs or None,
                         checkpointing=state)
        log.info("%s: %d train, %d val, %d test cases (budget %s, by %s); input %s; device %s, %s, %d CPU thread(s)",
                 job.protocol, len(ctx.train), len(ctx.val), len(ctx.test), budget.path, job.budget_unit,
                 convention.name, self.accel.device, self.accel.precision, torch.get_num_threads())
        seed_everything(job.seed)
        outcome = protocol.run(ctx)  # on a distributed job's other ranks, raises FollowerFinished after training
        wall_time = time.perf_counter() - started
        log.info("%s = %s in %.1f s", data.task.spec.main_metric, outcome.metrics[data.task.spec.main_metric], wall_time)
        result = _result_payload(job, self.spec, data, model, budget, ctx, outcome, protocol, features, self.accel,
                                 self.profile, wall_time=wall_time,
                                 world=self.world_record if protocol.trains else None)
        path = self.store.write(job, result, {
            "case_ids": slices.case_ids[ctx.test],
            "patient_ids": slices.patient_ids[ctx.test],
            "y_true": slices.labels[ctx.test],
            **{name: _compact(array) for name, array in outcome.predictions.items()},
        })
        if state is not None:  # the result is whole: the state it was trained from is not needed again
            state.discard()
        return path


def _compact(predictions: np.ndarray) -> np.ndarray:
    """Probabilities as float32 (metrics do not need float64); label maps keep their dtype."""
    return predictions.astype(np.float32) if np.issubdtype(predictions.dtype, np.floating) else predictions


def _budget(job: Job, data: TaskData, holdout: bool) -> Manifest:
    return job_budget(data, job.seed, job.scale, job.budget_unit, holdout)


def holds_out(protocol: Protocol, profile: ProfileSettings, data: TaskData) -> bool:
    """A budget keeps a validation hold-out only where something is selected on it: a probe's C or k,
    or the best epoch of a recipe that selects one. One that keeps the last epoch (the study's) trains
    on all of it, as the study trained on its whole folder."""
    return protocol.uses_features or profile.training(data.task.spec.training).selection == "val"


def job_budget(data: TaskData, seed: int, scale: float, unit: str = "patient", holdout: bool = True) -> Manifest:
    """``seed<S>/scale-<s>.json`` as before; a slice-unit or hold-out-free budget is its own file beside it."""
    folder = data.split.path.parent / f"seed{seed}"
    suffix = ("-slices" if unit == "slice" else "") + ("" if holdout else "-noval")
    entry = data.published.budget(seed, scale, unit, holdout) if data.published else None
    return make_budget(data.split, seed, scale, data.slices.patient_ids, folder / f"scale-{scale:g}{suffix}.json",
                       holdout=holdout, unit=unit, case_ids=data.slices.case_ids,
                       drawn=(entry.train_patients, entry.val_patients) if entry else None)


def _result_payload(job: Job, spec: RunSpec, data: TaskData, model: CheckpointModel, budget: Manifest,
                    ctx: JobContext, outcome, protocol: Protocol, features: LazyFeatures, accel: Accelerator,
                    profile: ProfileSettings, wall_time: float, world: dict | None = None) -> Result:
    """The job's ``Result``: an undefined metric (NaN) is stored as null, JSON having no NaN."""
    task, checkpoint = data.task.spec, model.spec
    return Result.build({
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
            "split_membership": split_membership(data.split.payload),
            "budget_membership": budget_membership(budget.payload, data.split.payload),
        },
        "preprocessing": profile.preprocessing(task.preprocessing).model_dump(mode="json"),
        "feature_cache_key": features.cache_key if protocol.uses_features else None,
        "input": {"convention": ctx.inputs.describe(), "native": checkpoint.input.name,
                  "forced": bool(job.input_convention)},
        "classes_absent": {split: absent_classes(ctx.slices.labels[rows], task.class_names)
                           for split, rows in (("val", ctx.val), ("test", ctx.test)) if len(rows)},
        "checkpoint_load": model.load_record,
        "predictions_file": f"{job.job_id}.predictions.npz",
        "provenance": {
            **provenance.collect(accel, batch_size=profile.batch_size),
            "checkpoint_sha256": checkpoint.sha256,
            "task_version": task.version,
            "split_sha256": data.split.sha256,
            "data_root": str(data.root),
            **({"data_selection": chosen} if (chosen := data.task.provenance(data.root)) else {}),  # Task.provenance
            "wall_time_s": round(wall_time, 3),
            "throughput": outcome.notes.get("throughput"),
            **({"resumed": outcome.notes["resumed"]} if outcome.notes.get("resumed") else {}),
            **({"distributed": world} if world else {}),
            "worker": worker_id(),
        },
    })


