"""``ctbench analyze``: the feature-space analysis of a few checkpoints on one task."""
from __future__ import annotations

import argparse

from benchmark.catalog.registries import checkpoint_registry, task_registry
from benchmark.catalog.resolve import is_available
from benchmark.cli.output import info
from benchmark.core.errors import ConfigError
from benchmark.core.specs import RunSpec
from benchmark.core.workdir import Workdir
from benchmark.results.store import LoadProblem, ResultStore

DEFAULT_TASK = "phantom-body-region"


def default_checkpoints(workdir: Workdir, task: str, profile: str, weights: dict) -> list[str]:
    """Those with stored results for the task in this profile; with none, the profile's references
    that have weights to be had (made-here baselines always do)."""
    stored = sorted({r["job"]["checkpoint"] for r in ResultStore(workdir.results).iter_results()
                     if not isinstance(r, LoadProblem) and r["job"].get("task") == task
                     and r["job"].get("profile") == profile})
    if stored:
        return stored
    references = [e.obj for e in checkpoint_registry(workdir)
                  if e.obj.demo == (profile == "demo") and not e.source.startswith("submission")]
    names = [c.name for c in references if is_available(c, weights)]
    if not names:
        raise ConfigError(f"no checkpoint to analyse: no stored results for {task} and no {profile} reference has "
                          f"a weight file; pass --checkpoints, or --weights NAME=FILE")
    return names


def cmd_analyze(args: argparse.Namespace) -> int:
    from benchmark.analysis import analysis_folder, analyze  # torch, timm and matplotlib: only when analysing

    workdir = Workdir.resolve(args.workdir)
    task = args.task or DEFAULT_TASK
    task_registry().get(task)  # a mistyped name fails before any checkpoint is made
    weights = dict(args.weights)
    names = args.checkpoints or default_checkpoints(workdir, task, args.profile, weights)
    spec = RunSpec(checkpoints=names, tasks=[task], protocols=["finetune"], scales=[args.scale], seeds=[args.seed],
                   profile=args.profile, device=args.device, data_roots=dict(args.data), weights=weights)
    analyze(workdir, names, task, spec, protocol=args.protocol, scale=args.scale, seed=args.seed,
            max_cases=args.max_cases, log=info)
    print(analysis_folder(workdir, task))
    return 0
