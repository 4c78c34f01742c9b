"""``ctbench results export``, ``ctbench rescore`` and ``ctbench leaderboard build``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError
from ..store import ResultStore
from ..workdir import Workdir
from . import info


def build_site(workdir: Workdir) -> Path:
    from leaderboard.site import build_site as render

    index, warnings = render(ResultStore(workdir.results), workdir.site)
    for warning in warnings:
        info(f"warning: {warning}")
    return index


def cmd_leaderboard(args: argparse.Namespace) -> int:
    print(build_site(Workdir.resolve(args.workdir)))
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from ..export import export

    workdir = Workdir.resolve(args.workdir)
    if not workdir.results.is_dir():
        raise ConfigError("holds no results (run `ctbench run` first)", workdir.root)
    for warning in export(ResultStore(workdir.results), args.format, sys.stdout):
        info(f"warning: {warning}")
    return 0


def cmd_rescore(args: argparse.Namespace) -> int:
    from ..rescore import rescore

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
