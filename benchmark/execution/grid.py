"""The job grid: checkpoints x tasks x protocols x data scales x seeds, with every checkpoint
resolved to a hashed file first (job ids depend on the hash)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from benchmark.catalog import resolve as checkpoint_files
from benchmark.catalog.registries import checkpoint_registry, task_registry
from benchmark.core.errors import ConfigError, DataError
from benchmark.core.specs import CheckpointSpec, RunSpec
from benchmark.core.workdir import Workdir
from benchmark.evaluation.protocols import PROTOCOLS
from benchmark.results.job import Job


def expand(checkpoints: Iterable[tuple[str, str]], tasks: Iterable[tuple[str, str, list[float]]],
           protocols: Iterable[tuple[str, str]], seeds: Iterable[int], profile: str, **variant) -> list[Job]:
    """``checkpoints`` are (name, sha256); ``tasks`` are (name, version, scales); ``protocols`` (name, version);
    ``variant`` the run's departures every job shares (a forced input convention, the budget unit...)."""
    checkpoints, tasks, protocols, seeds = list(checkpoints), list(tasks), list(protocols), list(seeds)
    jobs = [
        Job(ck, sha, task, version, proto, proto_version, float(scale), int(seed), profile, **variant)
        for ck, sha in checkpoints
        for task, version, scales in tasks
        for proto, proto_version in protocols
        for scale in scales
        for seed in seeds
    ]
    return sorted(set(jobs))


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
                       [(protocol.name, protocol.version)], spec.seeds, spec.profile, **job_variant(spec))
    if not jobs:
        raise ConfigError(f"no protocol among {spec.protocols} applies to tasks {spec.tasks}")
    return Plan(sorted(jobs), checkpoints, not_applicable)


def job_variant(spec: RunSpec) -> dict:
    return {"input_convention": spec.force_input_convention or "", "budget_unit": spec.budget_unit,
            "max_epochs": spec.max_epochs or 0}


def check_data_roots(spec: RunSpec) -> None:
    for name, root in spec.data_roots.items():
        task_registry().get(name)
        if not Path(root).expanduser().is_dir():
            raise DataError(f"is not a directory (given with --data {name}=...)", root)
