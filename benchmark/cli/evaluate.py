"""``ctbench run`` (the grid) and ``ctbench submit`` (one new checkpoint on the suite)."""
from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from benchmark.catalog.registries import checkpoint_registry, task_registry
from benchmark.catalog.resolve import is_available
from benchmark.catalog.submissions import load_submissions, record_submission
from benchmark.cli.options import (
    BUDGET_UNITS,
    CONVENTION_NAMES,
    DEFAULT_PROTOCOL_NAMES,
    EXECUTORS,
    FORMAT_HELP,
    PRECISIONS,
    PRETRAINING_DOMAINS,
    PROTOCOL_NAMES,
    add_device,
    add_include,
    add_profile,
    add_workdir,
    csv_list,
    key_value,
    minutes,
    name_path,
    numbers,
    positive,
    slurm_minutes,
)
from benchmark.cli.output import info
from benchmark.cli.results import build_site
from benchmark.core.errors import ConfigError, CTBenchError
from benchmark.core.hashing import file_sha256
from benchmark.core.locks import exclusive
from benchmark.core.specs import INPUT_CONVENTIONS, CheckpointSpec, InputConvention, Pooling, RunSpec
from benchmark.core.workdir import Workdir
from benchmark.evaluation.profiles import PROFILES

if TYPE_CHECKING:  # the executors and the orchestration import torch: only once a command runs
    from benchmark.execution.executors import ExecOptions
    from benchmark.execution.orchestrate import RunSummary


def add_parser(sub) -> None:
    run = sub.add_parser("run", help="run the grid (default: the embedded suite) and build the leaderboard")
    _add_grid(run)
    run.add_argument("--checkpoints", type=csv_list, help="comma-separated names (default: the profile's and "
                     "submissions)")
    run.add_argument("--data", type=name_path, action="append", default=[], metavar="TASK=DIR",
                     help="where a task's dataset lives (repeatable)")
    run.add_argument("--analysis-task", help="after the jobs, run `ctbench analyze` on this task with the run's "
                     "checkpoints (default: phantom-body-region when the run includes it; 'none' to skip)")
    _add_execution(run)
    run.set_defaults(handler=cmd_run)

    submit = sub.add_parser("submit", help="evaluate a checkpoint file on the suite and put it on the leaderboard")
    submit.add_argument("file", type=Path, help="the checkpoint file, or a model folder (transformers' config.json "
                        "beside model.safetensors or pytorch_model.bin; the file is what is recorded)")
    submit.add_argument("--name", required=True)
    submit.add_argument("--arch", required=True, help="timm architecture, e.g. resnet50")
    submit.add_argument("--format", help=FORMAT_HELP)
    submit.add_argument("--pretraining-domain", choices=PRETRAINING_DOMAINS, default="mixed")
    submit.add_argument("--method", default="", help="pretraining method, e.g. simclr")
    submit.add_argument("--data", dest="pretraining_data", default="", help="what it was pretrained on")
    submit.add_argument("--input-channels", type=int, default=3)
    submit.add_argument("--input-convention", choices=CONVENTION_NAMES,
                        help="how the checkpoint was pretrained to see its input (default: the file's, by its format: "
                        "minmax_grey3 for the study's encoders, dinov2, clip, imagenet_rgb for most)")
    submit.add_argument("--mean", type=numbers(float), help="input normalisation (default: the convention's)")
    submit.add_argument("--std", type=numbers(float))
    submit.add_argument("--pooling", choices=get_args(Pooling),
                        help="how the output becomes one feature vector (default: the convention's; token and "
                             "token+avg need a class token)")
    submit.add_argument("--task-data", type=name_path, action="append", default=[], metavar="TASK=DIR")
    _add_grid(submit)
    _add_execution(submit)
    submit.set_defaults(handler=cmd_submit)


def _seeds(profile: str) -> str:
    return ",".join(str(seed) for seed in PROFILES[profile].seeds)


def _add_grid(parser: argparse.ArgumentParser) -> None:
    """Options shared by `run` and `submit`: what to evaluate on, how, and where."""
    add_workdir(parser)
    add_include(parser)
    add_device(parser)
    add_profile(parser)
    parser.add_argument("--tasks", type=csv_list, help="comma-separated task names (default: the embedded suite)")
    parser.add_argument("--protocols", type=csv_list, help=f"comma-separated, from {', '.join(PROTOCOL_NAMES)} "
                        f"(default: {','.join(DEFAULT_PROTOCOL_NAMES)})")
    parser.add_argument("--scales", type=numbers(float), help="label fractions, e.g. 1,0.1,0.01 (default: each task's)")
    parser.add_argument("--seeds", type=numbers(int), help=f"default: the profile's, {_seeds('demo')} for demo and "
                        f"{_seeds('paper')} for paper")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="autocast precision (auto: bf16 on CUDA where supported, fp32 on CPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models that train")
    parser.add_argument("--weights", type=name_path, action="append", default=[], metavar="NAME=FILE",
                        help="local weight file for a registered checkpoint, e.g. imagenet=resnet50.pth")
    parser.add_argument("--allow-download", action="store_true",
                        help="let the imagenet baseline download timm weights (needs a network)")
    parser.add_argument("--force-input-convention", choices=CONVENTION_NAMES,
                        help="an ablation: evaluate every checkpoint in this input convention instead of its own "
                        "(results record it and rank apart)")
    parser.add_argument("--budget-unit", choices=BUDGET_UNITS, default="patient",
                        help="draw label budgets by patient, nested (default), or by slice, redrawn per seed "
                        "(the study's)")
    parser.add_argument("--max-epochs", type=positive, help="cap every training recipe's epochs (a quick look at "
                        "a profile; results record it)")


def _add_execution(parser: argparse.ArgumentParser) -> None:
    """Where the jobs run; none of this changes a job's numbers on CPU."""
    group = parser.add_argument_group("execution")
    group.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="local: this machine (default); slurm: a job array through submitit; submitit-local: "
                       "the slurm code path in local subprocesses")
    group.add_argument("--jobs", type=positive, default=1, help="worker processes for local and submitit-local, "
                       "each pinned to one GPU when there are several (default 1: in this process)")
    group.add_argument("--threads", type=positive, default=1, help="CPU threads per job (default 1, so a job's "
                       "numbers do not depend on the core count or on --jobs; use --jobs for more cores)")
    group.add_argument("--devices-per-job", type=positive, default=1, metavar="N",
                       help="devices that train one job together through torch.distributed (DDP): local groups of "
                       "N processes (gloo on CPU, NCCL on GPUs), or N tasks per SLURM job; results do not "
                       "depend on N beyond float tolerance (default 1)")
    group.add_argument("--micro-batch", type=positive, metavar="N",
                       help="cap each device's micro-batch; gradient accumulation keeps the recipe's batch (results "
                       "record it: BatchNorm normalises per micro-batch). Default: the recipe's batch on CPU, "
                       "halved on CUDA until it fits")
    group.add_argument("--checkpoint-every", type=minutes, default=10.0, metavar="MIN",
                       help="a training job saves its resumable state this often, and when stopped (SIGTERM, "
                       "Ctrl-C, a SLURM time-out); a rerun resumes from it (default 10; 0: every step)")
    group.add_argument("--retry-failed", action="store_true", help="rerun only the jobs that failed before")
    group.add_argument("--no-wait", action="store_true", help="slurm: return once the array is submitted")
    group.add_argument("--slurm-partition")
    group.add_argument("--slurm-time", type=slurm_minutes, metavar="TIME",
                       help="time limit per array task, in sbatch's formats (default 4:00:00)")
    group.add_argument("--slurm-gpus-per-job", type=int, metavar="N", help="default 1")
    group.add_argument("--slurm-cpus-per-job", type=positive, metavar="N", help="default 8")
    group.add_argument("--slurm-array-parallelism", type=positive, metavar="N",
                       help="array tasks running at once (default 32)")
    group.add_argument("--slurm-account")
    group.add_argument("--slurm-extra", type=key_value, action="append", metavar="KEY=VALUE",
                       help="any other sbatch option, e.g. mem=64G or qos=high (repeatable)")


def default_tasks(data_roots: dict[str, Path]) -> list[str]:
    """The embedded suite, plus every real-data task the user pointed at its folder."""
    return [e.name for e in task_registry() if e.obj.spec.embedded or e.name in data_roots]


def default_checkpoints(workdir: Workdir, profile: str, weights: dict[str, Path], allow_download: bool) -> list[str]:
    """The profile's references and every submission, less those with no weights to be had."""
    wanted = [e for e in checkpoint_registry(workdir)
              if e.obj.demo == (profile == "demo") or e.source.startswith("submission")]
    missing = [e.name for e in wanted if not is_available(e.obj, weights, allow_download)]
    if missing:
        info(f"not evaluated, no weight file: {', '.join(missing)} (pass --weights NAME=FILE)")
    return [e.name for e in wanted if e.name not in missing]


DEFAULT_ANALYSIS_TASK = "phantom-body-region"


def evaluate(spec: RunSpec, workdir: Workdir, options: ExecOptions, analysis_task: str | None = None) -> int:
    from benchmark.execution import orchestrate

    summary = orchestrate.run(spec, workdir, log=info, options=options)
    if summary.submitted:
        info(f"submitted; `ctbench status --workdir {workdir.root}` follows the jobs, and "
             f"`ctbench leaderboard build --workdir {workdir.root}` builds the site once they are done")
        return 0
    for job_id, error in summary.failed.items():
        info(f"failed: {job_id}: {error}")
    if analysis_task in spec.tasks and options.executor == "slurm":
        info(f"the analysis of {analysis_task} trains models, so it is not run here on the submitting machine: "
             f"run `ctbench analyze --task {analysis_task}` in a job")
    elif analysis_task in spec.tasks:
        _analysis(spec, workdir, analysis_task, summary)
    index = build_site(workdir)
    orchestrate.require_success(summary)
    print(index)
    return 0


def _analysis(spec: RunSpec, workdir: Workdir, task: str, summary: RunSummary) -> None:
    """The feature-space analysis for the site, skipped when one of the same checkpoints is on disk.

    It is a report, not a job: a failure is a warning and the leaderboard is still built.
    """
    import json

    from benchmark.analysis import analysis_folder, analyze

    wanted = sorted({(j.checkpoint, j.checkpoint_sha256) for j in summary.jobs if j.task == task})
    folder = analysis_folder(workdir, task)
    with exclusive(folder, f"the analysis of {task}", info):  # a second run then finds it made
        existing = folder / "analysis.json"
        if existing.is_file():
            payload = json.loads(existing.read_text())
            done = sorted((c["name"], c["sha256"]) for c in payload.get("checkpoints", []))
            if done == wanted and payload.get("profile") == spec.profile:
                return
        try:
            analyze(workdir, [name for name, _ in wanted], task, spec, log=info)
        except CTBenchError as exc:
            info(f"warning: the analysis of {task} was not made: {exc}")


def _run_spec(args: argparse.Namespace, checkpoints: list[str], data_roots: dict[str, Path]) -> RunSpec:
    given = {"protocols": args.protocols}  # left out: RunSpec's default
    return RunSpec(checkpoints=checkpoints, tasks=args.tasks or default_tasks(data_roots), scales=args.scales,
                   seeds=args.seeds or list(PROFILES[args.profile].seeds),
                   profile=args.profile, device=args.device, precision=args.precision, compile=args.compile,
                   data_roots=data_roots, weights=dict(args.weights), allow_download=args.allow_download,
                   force_input_convention=args.force_input_convention, budget_unit=args.budget_unit,
                   max_epochs=args.max_epochs,
                   **{k: v for k, v in given.items() if v is not None})


def exec_options(args: argparse.Namespace) -> ExecOptions:
    """The execution flags, checked against the executor: a flag that would be ignored is an error."""
    from benchmark.execution.executors import ExecOptions, SlurmOptions

    names = [f.name for f in dataclasses.fields(SlurmOptions)]
    given = {name: getattr(args, "slurm_" + name) for name in names if getattr(args, "slurm_" + name) is not None}
    if args.executor != "slurm" and (given or args.no_wait):
        wrong = [f"--slurm-{name.replace('_', '-')}" for name in names if name in given]
        raise ConfigError(f"{', '.join(wrong + ['--no-wait'] * args.no_wait)} only apply to --executor slurm")
    if args.executor == "slurm" and args.jobs != 1:
        raise ConfigError("--jobs is for local executors; on SLURM use --slurm-array-parallelism")
    if args.devices_per_job > 1 and args.device == "cpu" and args.threads * args.devices_per_job > (os.cpu_count() or 1):
        info(f"note: {args.devices_per_job} CPU processes x {args.threads} thread(s) exceed this machine's "
             f"{os.cpu_count()} cores")
    given["extra"] = dict(given.get("extra", []))
    return ExecOptions(executor=args.executor, jobs=args.jobs, threads=args.threads, retry_failed=args.retry_failed,
                       wait=not args.no_wait, slurm=SlurmOptions(**given), debug=args.debug,
                       checkpoint_every_min=args.checkpoint_every, devices_per_job=args.devices_per_job,
                       micro_batch=args.micro_batch)


def cmd_run(args: argparse.Namespace) -> int:
    workdir = Workdir.resolve(args.workdir)
    options = exec_options(args)
    weights = dict(args.weights)
    checkpoints = args.checkpoints or default_checkpoints(workdir, args.profile, weights, args.allow_download)
    analysis_task = args.analysis_task or DEFAULT_ANALYSIS_TASK
    return evaluate(_run_spec(args, checkpoints, dict(args.data)), workdir, options,
                    None if analysis_task == "none" else analysis_task)


def _convention(args: argparse.Namespace, own: InputConvention) -> InputConvention:
    """The named convention, or the file's own (the study's encoders saw min-max grey, RadImageNet
    caffe-style BGR means, a transformers folder its preprocessor_config.json's); --mean/--std override
    its statistics, --pooling its pooling."""
    convention = INPUT_CONVENTIONS[args.input_convention] if args.input_convention else own
    changes: dict = {"channels": args.input_channels}
    if args.mean or args.std:
        if not (args.mean and args.std):
            raise ConfigError("--mean and --std are given together")
        changes.update(mean=tuple(args.mean), std=tuple(args.std))
    if args.pooling:
        changes["pooling"] = args.pooling
    try:
        return InputConvention.model_validate({**convention.model_dump(), **changes})
    except ValueError as exc:
        raise ConfigError(f"input convention: {exc}") from None


def cmd_submit(args: argparse.Namespace) -> int:
    from benchmark.models.backbones import TOKEN_POOLINGS, has_class_token
    from benchmark.models.formats import load_checkpoint, resolve_weight_file

    workdir = Workdir.resolve(args.workdir)
    options = exec_options(args)
    path = resolve_weight_file(args.file.expanduser().resolve())  # a model folder: its weight file, hashed
    if not path.is_file():
        raise ConfigError("checkpoint file does not exist", path)
    sha = file_sha256(path)
    for other, source in load_submissions(workdir.submissions):
        if other.sha256 == sha and other.name != args.name:
            raise ConfigError(f"this file was already submitted as {other.name!r} (same sha256, {source}); "
                              f"submit it again with --name {other.name}", path)
    # One safe read: refuses unreadable, mismatched or non-finite weights before anything is stored.
    prepared = load_checkpoint(path, args.arch, args.format, in_chans=args.input_channels)
    spec = CheckpointSpec(name=args.name, arch=args.arch, weights=path, sha256=sha, format=prepared.format,
                          pretraining_domain=args.pretraining_domain, method=args.method or prepared.method,
                          data=args.pretraining_data, input=_convention(args, prepared.convention))
    if spec.input.pooling in TOKEN_POOLINGS and not has_class_token(prepared.model):
        raise ConfigError(f"pooling {spec.input.pooling!r} reads a class token, and {args.arch} has none; "
                          "use --pooling avg or model", path)
    is_new = record_submission(workdir.submissions, spec)
    info(f"{'submitted' if is_new else 'already submitted (same sha256): reusing finished jobs of'} "
         f"{spec.name} (format {spec.format}: {prepared.format_reason}; sha256 {sha[:12]})")
    return evaluate(_run_spec(args, [spec.name], dict(args.task_data)), workdir, options)
