"""``ctbench run`` (the grid) and ``ctbench submit`` (one new checkpoint on the suite)."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from benchmark.catalog.registries import checkpoint_registry, task_registry
from benchmark.catalog.resolve import is_available
from benchmark.catalog.submissions import load_submissions, record_submission
from benchmark.cli.output import info
from benchmark.cli.results import build_site
from benchmark.core.errors import ConfigError, CTBenchError
from benchmark.core.hashing import file_sha256
from benchmark.core.locks import exclusive
from benchmark.core.specs import CheckpointSpec, InputConvention, RunSpec
from benchmark.core.workdir import Workdir
from benchmark.evaluation.profiles import PROFILES
from benchmark.execution import orchestrate
from benchmark.execution.executors import ExecOptions, SlurmOptions


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


def _analysis(spec: RunSpec, workdir: Workdir, task: str, summary: orchestrate.RunSummary) -> None:
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
                   **{k: v for k, v in given.items() if v is not None})


def exec_options(args: argparse.Namespace) -> ExecOptions:
    """The execution flags, checked against the executor: a flag that would be ignored is an error."""
    names = [f.name for f in dataclasses.fields(SlurmOptions)]
    given = {name: getattr(args, "slurm_" + name) for name in names if getattr(args, "slurm_" + name) is not None}
    if args.executor != "slurm" and (given or args.no_wait):
        wrong = [f"--slurm-{name.replace('_', '-')}" for name in names if name in given]
        raise ConfigError(f"{', '.join(wrong + ['--no-wait'] * args.no_wait)} only apply to --executor slurm")
    if args.executor == "slurm" and args.jobs != 1:
        raise ConfigError("--jobs is for local executors; on SLURM use --slurm-array-parallelism")
    given["extra"] = dict(given.get("extra", []))
    return ExecOptions(executor=args.executor, jobs=args.jobs, threads=args.threads, retry_failed=args.retry_failed,
                       wait=not args.no_wait, slurm=SlurmOptions(**given), debug=args.debug)


def cmd_run(args: argparse.Namespace) -> int:
    workdir = Workdir.resolve(args.workdir)
    options = exec_options(args)
    weights = dict(args.weights)
    checkpoints = args.checkpoints or default_checkpoints(workdir, args.profile, weights, args.allow_download)
    analysis_task = args.analysis_task or DEFAULT_ANALYSIS_TASK
    return evaluate(_run_spec(args, checkpoints, dict(args.data)), workdir, options,
                    None if analysis_task == "none" else analysis_task)


def cmd_submit(args: argparse.Namespace) -> int:
    from benchmark.models.formats import load_checkpoint

    workdir = Workdir.resolve(args.workdir)
    options = exec_options(args)
    path = args.file.expanduser().resolve()
    if not path.is_file():
        raise ConfigError("checkpoint file does not exist", path)
    sha = file_sha256(path)
    for other, source in load_submissions(workdir.submissions):
        if other.sha256 == sha and other.name != args.name:
            raise ConfigError(f"this file was already submitted as {other.name!r} (same sha256, {source}); "
                              f"submit it again with --name {other.name}", path)
    # One safe read: refuses unreadable, mismatched or non-finite weights before anything is stored.
    prepared = load_checkpoint(path, args.arch, args.format, in_chans=args.input_channels)
    hint = prepared.summary()["input_hint"]  # the format's own normalisation (RadImageNet differs from ImageNet)
    spec = CheckpointSpec(name=args.name, arch=args.arch, weights=path, sha256=sha, format=prepared.format,
                          pretraining_domain=args.pretraining_domain, method=args.method or prepared.method,
                          data=args.pretraining_data,
                          input=InputConvention(channels=args.input_channels, mean=tuple(args.mean or hint["mean"]),
                                                std=tuple(args.std or hint["std"])))
    is_new = record_submission(workdir.submissions, spec)
    info(f"{'submitted' if is_new else 'already submitted (same sha256): reusing finished jobs of'} "
         f"{spec.name} (format {spec.format}: {prepared.format_reason}; sha256 {sha[:12]})")
    return evaluate(_run_spec(args, [spec.name], dict(args.task_data)), workdir, options)
