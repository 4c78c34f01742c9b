"""``ctbench results export`` and ``ctbench leaderboard build``."""
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
