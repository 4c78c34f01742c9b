"""``ctbench splits make`` (write a task's manifests), ``export``/``import`` (a published split set, from
one lab's copy to another lab's workdir) and ``verify``."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.catalog.registries import task_registry
from benchmark.cli.options import add_include, add_profile, add_workdir, numbers
from benchmark.cli.output import info, print_table
from benchmark.core.errors import ConfigError, CTBenchError, DataError
from benchmark.core.specs import RunSpec
from benchmark.core.workdir import Workdir
from benchmark.data.membership import split_membership
from benchmark.data.published import (
    Source,
    imported_path,
    load_published,
    moved_patient,
    publishable_set,
    shipped_path,
    write_published,
)
from benchmark.data.split_verify import verify
from benchmark.evaluation.profiles import PROFILES

STANDARD_SCALES = (1.0, 0.5, 0.1, 0.01)


def add_parser(sub) -> None:
    splits_parser = sub.add_parser("splits", help="split manifests")
    splits_parser.set_defaults(handler=cmd_splits)
    splits = splits_parser.add_subparsers(dest="action", required=True)
    make = splits.add_parser("make", help="write a task's split and nested label-budget manifests")
    _task_options(make)
    export = splits.add_parser("export", help="write the publishable split set of a task from this workdir's "
                               "manifests (made if needed), for other labs to import")
    _task_options(export)
    export.add_argument("--out", type=Path, required=True, metavar="FILE", help="the set's JSON file")
    export.add_argument("--origin", default="", help="free text: whose copy, which release (default: none)")
    imported = splits.add_parser("import", help="adopt a published split set: later runs of its task use exactly it")
    imported.add_argument("file", type=Path)
    add_workdir(imported)
    verify_parser = splits.add_parser("verify", help="prove no patient is in two sets, every count holds and "
                                      "published memberships are kept")
    add_workdir(verify_parser)


def _task_options(parser) -> None:
    parser.add_argument("task")
    parser.add_argument("--data", type=Path, metavar="DIR", help="the dataset folder (embedded tasks: none)")
    add_profile(parser)
    parser.add_argument("--seeds", type=numbers(int), help="default: the profile's")
    parser.add_argument("--scales", type=numbers(float), help=f"default: {','.join(f'{s:g}' for s in STANDARD_SCALES)} "
                        "and the task's own")
    add_workdir(parser)
    add_include(parser)


def cmd_splits(args: argparse.Namespace) -> int:
    workdir = Workdir.resolve(args.workdir)
    return {"verify": _verify, "make": _make, "export": _export, "import": _import}[args.action](args, workdir)


def _manifests(args: argparse.Namespace, workdir: Workdir, holdouts: tuple[bool, ...] = (True,)):
    """The task's split and its budgets for the seeds and scales asked (each hold-out asked): a
    published set's where the task has one that this copy matches."""
    from benchmark.execution.grid import check_data_roots  # with the task's data: torch and MONAI
    from benchmark.execution.job_runner import job_budget, prepare_task

    task = task_registry().get(args.task)
    data_roots = {task.spec.name: args.data} if args.data else {}
    spec = RunSpec(checkpoints=[], tasks=[task.spec.name], profile=args.profile, data_roots=data_roots)
    check_data_roots(spec)
    data = prepare_task(task, spec, workdir, PROFILES[args.profile])
    scales = sorted(set(args.scales or [*STANDARD_SCALES, *task.spec.default_scales]), reverse=True)
    budgets = [job_budget(data, seed, scale, holdout=holdout) for seed in args.seeds or PROFILES[args.profile].seeds
               for scale in scales for holdout in holdouts]
    return data.split, budgets


def _make(args: argparse.Namespace, workdir: Workdir) -> int:
    split, budgets = _manifests(args, workdir)
    rows = [("split", "-", f"{split.payload['counts']['test_patients']} test / "
             f"{split.payload['counts']['pool_patients']} pool patients", split.sha256[:16], str(split.path))]
    for budget in budgets:
        counts = budget.payload["counts"]
        rows.append((f"seed {budget.payload['seed']}", f"{budget.payload['scale']:g}",
                     f"{counts['train_patients']} train / {counts['val_patients']} val patients "
                     f"({counts['train_cases']} / {counts['val_cases']} cases)", budget.sha256[:16], str(budget.path)))
    print_table(("manifest", "scale", "contents", "sha256", "path"), rows)
    return 0


def _export(args: argparse.Namespace, workdir: Workdir) -> int:
    """Budgets with and without a hold-out, as both kinds of protocol draw one; nothing of the lab's copy
    (paths, fingerprints) goes into the file, only who is in which set."""
    split, budgets = _manifests(args, workdir, holdouts=(True, False))
    payload = publishable_set(split, budgets, Source(kind="lab", origin=args.origin))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_published(args.out, payload)
    info(f"{args.out}: {payload['task']}@{payload['task_version']}, {len(payload['split']['test_patients'])} test "
         f"patients, {len(payload['budgets'])} budgets, split membership {payload['split_membership'][:16]}")
    return 0


def _import(args: argparse.Namespace, workdir: Workdir) -> int:
    """Store the set where runs of its task adopt it; refused where it would contradict the shipped set,
    an earlier import, or manifests this workdir already derived for the task."""
    published = load_published(args.file)
    name, version = published.task, published.task_version
    task = task_registry().get(name)
    if task.spec.version != version:
        raise ConfigError(f"is for {name}@{version}, but this ctbench's {name} is version {task.spec.version}",
                          args.file)
    for other in (shipped_path(name, version), imported_path(workdir.root, name, version)):
        if other.is_file() and load_published(other).split_membership != published.split_membership:
            raise DataError(f"differs from the published split already at {other} "
                            f"({moved_patient(load_published(other).split_payload(), published)})", args.file)
    for split_path in sorted((workdir.splits / f"{name}@{version}").glob("*/split.json")):
        recorded = load_json(split_path)
        if split_membership(recorded) != published.split_membership:
            raise DataError(f"this workdir's {split_path} was derived with other members "
                            f"({moved_patient(recorded, published)}); move its folder away first", args.file)
    target = imported_path(workdir.root, name, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_published(target, published.model_dump(mode="json"))
    info(f"{target}: runs of {name}@{version} in this workdir now use this split "
         f"(membership {published.split_membership[:16]})")
    return 0


def load_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"not a readable manifest ({exc})", path) from None


def _verify(args: argparse.Namespace, workdir: Workdir) -> int:
    report = verify(workdir.splits, workdir.slices)
    for problem in report.problems:
        print(problem)
    if not report.manifests:
        raise CTBenchError("holds no split manifests (run `ctbench splits make` or `ctbench run` first)",
                           workdir.splits)
    summary = (f"{report.manifests} manifest(s) checked, case counts re-derived for {report.counted}, "
               f"{report.published} split(s) checked against a published set ({report.custom} custom): "
               f"{len(report.problems)} problem(s)")
    info(summary)
    return 1 if report.problems else 0
