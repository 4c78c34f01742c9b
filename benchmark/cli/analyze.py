"""``ctbench analyze``: the feature-space analysis of a few checkpoints on one task."""
from __future__ import annotations

import argparse

from benchmark.catalog.registries import checkpoint_registry, task_registry
from benchmark.catalog.resolve import is_available
from benchmark.cli.options import add_device, add_include, add_profile, add_workdir, csv_list, name_path
from benchmark.cli.output import info
from benchmark.core.errors import ConfigError
from benchmark.core.specs import RunSpec
from benchmark.core.workdir import Workdir
from benchmark.results.store import LoadProblem, ResultStore

DEFAULT_TASK = "phantom-body-region"
COMPARED_PROTOCOLS = ("finetune", "linear", "knn")  # those whose stored predictions are per test slice


def add_parser(sub) -> None:
    analyze = sub.add_parser("analyze", help="feature reuse, checkpoint similarity, filter uniqueness and "
                             "who-knew-what on one task (SVGs and JSON under WORKDIR/analysis/TASK)")
    add_workdir(analyze)
    add_include(analyze)
    analyze.add_argument("--task", help=f"a classification or multilabel task (default: {DEFAULT_TASK})")
    analyze.add_argument("--checkpoints", type=csv_list, help="comma-separated names (default: those with results "
                         "for the task, else the profile's references)")
    add_profile(analyze)
    add_device(analyze)
    analyze.add_argument("--protocol", choices=COMPARED_PROTOCOLS, default="finetune",
                         help="whose stored predictions who-knew-what compares (default: finetune)")
    analyze.add_argument("--scale", type=float, default=1.0, help="data scale of the reuse finetune and of the "
                         "compared job (default 1)")
    analyze.add_argument("--seed", type=int, default=42, help="seed of the reuse finetune and of the compared job")
    analyze.add_argument("--max-cases", type=int, default=512, help="test slices compared, evenly spaced")
    analyze.add_argument("--weights", type=name_path, action="append", default=[], metavar="NAME=FILE")
    analyze.add_argument("--data", type=name_path, action="append", default=[], metavar="TASK=DIR")
    analyze.set_defaults(handler=cmd_analyze)


def default_checkpoints(workdir: Workdir, task: str, profile: str, weights: dict) -> list[str]:
    """Those with stored results for the task in this profile; with none, the profile's references
    that have weights to be had (made-here baselines always do)."""
    stored = sorted({r.job.checkpoint for r in ResultStore(workdir.results).iter_results()
                     if not isinstance(r, LoadProblem) and r.job.task == task and r.job.profile == profile})
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
