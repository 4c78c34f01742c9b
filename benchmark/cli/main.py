"""The ``ctbench`` command line: the parser and the error contract.

User errors end with one line on stderr and a documented exit code; ``--debug`` keeps
the traceback for bug reports. Each command lives in ``benchmark/cli/``.
"""
from __future__ import annotations

import argparse
import atexit
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from pydantic import ValidationError

from benchmark import __version__
from benchmark.core.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_JOB_FAILED, CTBenchError
from benchmark.core.workdir import DEFAULT_WORKDIR, ENV_VAR


def _csv(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _numbers(kind: type):
    def parse(value: str) -> list:
        try:
            return [kind(v) for v in _csv(value)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {value!r}") from None
    return parse


def _name_path(value: str) -> tuple[str, Path]:
    name, sep, folder = value.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {value!r}")
    return name, Path(folder)


def _slurm_minutes(value: str) -> int:
    """sbatch's --time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S; rounded up to whole minutes."""
    days, _, clock = value.rpartition("-") if "-" in value else ("0", "", value)
    try:
        parts = [int(p) for p in clock.split(":")]
        days_n = int(days)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a SLURM time such as 240, 4:00:00 or 1-12:00, got {value!r}") \
            from None
    if "-" in value:
        hours, minutes, seconds = (parts + [0, 0])[:3]
    else:
        hours, minutes, seconds = {1: [0, parts[0], 0], 2: [0, *parts], 3: parts}.get(len(parts), [None] * 3)
    if hours is None or min(days_n, hours, minutes, seconds) < 0:
        raise argparse.ArgumentTypeError(f"expected a SLURM time such as 240, 4:00:00 or 1-12:00, got {value!r}")
    total = days_n * 1440 + hours * 60 + minutes + (seconds > 0)
    if total < 1:
        raise argparse.ArgumentTypeError(f"a SLURM time limit must be at least a minute, got {value!r}")
    return total


def _key_value(value: str) -> tuple[str, str]:
    key, sep, item = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key.strip().lstrip("-"), item


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return number


def _add_execution(parser: argparse.ArgumentParser) -> None:
    """Where the jobs run; none of this changes a job's numbers on CPU."""
    group = parser.add_argument_group("execution")
    group.add_argument("--executor", choices=["local", "submitit-local", "slurm"], default="local",
                       help="local: this machine (default); slurm: a job array through submitit; submitit-local: "
                       "the slurm code path in local subprocesses")
    group.add_argument("--jobs", type=_positive, default=1, help="worker processes for local and submitit-local, "
                       "each pinned to one GPU when there are several (default 1: in this process)")
    group.add_argument("--threads", type=_positive, default=1, help="CPU threads per job (default 1, so a job's "
                       "numbers do not depend on the core count or on --jobs; use --jobs for more cores)")
    group.add_argument("--retry-failed", action="store_true", help="rerun only the jobs that failed before")
    group.add_argument("--no-wait", action="store_true", help="slurm: return once the array is submitted")
    group.add_argument("--slurm-partition")
    group.add_argument("--slurm-time", type=_slurm_minutes, metavar="TIME",
                       help="time limit per array task, in sbatch's formats (default 4:00:00)")
    group.add_argument("--slurm-gpus-per-job", type=int, metavar="N", help="default 1")
    group.add_argument("--slurm-cpus-per-job", type=_positive, metavar="N", help="default 8")
    group.add_argument("--slurm-array-parallelism", type=_positive, metavar="N",
                       help="array tasks running at once (default 32)")
    group.add_argument("--slurm-account")
    group.add_argument("--slurm-extra", type=_key_value, action="append", metavar="KEY=VALUE",
                       help="any other sbatch option, e.g. mem=64G or qos=high (repeatable)")


def _add_include(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--include-path", type=Path, action="append", default=[], metavar="DIR",
                        help="a folder of task plugin modules (*.py defining TASK or TASKS); repeatable")


def _add_workdir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", help=f"data, caches, results and site (default ${ENV_VAR} or ./{DEFAULT_WORKDIR})")


def _add_grid(parser: argparse.ArgumentParser) -> None:
    """Options shared by `run` and `submit`: what to evaluate on, how, and where."""
    _add_workdir(parser)
    _add_include(parser)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--profile", choices=["demo", "paper"], default="demo")
    parser.add_argument("--tasks", type=_csv, help="comma-separated task names (default: the embedded suite)")
    parser.add_argument("--protocols", type=_csv, help="comma-separated, from linear, knn, finetune, seg-linear, "
                        "seg-finetune (default: linear,finetune,seg-linear,seg-finetune)")
    parser.add_argument("--scales", type=_numbers(float), help="label fractions, e.g. 1,0.1,0.01 (default: each task's)")
    parser.add_argument("--seeds", type=_numbers(int), help="default: the profile's, 42,1,2 for demo and 42,1,2,3 for paper")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                        help="autocast precision (auto: bf16 on CUDA where supported, fp32 on CPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models that train")
    parser.add_argument("--weights", type=_name_path, action="append", default=[], metavar="NAME=FILE",
                        help="local weight file for a registered checkpoint, e.g. imagenet=resnet50.pth")
    parser.add_argument("--allow-download", action="store_true",
                        help="let the imagenet baseline download timm weights (needs a network)")


def _add_run(sub) -> None:
    run = sub.add_parser("run", help="run the grid (default: the embedded suite) and build the leaderboard")
    _add_grid(run)
    run.add_argument("--checkpoints", type=_csv, help="comma-separated names (default: the profile's and submissions)")
    run.add_argument("--data", type=_name_path, action="append", default=[], metavar="TASK=DIR",
                     help="where a task's dataset lives (repeatable)")
    run.add_argument("--analysis-task", help="after the jobs, run `ctbench analyze` on this task with the run's "
                     "checkpoints (default: phantom-body-region when the run includes it; 'none' to skip)")
    _add_execution(run)


def _add_submit(sub) -> None:
    submit = sub.add_parser("submit", help="evaluate a checkpoint file on the suite and put it on the leaderboard")
    submit.add_argument("file", type=Path)
    submit.add_argument("--name", required=True)
    submit.add_argument("--arch", required=True, help="timm architecture, e.g. resnet50")
    submit.add_argument("--format", help="checkpoint format (default: detected)")
    submit.add_argument("--pretraining-domain", choices=["ct", "natural", "none", "mixed"], default="mixed")
    submit.add_argument("--method", default="", help="pretraining method, e.g. simclr")
    submit.add_argument("--data", dest="pretraining_data", default="", help="what it was pretrained on")
    submit.add_argument("--input-channels", type=int, default=3)
    submit.add_argument("--mean", type=_numbers(float), help="input normalisation (default: the format's, "
                        "ImageNet's for most)")
    submit.add_argument("--std", type=_numbers(float))
    submit.add_argument("--task-data", type=_name_path, action="append", default=[], metavar="TASK=DIR")
    _add_grid(submit)
    _add_execution(submit)


def _add_status(sub) -> None:
    status = sub.add_parser("status", help="done, running, pending and failed jobs of the last run's grid, per "
                            "task and checkpoint, with each failure's error and log")
    _add_workdir(status)
    status.add_argument("--json", action="store_true")


def _add_data(sub) -> None:
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


def _add_catalog(sub) -> None:
    tasks = sub.add_parser("tasks", help="registered tasks").add_subparsers(dest="action", required=True)
    _add_include(tasks.add_parser("list", help="name, domain, kind, metric and source"))
    show = tasks.add_parser("show", help="a task's spec and the on-disk layout it expects")
    show.add_argument("name")
    _add_include(show)
    validate = tasks.add_parser("validate", help="check a dataset folder; one line per problem, exit 2 if any")
    validate.add_argument("name")
    validate.add_argument("--data", required=True, type=Path, metavar="DIR")
    _add_include(validate)
    checkpoints = sub.add_parser("checkpoints", help="checkpoints").add_subparsers(dest="action", required=True)
    _add_workdir(checkpoints.add_parser("list", help="registered and submitted checkpoints"))
    inspect = checkpoints.add_parser("inspect", help="format, keys, sha256 and finiteness of a checkpoint file")
    inspect.add_argument("file", type=Path)
    inspect.add_argument("--arch", help="timm architecture (default: inferred)")
    inspect.add_argument("--format", help="checkpoint format (default: detected)")
    inspect.add_argument("--json", action="store_true")


def _add_results(sub) -> None:
    results = sub.add_parser("results", help="stored results").add_subparsers(dest="action", required=True)
    export = results.add_parser("export", help="print one row per job and metric")
    _add_workdir(export)
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    imports = results.add_parser("import", help="add per-seed rows computed elsewhere (the `results export` "
                                 "columns, optionally task_domain, checkpoint_domain, source) to the leaderboard")
    imports.add_argument("file", type=Path)
    _add_workdir(imports)
    rescore = sub.add_parser("rescore", help="recompute every result's metrics from its saved predictions")
    _add_workdir(rescore)
    rescore.add_argument("--check", action="store_true", help="only compare; exit 1 if a stored metric differs")
    board = sub.add_parser("leaderboard", help="the static site").add_subparsers(dest="action", required=True)
    build = board.add_parser("build", help="rebuild HTML, CSV and JSON from stored and imported results")
    _add_workdir(build)
    build.add_argument("--out", type=Path, help="where to write the site (default: <workdir>/site)")
    board_export = board.add_parser("export", help="print the aggregate table: per cell n, mean, std, 95 %% CI, "
                                    "and the relative difference and Welch p against each baseline")
    _add_workdir(board_export)
    board_export.add_argument("--format", choices=["csv", "json"], default="csv")
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
    _add_workdir(compare)


def _add_splits(sub) -> None:
    splits = sub.add_parser("splits", help="split manifests").add_subparsers(dest="action", required=True)
    make = splits.add_parser("make", help="write a task's split and nested label-budget manifests")
    make.add_argument("task")
    make.add_argument("--data", type=Path, metavar="DIR", help="the dataset folder (embedded tasks: none)")
    make.add_argument("--profile", choices=["demo", "paper"], default="demo")
    make.add_argument("--seeds", type=_numbers(int), help="default: the profile's")
    make.add_argument("--scales", type=_numbers(float), help="default: 1,0.5,0.1,0.01 and the task's own")
    _add_workdir(make)
    _add_include(make)
    verify = splits.add_parser("verify", help="prove no patient is in two sets and every count holds")
    _add_workdir(verify)


def _add_analyze(sub) -> None:
    analyze = sub.add_parser("analyze", help="feature reuse, checkpoint similarity, filter uniqueness and "
                             "who-knew-what on one task (SVGs and JSON under WORKDIR/analysis/TASK)")
    _add_workdir(analyze)
    _add_include(analyze)
    analyze.add_argument("--task", help="a classification or multilabel task (default: phantom-body-region)")
    analyze.add_argument("--checkpoints", type=_csv, help="comma-separated names (default: those with results "
                         "for the task, else the profile's references)")
    analyze.add_argument("--profile", choices=["demo", "paper"], default="demo")
    analyze.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    analyze.add_argument("--protocol", choices=["finetune", "linear", "knn"], default="finetune",
                         help="whose stored predictions who-knew-what compares (default: finetune)")
    analyze.add_argument("--scale", type=float, default=1.0, help="data scale of the reuse finetune and of the "
                         "compared job (default 1)")
    analyze.add_argument("--seed", type=int, default=42, help="seed of the reuse finetune and of the compared job")
    analyze.add_argument("--max-cases", type=int, default=512, help="test slices compared, evenly spaced")
    analyze.add_argument("--weights", type=_name_path, action="append", default=[], metavar="NAME=FILE")
    analyze.add_argument("--data", type=_name_path, action="append", default=[], metavar="TASK=DIR")


def _add_pretrain(sub) -> None:
    pretrain = sub.add_parser("pretrain", help="self-supervised pretraining on a folder of DICOM slices or images")
    pretrain.add_argument("--corpus", required=True, type=Path)
    pretrain.add_argument("--method", choices=["simclr", "byol"], default="simclr")
    pretrain.add_argument("--arch")
    pretrain.add_argument("--epochs", type=int)
    pretrain.add_argument("--batch-size", type=int)
    pretrain.add_argument("--image-size", type=int)
    pretrain.add_argument("--seed", type=int)
    pretrain.add_argument("--name")
    pretrain.add_argument("--pretraining-domain", choices=["ct", "natural", "none", "mixed"])
    pretrain.add_argument("--out", required=True, type=Path, help="the .safetensors backbone to write")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ctbench", description="Does CT-domain pretraining beat ImageNet "
                                     "pretraining, and where does the domain boundary start to cost?")
    parser.add_argument("--version", action="version", version=f"ctbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_submit, _add_status, _add_data, _add_catalog, _add_results, _add_splits, _add_analyze,
                _add_pretrain):
        add(sub)
    return parser


_COMMANDS = {"run": ("evaluate", "cmd_run"), "submit": ("evaluate", "cmd_submit"), "status": ("status", "cmd_status"),
             "data": ("data", "cmd_data"), "results": ("results", "cmd_results"),
             "leaderboard": ("results", "cmd_leaderboard"), "rescore": ("results", "cmd_rescore"),
             "splits": ("splits", "cmd_splits"), "analyze": ("analyze", "cmd_analyze"), "tasks": ("catalog", "cmd_tasks"),
             "checkpoints": ("catalog", "cmd_checkpoints"), "pretrain": ("pretrain", "cmd_pretrain")}


def _command(name: str):
    """Only the command's own module is imported: `ctbench status` or `ctbench tasks list`
    should not pay for torch and MONAI, which the training commands import."""
    from importlib import import_module

    module, function = _COMMANDS[name]
    return getattr(import_module(f"benchmark.cli.{module}"), function)


def _quick_exit() -> None:
    """At exit, the interpreter's last garbage collections walk every object torch, MONAI and
    scikit-learn made: a second or more after the work is done, and after a Ctrl-C. Frozen objects
    are skipped. Nothing is lost: ctbench's files are closed by then, and atexit still flushes logs."""
    import gc

    gc.freeze()


def main(argv: Optional[Sequence[str]] = None) -> int:
    atexit.unregister(_quick_exit)  # once, however often main runs in one process (tests call it in-process)
    atexit.register(_quick_exit)
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "include_path", None):
            from benchmark.catalog.registries import set_include_paths

            set_include_paths(args.include_path)
        return _command(args.command)(args)
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
    except OSError as exc:
        from benchmark.core.atomic import disk_full_message, is_disk_full

        if args.debug or not is_disk_full(exc):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"ctbench: error: {where}{disk_full_message(exc)}", file=sys.stderr)
        return EXIT_JOB_FAILED
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("ctbench: interrupted; finished jobs are stored, run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
