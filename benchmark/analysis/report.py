"""``analyze``: feature reuse, checkpoint similarity, filter uniqueness and who knew what for
a set of checkpoints on one task, written to ``<workdir>/analysis/<task>/``.

Every number goes into one canonical JSON file; the figures are drawn from that file's
numbers. On a CPU a rerun writes the same bytes: training is seeded as the runner seeds a
job, the cases are chosen without randomness, and floats are rounded to 6 decimals.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from benchmark.analysis import plots
from benchmark.analysis.activations import POOL_GRID, RESNET, StageLayout, shared_names, stage_layout
from benchmark.analysis.agreement import MAX_CHECKPOINTS, pattern_table, stored_correctness
from benchmark.analysis.cka import RBF_FRACTION
from benchmark.analysis.reuse import REUSE_PROTOCOL, feature_reuse
from benchmark.analysis.similarity import GROUPS, filter_uniqueness, pairwise_cka
from benchmark.catalog.registries import checkpoint_registry, task_registry
from benchmark.catalog.resolve import resolve
from benchmark.core.atomic import write_json
from benchmark.core.errors import ConfigError
from benchmark.core.hashing import canonical_hash
from benchmark.core.specs import CheckpointSpec, RunSpec
from benchmark.core.workdir import Workdir
from benchmark.data.splits import budget_rows
from benchmark.evaluation.accel import Accelerator, cpu_threads, pick_device
from benchmark.evaluation.profiles import PROFILES
from benchmark.evaluation.protocols import PROTOCOLS, JobContext
from benchmark.execution.job_runner import CheckpointModel, TaskData, holds_out, job_budget, prepare_task
from benchmark.results.store import ResultStore

SCHEMA_VERSION = 1
MAX_CASES = 512  # test slices compared; CKA's n x n Gram matrices grow with the square
DIGITS = 6
ANALYSIS_THREADS = 2  # what the 2-core machines that measured the README used by default


def analysis_folder(workdir: Workdir, task: str) -> Path:
    return workdir.root / "analysis" / task


def analyze(workdir: Workdir, checkpoints: Sequence[CheckpointSpec | str], task: str, spec: RunSpec,
            **options) -> dict:
    """Analyse ``checkpoints`` on ``task`` and write analysis.json and four SVGs; returns the JSON payload.

    ``spec`` supplies the profile, device, precision, data roots and weight files, as for a
    run. Feature reuse finetunes each checkpoint with the ``finetune`` protocol at ``scale`` and
    ``seed``; who-knew-what reads the stored ``protocol`` job at the same scale and seed.
    ``options``: protocol, scale, seed, max_cases, groups, log. On CPU it runs on ANALYSIS_THREADS
    threads, so its numbers are the same on 1, 2 or 16 cores (torch's default is the core count).
    """
    with cpu_threads(ANALYSIS_THREADS if pick_device(spec.device).type == "cpu" else None):
        return _analyze(workdir, checkpoints, task, spec, **options)


def _analyze(workdir: Workdir, checkpoints: Sequence[CheckpointSpec | str], task: str, spec: RunSpec,
             protocol: str = REUSE_PROTOCOL, scale: float = 1.0, seed: int = 42, max_cases: int = MAX_CASES,
             groups: int = GROUPS, log: Callable[[str], None] = print) -> dict:
    task_obj = _analysable(task, max_cases)
    specs = _resolve(checkpoints, workdir, spec)
    profile = PROFILES[spec.profile]
    accel = Accelerator.create(pick_device(spec.device), spec.precision)
    data = prepare_task(task_obj, spec, workdir, profile)
    rows = analysed_rows(data.test, max_cases)
    if len(rows) < 2:
        raise ConfigError(f"{len(rows)} test slice(s) of {task} to compare; CKA needs at least 2")
    base = finetune_context(data, specs[0], seed, scale, accel, profile)
    models = {c.name: CheckpointModel(c, profile.image_size) for c in specs}  # built as the runner builds them
    layouts = shared_names({name: stage_layout(model.fresh()) for name, model in models.items()})
    before, reuse = {}, {}
    for checkpoint in specs:
        log(f"analysing {checkpoint.name} on {task} ({len(rows)} test slices)")
        before[checkpoint.name], reuse[checkpoint.name] = feature_reuse(
            models.pop(checkpoint.name).fresh(), in_convention(base, data, checkpoint), rows,
            stages=layouts[checkpoint.name])
    payload = _rounded({
        **_header(data, specs, rows, spec.profile, accel, max_cases, groups, scale, seed, layouts),
        "reuse": reuse,
        "pairwise": {"checkpoints": [c.name for c in specs], "linear": pairwise_cka(before)},
        "uniqueness": {name: {s: filter_uniqueness(a, groups) for s, a in acts.items()}
                       for name, acts in before.items()},
        "who_knew_what": who_knew_what(workdir, data, specs, protocol, scale, seed, spec.profile),
    })
    write_outputs(analysis_folder(workdir, task), payload)
    return payload


def _analysable(task: str, max_cases: int):
    """The task, once the cheap checks pass: before any checkpoint is made or data read."""
    task_obj = task_registry().get(task)
    if max_cases < 2:
        raise ConfigError(f"max_cases is {max_cases}; CKA compares at least 2 test slices")
    if task_obj.spec.kind not in PROTOCOLS.get(REUSE_PROTOCOL).kinds:
        raise ConfigError(f"task {task} is a {task_obj.spec.kind} task; the analysis finetunes a classifier, "
                          f"so it takes classification or multilabel tasks")
    return task_obj


def _header(data: TaskData, specs: list[CheckpointSpec], rows: np.ndarray, profile: str, accel: Accelerator,
            max_cases: int, groups: int, scale: float, seed: int, layouts: dict[str, StageLayout]) -> dict:
    """What the numbers are of: task, checkpoint bytes, the compared cases and every setting.

    ``settings.stages`` names the stages every checkpoint shares. Unless all checkpoints are
    ResNets (whose stages are their modules layer1 .. layer4, as the names say),
    ``settings.stage_layouts`` adds per checkpoint which module each stage reads and which modules
    (blocks, for a plain transformer) it covers.
    """
    task = data.task.spec
    settings = {"stages": list(next(iter(layouts.values())).names), "pool_grid": POOL_GRID,
                "rbf_fraction": RBF_FRACTION, "uniqueness_groups": groups, "max_cases": max_cases,
                "reuse_protocol": REUSE_PROTOCOL, "scale": scale, "seed": seed, "precision": accel.precision}
    if any(layout.family != RESNET for layout in layouts.values()):
        settings["stage_layouts"] = {name: layout.describe() for name, layout in layouts.items()}
    return {
        "schema_version": SCHEMA_VERSION,
        "task": {"name": task.name, "version": task.version, "kind": task.kind},
        "profile": profile,
        "checkpoints": [{"name": c.name, "arch": c.arch, "sha256": c.sha256} for c in specs],
        "cases": {"test_slices": int(len(data.test)), "analysed": int(len(rows)), "split_sha256": data.split.sha256,
                  "case_ids_sha256": canonical_hash(data.slices.case_ids[rows].tolist())},
        "settings": settings,
    }


def _resolve(checkpoints: Sequence[CheckpointSpec | str], workdir: Workdir, spec: RunSpec) -> list[CheckpointSpec]:
    """Names through the registry (baselines are made on first use); specs with no hash are hashed."""
    if not checkpoints:
        raise ConfigError("no checkpoints to analyse")
    registry = checkpoint_registry(workdir)
    specs = [registry.get(c) if isinstance(c, str) else c for c in checkpoints]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"checkpoints named twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    return [resolve(s, workdir, spec.weights, spec.allow_download) for s in specs]


def analysed_rows(test: np.ndarray, max_cases: int) -> np.ndarray:
    """All test rows, or ``max_cases`` of them evenly spaced: a fixed choice, no seed needed."""
    if len(test) <= max_cases:
        return test
    return test[np.unique(np.linspace(0, len(test) - 1, max_cases).round().astype(int))]


def finetune_context(data: TaskData, checkpoint: CheckpointSpec, seed: int, scale: float, accel: Accelerator,
                     profile) -> JobContext:
    """The context the runner builds for the finetune job of this seed and scale.

    The budget manifest has the runner's path, so an existing one is reused, never redrawn.
    """
    budget = job_budget(data, seed, scale, holdout=holds_out(PROTOCOLS.get(REUSE_PROTOCOL), profile, data))
    train, val = budget_rows(budget, data.slices.patient_ids, data.slices.case_ids)
    return JobContext(task=data.task.spec, checkpoint=checkpoint, slices=data.slices, train=train, val=val,
                      test=data.test, seed=seed, features=_no_features, accel=accel, profile=profile)


def in_convention(ctx: JobContext, data: TaskData, checkpoint: CheckpointSpec) -> JobContext:
    """The context with ``checkpoint`` fed its own input convention (each network sees what it was
    pretrained on, here as in every run)."""
    slices, pipeline = data.inputs_for(checkpoint.input)
    return dataclasses.replace(ctx, checkpoint=checkpoint, slices=slices, inputs=pipeline)


def _no_features():
    raise ConfigError("the finetune protocol asked for frozen features")  # it never does: a bug if seen


def who_knew_what(workdir: Workdir, data: TaskData, specs: list[CheckpointSpec], protocol: str, scale: float,
                  seed: int, profile: str) -> dict:
    """The pattern table, or {"skipped": why} when fewer than two checkpoints have the stored job."""
    where = {"protocol": protocol, "scale": scale, "seed": seed}
    if len(specs) > MAX_CHECKPOINTS:
        return {**where, "skipped": f"more than {MAX_CHECKPOINTS} checkpoints"}
    if data.task.spec.kind not in PROTOCOLS.get(protocol).kinds:
        return {**where, "skipped": f"protocol {protocol} does not evaluate {data.task.spec.kind} tasks"}
    correct, missing = stored_correctness(ResultStore(workdir.results), data.task.spec, specs, protocol, scale, seed,
                                          profile)
    base = {**where, "missing": missing}
    if len(correct) < 2:
        return {**base, "skipped": f"stored {protocol} predictions (scale {scale:g}, seed {seed}) for "
                                   f"{len(correct)} of the checkpoints; run `ctbench run` first"}
    table = pattern_table(correct)
    return {**base, **table} if table["cases"] else {**base, "skipped": "no test case common to all checkpoints"}


def write_outputs(folder: Path, payload: dict) -> None:
    write_json(folder / "analysis.json", payload)
    stages, names = payload["settings"]["stages"], payload["pairwise"]["checkpoints"]
    width = 3 + 2.6 * len(stages)
    plots.render_svg(plots.draw_reuse(payload["reuse"], stages), folder / "reuse.svg", (10, 4))
    plots.render_svg(plots.draw_pairwise(payload["pairwise"]["linear"], names), folder / "pairwise.svg", (width, 5))
    plots.render_svg(plots.draw_uniqueness(payload["uniqueness"], stages, payload["settings"]["uniqueness_groups"]),
                     folder / "uniqueness.svg", (8, 4))
    plots.render_svg(plots.draw_who_knew_what(payload["who_knew_what"]), folder / "who_knew_what.svg", (8, 5))


def _rounded(value):
    """Floats to DIGITS decimals (last-bit BLAS noise stays out of the file); NaN and inf to null."""
    if isinstance(value, (float, np.floating)):
        return round(float(value), DIGITS) if np.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value
