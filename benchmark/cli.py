"""The ``ctbench`` command line.

User errors end with one line on stderr and a documented exit code; ``--debug`` keeps
the traceback for bug reports.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import __version__
from pydantic import ValidationError

from .errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, ConfigError, CTBenchError
from .workdir import DEFAULT_WORKDIR, ENV_VAR, Workdir


def _csv(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _floats(value: str) -> list[float]:
    try:
        return [float(v) for v in _csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {value!r}") from None


def _ints(value: str) -> list[int]:
    try:
        return [int(v) for v in _csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None


def _data_root(value: str) -> tuple[str, Path]:
    task, sep, folder = value.partition("=")
    if not sep or not task or not folder:
        raise argparse.ArgumentTypeError(f"expected TASK=DIR, got {value!r}")
    return task, Path(folder)


def _add_workdir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", help=f"data, caches, results and site (default ${ENV_VAR} or ./{DEFAULT_WORKDIR})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ctbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ctbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the grid (default: the embedded suite) and build the leaderboard")
    _add_workdir(run)
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    run.add_argument("--profile", choices=["demo", "paper"], default="demo")
    run.add_argument("--tasks", type=_csv, help="comma-separated task names (default: all embedded tasks)")
    run.add_argument("--checkpoints", type=_csv, help="comma-separated checkpoint names (default: all registered)")
    run.add_argument("--protocols", type=_csv, default=["linear"])
    run.add_argument("--scales", type=_floats, help="label fractions, e.g. 1,0.1,0.01 (default: each task's)")
    run.add_argument("--seeds", type=_ints, default=[42, 1, 2, 3])
    run.add_argument("--data", type=_data_root, action="append", default=[], metavar="TASK=DIR",
                     help="where a task's dataset lives (repeatable)")

    results = sub.add_parser("results", help="stored results").add_subparsers(dest="action", required=True)
    export = results.add_parser("export", help="print one row per job and metric")
    _add_workdir(export)
    export.add_argument("--format", choices=["csv", "json"], default="csv")

    board = sub.add_parser("leaderboard", help="the static site").add_subparsers(dest="action", required=True)
    _add_workdir(board.add_parser("build", help="rebuild HTML, CSV and JSON from stored results"))

    data = sub.add_parser("data", help="the embedded datasets").add_subparsers(dest="action", required=True)
    demo = data.add_parser("demo", help="write the CT phantom (DICOM series, LiTS NIfTI, unlabeled corpus)")
    demo.add_argument("--out", required=True, type=Path)
    demo.add_argument("--seed", type=int, default=0)
    inspect = data.add_parser("inspect", help="JSON summary of a DICOM file, a DICOM series folder or a NIfTI file")
    inspect.add_argument("path", type=Path)
    preview = data.add_parser("preview", help="PNG contact sheet of sample slices per body region")
    preview.add_argument("root", type=Path)
    preview.add_argument("--out", required=True, type=Path)
    preview.add_argument("--per-region", type=int, default=3)

    tasks = sub.add_parser("tasks", help="registered tasks").add_subparsers(dest="action", required=True)
    tasks.add_parser("list", help="name, domain, kind, metric and source")
    checkpoints = sub.add_parser("checkpoints", help="registered checkpoints").add_subparsers(dest="action",
                                                                                           required=True)
    checkpoints.add_parser("list", help="name, architecture, pretraining domain and source")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from . import runner
    from .plugins import checkpoint_registry, task_registry
    from .specs import RunSpec

    tasks = args.tasks or [e.name for e in task_registry() if e.obj.spec.embedded]
    spec = RunSpec(
        checkpoints=args.checkpoints or checkpoint_registry().names(), tasks=tasks, protocols=args.protocols,
        scales=args.scales, seeds=args.seeds, profile=args.profile, device=args.device, data_roots=dict(args.data))
    workdir = Workdir.resolve(args.workdir)
    summary = runner.run(spec, workdir, log=_info)
    for job_id, error in summary.failed.items():
        _info(f"failed: {job_id}: {error}")
    index = _build_site(workdir)
    runner.require_success(summary)
    print(index)
    return 0


def _build_site(workdir: Workdir) -> Path:
    from leaderboard.site import build_site
    from .store import ResultStore

    index, warnings = build_site(ResultStore(workdir.results), workdir.site)
    for warning in warnings:
        _info(f"warning: {warning}")
    return index


def cmd_leaderboard(args: argparse.Namespace) -> int:
    print(_build_site(Workdir.resolve(args.workdir)))
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from .export import export
    from .store import ResultStore

    workdir = Workdir.resolve(args.workdir)
    if not workdir.results.is_dir():
        raise ConfigError("holds no results (run `ctbench run` first)", workdir.root)
    for warning in export(ResultStore(workdir.results), args.format, sys.stdout):
        _info(f"warning: {warning}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    if args.action == "inspect":
        from .inspect_data import inspect_path

        print(json.dumps(inspect_path(args.path), indent=2))
    elif args.action == "preview":
        from .preview import contact_sheet

        print(contact_sheet(args.root, args.out, per_region=args.per_region))
    else:
        from dataclasses import replace

        from benchmark.phantom import generate_dataset
        from tasks.embedded import PHANTOM

        if args.out.exists() and any(args.out.iterdir()):
            raise ConfigError("exists and is not empty; choose a new folder", args.out)
        print(generate_dataset(args.out, replace(PHANTOM, seed=args.seed)))
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from .plugins import task_registry

    rows = [(e.name, e.obj.spec.domain, e.obj.spec.kind, e.obj.spec.main_metric, e.source) for e in task_registry()]
    _print_table(("name", "domain", "kind", "metric", "source"), rows)
    return 0


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from .plugins import checkpoint_registry

    rows = [(e.name, e.obj.arch, e.obj.pretraining_domain, e.obj.method, e.source) for e in checkpoint_registry()]
    _print_table(("name", "arch", "pretraining", "method", "source"), rows)
    return 0


def _print_table(header: Sequence[str], rows: list[Sequence[str]]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


def _info(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


COMMANDS = {"run": cmd_run, "data": cmd_data, "results": cmd_results, "leaderboard": cmd_leaderboard, "tasks": cmd_tasks,
            "checkpoints": cmd_checkpoints}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CTBenchError as exc:
        if args.debug:
            raise
        print(f"ctbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ValidationError as exc:
        if args.debug:
            raise
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        print(f"ctbench: error: invalid {exc.title} {where}: {first['msg']}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `ctbench results export | head` closed our stdout: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("ctbench: interrupted; finished jobs are stored, run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
