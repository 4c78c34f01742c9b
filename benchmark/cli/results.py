"""``ctbench results export|import``, ``ctbench rescore`` and ``ctbench leaderboard build|export``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.cli.output import info
from benchmark.core.errors import ConfigError
from benchmark.core.locks import exclusive
from benchmark.core.workdir import Workdir
from benchmark.results.store import ResultStore


def build_site(workdir: Workdir, out: Path | None = None) -> Path:
    """The site from results run here, imported rows and the analysis folder, all of ``workdir``."""
    from leaderboard.importer import imported_dir
    from leaderboard.site import build_site as render

    out = out or workdir.site
    with exclusive(out, "building the site", info):  # two runs finishing together build it in turn
        index, warnings = render(ResultStore(workdir.results), out, imported_dir(workdir), workdir.root / "analysis")
    for warning in warnings:
        info(f"warning: {warning}")
    return index


def cmd_leaderboard(args: argparse.Namespace) -> int:
    workdir = Workdir.resolve(args.workdir)
    if args.action == "export":
        return export_leaderboard(workdir, args.format)
    if args.action == "compare":
        return compare_checkpoints(workdir, args)
    print(build_site(workdir, args.out))
    return 0


def export_leaderboard(workdir: Workdir, fmt: str) -> int:
    """Results run here and imported rows alike; the table goes to stdout, warnings to stderr."""
    from leaderboard.aggregate import load
    from leaderboard.importer import imported_dir
    from leaderboard.stats import leaderboard_table, write_table

    if not workdir.results.is_dir() and not imported_dir(workdir).is_dir():
        raise ConfigError("holds no results (run `ctbench run` or `ctbench results import` first)", workdir.root)
    results, problems = load(ResultStore(workdir.results), imported_dir(workdir))
    for problem in problems:
        info(f"warning: {problem.path}: {problem.problem}")
    write_table(leaderboard_table(results), fmt, sys.stdout)
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from leaderboard.export import export

    workdir = Workdir.resolve(args.workdir)
    if args.action == "import":
        return import_results(args.file, workdir)
    if not workdir.results.is_dir():
        raise ConfigError("holds no results (run `ctbench run` first)", workdir.root)
    for warning in export(ResultStore(workdir.results), args.format, sys.stdout):
        info(f"warning: {warning}")
    return 0


def import_results(path: Path, workdir: Workdir) -> int:
    from leaderboard.importer import import_csv

    stored, n_rows, replaced = import_csv(path, workdir)
    info(f"imported {n_rows} row(s) from {path}" + (f", replacing the earlier {stored.name}" if replaced else ""))
    print(stored)
    return 0


def cmd_rescore(args: argparse.Namespace) -> int:
    from benchmark.results.rescore import rescore

    workdir = Workdir.resolve(args.workdir)
    if not workdir.results.is_dir():
        raise ConfigError("holds no results (run `ctbench run` first)", workdir.root)
    report = rescore(ResultStore(workdir.results), write=not args.check)
    for problem in report.problems:
        info(f"warning: {problem.path}: {problem.problem}")
    for job_id, differences in report.changed.items():
        info(f"{'differs' if args.check else 'rescored'}: {job_id}: " + ", ".join(
            f"{name} {old} -> {new:.6g}" for name, (old, new) in sorted(differences.items())))
    info(f"{report.unchanged} result(s) unchanged, {len(report.changed)} "
         f"{'differ' if args.check else 'rescored'}, {len(report.problems)} unreadable")
    if args.check:
        return 1 if report.changed or report.problems else 0
    if report.changed:
        print(build_site(workdir))
    return 1 if report.problems else 0


def compare_checkpoints(workdir: Workdir, args: argparse.Namespace) -> int:
    """One JSON object: the seed-averaged difference and its patient-bootstrap CI."""
    import json

    from leaderboard.stats import bootstrap_checkpoints

    result = bootstrap_checkpoints(ResultStore(workdir.results), args.a, args.b, args.task, args.task_version,
                                   args.protocol, args.scale, metric=args.metric, n_resamples=args.resamples)
    print(json.dumps({"a": args.a, "b": args.b, "task": args.task, "protocol": args.protocol, "scale": args.scale,
                      **result.as_dict()}, indent=2))
    return 0
