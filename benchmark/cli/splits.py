"""``ctbench splits make`` (write a task's manifests) and ``ctbench splits verify``."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.catalog.registries import task_registry
from benchmark.cli.options import add_include, add_profile, add_workdir, numbers
from benchmark.cli.output import info, print_table
from benchmark.core.errors import CTBenchError
from benchmark.core.specs import RunSpec
from benchmark.core.workdir import Workdir
from benchmark.data.split_verify import verify
from benchmark.data.splits import make_budget
from benchmark.evaluation.profiles import PROFILES

STANDARD_SCALES = (1.0, 0.5, 0.1, 0.01)


def add_parser(sub) -> None:
    splits_parser = sub.add_parser("splits", help="split manifests")
    splits_parser.set_defaults(handler=cmd_splits)
    splits = splits_parser.add_subparsers(dest="action", required=True)
    make = splits.add_parser("make", help="write a task's split and nested label-budget manifests")
    make.add_argument("task")
    make.add_argument("--data", type=Path, metavar="DIR", help="the dataset folder (embedded tasks: none)")
    add_profile(make)
    make.add_argument("--seeds", type=numbers(int), help="default: the profile's")
    make.add_argument("--scales", type=numbers(float), help=f"default: {','.join(f'{s:g}' for s in STANDARD_SCALES)} "
                      "and the task's own")
    add_workdir(make)
    add_include(make)
    verify_parser = splits.add_parser("verify", help="prove no patient is in two sets and every count holds")
    add_workdir(verify_parser)


def cmd_splits(args: argparse.Namespace) -> int:
    workdir = Workdir.resolve(args.workdir)
    return _verify(workdir) if args.action == "verify" else _make(args, workdir)


def _make(args: argparse.Namespace, workdir: Workdir) -> int:
    from benchmark.execution.grid import check_data_roots  # with the task's data: torch and MONAI
    from benchmark.execution.job_runner import prepare_task

    task = task_registry().get(args.task)
    data_roots = {task.spec.name: args.data} if args.data else {}
    spec = RunSpec(checkpoints=[], tasks=[task.spec.name], profile=args.profile, data_roots=data_roots)
    check_data_roots(spec)
    data = prepare_task(task, spec, workdir, PROFILES[args.profile])
    scales = sorted(set(args.scales or [*STANDARD_SCALES, *task.spec.default_scales]), reverse=True)
    rows = [("split", "-", f"{data.split.payload['counts']['test_patients']} test / "
             f"{data.split.payload['counts']['pool_patients']} pool patients", data.split.sha256[:16],
             str(data.split.path))]
    for seed in args.seeds or PROFILES[args.profile].seeds:
        for scale in scales:
            budget = make_budget(data.split, seed, scale, data.slices.patient_ids,
                                 data.split.path.parent / f"seed{seed}" / f"scale-{scale:g}.json")
            counts = budget.payload["counts"]
            rows.append((f"seed {seed}", f"{scale:g}", f"{counts['train_patients']} train / {counts['val_patients']} "
                         f"val patients ({counts['train_cases']} / {counts['val_cases']} cases)",
                         budget.sha256[:16], str(budget.path)))
    print_table(("manifest", "scale", "contents", "sha256", "path"), rows)
    return 0


def _verify(workdir: Workdir) -> int:
    report = verify(workdir.splits, workdir.slices)
    for problem in report.problems:
        print(problem)
    if not report.manifests:
        raise CTBenchError("holds no split manifests (run `ctbench splits make` or `ctbench run` first)",
                           workdir.splits)
    summary = (f"{report.manifests} manifest(s) checked, case counts re-derived for {report.counted}: "
               f"{len(report.problems)} problem(s)")
    info(summary)
    return 1 if report.problems else 0
