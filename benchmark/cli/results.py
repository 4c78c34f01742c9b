"""``ctbench results export|import|bundle``, ``ctbench rescore`` and ``ctbench leaderboard build|export|compare|ingest``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.cli.options import add_include, add_workdir, name_path
from benchmark.cli.output import info
from benchmark.core.errors import ConfigError
from benchmark.core.locks import exclusive
from benchmark.core.workdir import Workdir
from benchmark.results.store import ResultStore

EXPORT_FORMATS = ("csv", "json")


def add_parser(sub) -> None:
    results_parser = sub.add_parser("results", help="stored results")
    results_parser.set_defaults(handler=cmd_results)
    results = results_parser.add_subparsers(dest="action", required=True)
    export = results.add_parser("export", help="print one row per job and metric")
    add_workdir(export)
    export.add_argument("--format", choices=EXPORT_FORMATS, default="csv")
    imports = results.add_parser("import", help="add per-seed rows computed elsewhere (the `results export` "
                                 "columns, optionally task_domain, checkpoint_domain, source) to the leaderboard")
    imports.add_argument("file", type=Path)
    add_workdir(imports)
    bundle = results.add_parser("bundle", help="write one file of a checkpoint's results, test predictions and "
                                "split hashes, for a maintainer to verify (`leaderboard ingest`)")
    add_workdir(bundle)
    bundle.add_argument("--checkpoint", required=True, help="the checkpoint whose results to bundle")
    bundle.add_argument("--out", required=True, type=Path, help="the bundle file to write (a zip)")
    bundle.add_argument("--submitter", default="", help="who submits it (free text: a name, a lab, an e-mail)")

    rescore = sub.add_parser("rescore", help="recompute every result's metrics from its saved predictions")
    add_workdir(rescore)
    rescore.add_argument("--check", action="store_true", help="only compare; exit 1 if a stored metric differs")
    rescore.set_defaults(handler=cmd_rescore)

    board_parser = sub.add_parser("leaderboard", help="the static site")
    board_parser.set_defaults(handler=cmd_leaderboard)
    board = board_parser.add_subparsers(dest="action", required=True)
    build = board.add_parser("build", help="rebuild HTML, CSV and JSON from stored and imported results")
    add_workdir(build)
    build.add_argument("--out", type=Path, help="where to write the site (default: <workdir>/site)")
    board_export = board.add_parser("export", help="print the aggregate table: per cell n, mean, std, 95 %% CI, "
                                    "and the relative difference and Welch p against each baseline")
    add_workdir(board_export)
    board_export.add_argument("--format", choices=EXPORT_FORMATS, default="csv")
    compare = board.add_parser("compare", help="paired bootstrap over test patients: the CI of A's metric minus "
                               "B's, from the saved predictions of the seeds both have")
    compare.add_argument("a")
    compare.add_argument("b")
    compare.add_argument("--task", required=True)
    compare.add_argument("--task-version", default="1")
    compare.add_argument("--protocol", default="linear")
    compare.add_argument("--scale", type=float, default=1.0)
    compare.add_argument("--metric", help="default: the task's main metric")
    compare.add_argument("--resamples", type=int, default=1000)
    add_workdir(compare)
    ingest = board.add_parser("ingest", help="verify a submission bundle against your own data and add it to the "
                              "leaderboard (verified; self-reported for tasks without --data)")
    ingest.add_argument("file", type=Path, help="the bundle (`ctbench results bundle`)")
    ingest.add_argument("--data", type=name_path, action="append", default=[], metavar="TASK=DIR",
                        help="your copy of a task's data, to verify its results against; repeatable "
                        "(embedded tasks need none)")
    add_workdir(ingest)
    add_include(ingest)


def build_site(workdir: Workdir, out: Path | None = None) -> Path:
    """The site from results run here, imported rows and the analysis folder, all of ``workdir``."""
    from leaderboard.importer import imported_dir
    from leaderboard.ingested import ingested_dir
    from leaderboard.site import build_site as render

    out = out or workdir.site
    with exclusive(out, "building the site", info):  # two runs finishing together build it in turn
        index, warnings = render(ResultStore(workdir.results), out, imported_dir(workdir), workdir.root / "analysis",
                                 ingested_dir(workdir))
    for warning in warnings:
        info(f"warning: {warning}")
    return index


def cmd_leaderboard(args: argparse.Namespace) -> int:
    workdir = Workdir.resolve(args.workdir)
    if args.action == "export":
        return export_leaderboard(workdir, args.format)
    if args.action == "compare":
        return compare_checkpoints(workdir, args)
    if args.action == "ingest":
        return ingest_bundle(args.file, workdir, dict(args.data))
    print(build_site(workdir, args.out))
    return 0


def ingest_bundle(path: Path, workdir: Workdir, data_roots: dict[str, Path]) -> int:
    """Every problem on its own line, then the one-line error; on success what was checked per task."""
    from benchmark.results.bundle import BundleRefused
    from leaderboard.ingest import ingest

    try:
        report = ingest(path, workdir, data_roots)
    except BundleRefused as exc:
        for problem in exc.problems:
            info(f"refused: {problem}")
        raise
    for name in report.unused_data:
        info(f"warning: --data {name}=... is unused: the bundle holds no results of {name}")
    for task in report.tasks:
        info(_task_line(task))
    info(f"{'stored' if report.changed else 'already ingested, unchanged'}: {report.folder}")
    print(build_site(workdir))
    return 0


def _task_line(task) -> str:
    head = f"{task.status} {task.task}@{task.version}: {task.n_results} result(s)"
    if task.status == "verified":
        return (f"{head}; split and budget membership, {task.test_cases} test case ids and "
                f"{len(task.metrics)} metric(s) recomputed against your labels")
    return f"{head}; no data here (pass --data {task.task}=DIR to verify), its metrics follow from its own predictions"


def export_leaderboard(workdir: Workdir, fmt: str) -> int:
    """Results run here and imported rows alike; the table goes to stdout, warnings to stderr."""
    from leaderboard.aggregate import load
    from leaderboard.importer import imported_dir
    from leaderboard.ingested import ingested_dir
    from leaderboard.stats import leaderboard_table, write_table

    if not any(d.is_dir() for d in (workdir.results, imported_dir(workdir), ingested_dir(workdir))):
        raise ConfigError("holds no results (run `ctbench run`, `ctbench results import` or "
                          "`ctbench leaderboard ingest` first)", workdir.root)
    results, problems = load(ResultStore(workdir.results), imported_dir(workdir), ingested_dir(workdir))
    for problem in problems:
        info(f"warning: {problem.path}: {problem.problem}")
    write_table(leaderboard_table(results), fmt, sys.stdout)
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    workdir = Workdir.resolve(args.workdir)
    if args.action == "import":
        return import_results(args.file, workdir)
    if args.action == "bundle":
        return bundle_results(workdir, args.checkpoint, args.out, args.submitter)
    return export_results(workdir, args.format)


def export_results(workdir: Workdir, fmt: str) -> int:
    from leaderboard.export import export

    if not workdir.results.is_dir():
        raise ConfigError("holds no results (run `ctbench run` first)", workdir.root)
    for warning in export(ResultStore(workdir.results), fmt, sys.stdout):
        info(f"warning: {warning}")
    return 0


def import_results(path: Path, workdir: Workdir) -> int:
    from leaderboard.importer import import_csv

    stored, n_rows, replaced = import_csv(path, workdir)
    info(f"imported {n_rows} row(s) from {path}" + (f", replacing the earlier {stored.name}" if replaced else ""))
    print(stored)
    return 0


def bundle_results(workdir: Workdir, checkpoint: str, out: Path, submitter: str) -> int:
    from benchmark.results.bundle import write_bundle

    if not workdir.results.is_dir():
        raise ConfigError("holds no results (run `ctbench run` first)", workdir.root)
    summary = write_bundle(ResultStore(workdir.results), checkpoint, out, submitter)
    tasks = ", ".join(f"{name}@{version}" for name, version in sorted(summary.tasks.items()))
    info(f"bundled {summary.n_results} result(s) of {checkpoint} ({tasks}); sha256 {summary.sha256}")
    print(summary.path)
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
