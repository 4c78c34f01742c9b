"""``ctbench tasks list|show|validate`` and ``ctbench checkpoints list|inspect``."""
from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

from benchmark.catalog.registries import checkpoint_registry, task_registry
from benchmark.catalog.resolve import is_available
from benchmark.cli.options import FORMAT_HELP, add_include, add_workdir
from benchmark.cli.output import info, print_table
from benchmark.core.errors import EXIT_BAD_CHECKPOINT, EXIT_BAD_INPUT, DataError
from benchmark.core.workdir import Workdir


def add_parser(sub) -> None:
    tasks_parser = sub.add_parser("tasks", help="registered tasks")
    tasks_parser.set_defaults(handler=cmd_tasks)
    tasks = tasks_parser.add_subparsers(dest="action", required=True)
    add_include(tasks.add_parser("list", help="name, domain, kind, metric and source"))
    show = tasks.add_parser("show", help="a task's spec and the on-disk layout it expects")
    show.add_argument("name")
    add_include(show)
    validate = tasks.add_parser("validate", help="check a dataset folder; one line per problem, exit 2 if any")
    validate.add_argument("name")
    validate.add_argument("--data", required=True, type=Path, metavar="DIR")
    add_include(validate)

    checkpoints_parser = sub.add_parser("checkpoints", help="checkpoints")
    checkpoints_parser.set_defaults(handler=cmd_checkpoints)
    checkpoints = checkpoints_parser.add_subparsers(dest="action", required=True)
    add_workdir(checkpoints.add_parser("list", help="registered and submitted checkpoints"))
    inspect_file = checkpoints.add_parser("inspect", help="format, keys, sha256 and finiteness of a checkpoint file")
    inspect_file.add_argument("file", type=Path, help="a checkpoint file or a model folder")
    inspect_file.add_argument("--arch", help="timm architecture (default: inferred)")
    inspect_file.add_argument("--format", help=FORMAT_HELP)
    inspect_file.add_argument("--json", action="store_true")


def cmd_tasks(args: argparse.Namespace) -> int:
    if args.action == "show":
        return _show(task_registry().entry(args.name))
    if args.action == "validate":
        return _validate(task_registry().get(args.name), args.data)
    rows = [(e.name, e.obj.spec.domain, e.obj.spec.kind, e.obj.spec.main_metric, e.source) for e in task_registry()]
    print_table(("name", "domain", "kind", "metric", "source"), rows)
    return 0


def _show(entry) -> int:
    """The spec, and the plugin module's docstring: where to get the data, its licence, its quirks."""
    spec = entry.obj.spec
    print(f"{spec.name} (version {spec.version}), from {entry.source}")
    if spec.description:
        print(spec.description)
    module_doc = inspect.getdoc(sys.modules.get(type(entry.obj).__module__))
    if module_doc:
        print(f"\n{module_doc}\n")
    print(f"expected layout: {spec.data_layout or '(not documented by the plugin)'}")
    print(f"use: ctbench run --tasks {spec.name}" + ("" if spec.embedded else f" --data {spec.name}=DIR"))
    print(json.dumps(spec.model_dump(mode="json"), indent=2))
    return 0


def _validate(task, folder) -> int:
    """Every problem on its own line (stdout), a summary on stderr; exit 2 when anything is wrong."""
    if not folder.is_dir():
        raise DataError("is not a directory", folder)
    problems = task.validate(folder)
    for problem in problems:
        print(problem)
    for note in _notes(task, folder):
        info(f"note: {note}")
    if problems:
        info(f"{len(problems)} problem(s) in {folder} for task {task.spec.name}")
        return EXIT_BAD_INPUT
    info(f"ok: {folder} is a valid {task.spec.name} dataset")
    return 0


def _notes(task, folder) -> list[str]:
    """The task's information about the folder (series chosen or skipped...): not problems, so
    on stderr with the summary, keeping stdout one problem per line. A folder the task cannot
    read has no notes; its problems already say why."""
    try:
        return task.bind(folder).notes(folder)
    except DataError:
        return []


def cmd_checkpoints(args: argparse.Namespace) -> int:
    if args.action == "inspect":
        return _inspect(args)
    registry = checkpoint_registry(Workdir.resolve(args.workdir))
    rows = [(e.name, e.obj.arch, e.obj.pretraining_domain, e.obj.method, "demo" if e.obj.demo else "paper",
             "yes" if is_available(e.obj, {}) else "needs --weights", e.source) for e in registry]
    print_table(("name", "arch", "pretraining", "method", "profile", "available", "source"), rows)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from benchmark.models.formats import inspect_checkpoint, resolve_weight_file

    report = inspect_checkpoint(resolve_weight_file(args.file), arch=args.arch, fmt=args.format)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_inspection(report)
    if report.get("ok", True):
        return 0
    keys = report["keys"]  # the report is on stdout; stderr gets the one-line verdict scripts look for
    print(f"ctbench: error: {report['path']}: would be refused ({'non-finite weights, ' if not report['finite'] else ''}"
          f"{len(keys['missing'])} missing, {len(keys['unexpected'])} unexpected, "
          f"{len(keys.get('shape_mismatch', []))} mismatched-shape keys)", file=sys.stderr)
    return EXIT_BAD_CHECKPOINT


def describe_convention(convention: dict) -> str:
    """One line: how a checkpoint is fed its input."""
    order = "resize, then map" if convention.get("resize_first") else "map, then resize"
    stats = (f"mean {list(convention['mean'])}, std {list(convention['std'])}" if convention.get("mean") is not None
             else "no mean/std")
    pooling = f", pooling {convention['pooling']}" if convention.get("pooling", "model") != "model" else ""
    return (f"{convention.get('name')}: intensity {convention.get('intensity')}, {convention.get('channels')} channels, "
            f"{convention.get('interpolation')} {order}, {stats}{pooling}")


def _print_inspection(report: dict) -> None:
    keys = report["keys"]
    print(f"file:         {report['path']}")
    print(f"format:       {report['format']} ({report['format_reason']})")
    print(f"architecture: {report['arch']} ({report['arch_source']})")
    print(f"sha256:       {report['sha256']}")
    print(f"parameters:   {report['parameters']:,}")
    print(f"finite:       {'yes' if report['finite'] else 'NO'}")
    if "input_convention" in report:
        print(f"input:        {describe_convention(report['input_convention'])} (this file's default; "
              "submit --input-convention NAME sets another)")
    print(f"keys:         {keys['matched']} matched, {len(keys['missing'])} missing, "
          f"{len(keys['unexpected'])} unexpected, {len(keys.get('ignored_head', []))} head keys ignored")
    for label in ("missing", "unexpected", "shape_mismatch"):
        for key in keys.get(label, []):
            print(f"  {label}: {key}")
    for part, count in sorted(keys.get("dropped", {}).items()):
        print(f"  not part of the backbone, left out: {part} ({count} keys)")
    for note in report.get("notes", []):
        print(f"note:         {note}")
