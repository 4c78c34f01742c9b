"""What several commands' parsers share: argument types, common options, and the choices of
flags that take a spec's ``Literal`` values, read from the specs so that the two cannot drift.

Everything here is cheap to import (argparse and pydantic): building the whole parser must
not pull in torch or MONAI, or ``ctbench status`` would pay for them.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import get_args

from benchmark.core.specs import (
    DEFAULT_PROTOCOLS,
    INPUT_CONVENTIONS,
    BudgetUnit,
    CheckpointFormat,
    Precision,
    PretrainingDomain,
    Profile,
    RunSpec,
)
from benchmark.core.workdir import DEFAULT_WORKDIR, ENV_VAR
from benchmark.execution.executors.options import EXECUTORS as _EXECUTORS
from benchmark.pretrain.recipe import STUDY_RECIPES, Method

DEVICES: tuple[str, ...] = get_args(RunSpec.model_fields["device"].annotation)
PROFILES: tuple[str, ...] = get_args(Profile)
PRECISIONS: tuple[str, ...] = get_args(Precision)
PRETRAINING_DOMAINS: tuple[str, ...] = get_args(PretrainingDomain)
CHECKPOINT_FORMATS: tuple[str, ...] = get_args(CheckpointFormat)
PRETRAINING_METHODS: tuple[str, ...] = get_args(Method)
STUDY_RECIPE_NAMES: tuple[str, ...] = tuple(STUDY_RECIPES)
EXECUTORS: tuple[str, ...] = tuple(_EXECUTORS)
BUDGET_UNITS: tuple[str, ...] = get_args(BudgetUnit)
CONVENTION_NAMES: tuple[str, ...] = tuple(INPUT_CONVENTIONS)
# The registry (benchmark.evaluation.protocols) imports torch; tests/unit/test_cli_parsers.py checks these names.
PROTOCOL_NAMES = ("linear", "knn", "finetune", "seg-linear", "seg-finetune", "linear-study", "seg-linear-study")
DEFAULT_PROTOCOL_NAMES: tuple[str, ...] = DEFAULT_PROTOCOLS
# Not argparse choices: an unknown name stays a checkpoint error (exit 3) from the format registry.
FORMAT_HELP = f"checkpoint format, one of {', '.join(CHECKPOINT_FORMATS)} (default: detected)"




def csv_list(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def numbers(kind: type):
    def parse(value: str) -> list:
        try:
            return [kind(v) for v in csv_list(value)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {value!r}") from None
    return parse


def name_path(value: str) -> tuple[str, Path]:
    name, sep, folder = value.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {value!r}")
    return name, Path(folder)


def slurm_minutes(value: str) -> int:
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


def key_value(value: str) -> tuple[str, str]:
    key, sep, item = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key.strip().lstrip("-"), item


def positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return number


def minutes(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of minutes (0 or more), got {value!r}")
    return number


def add_include(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--include-path", type=Path, action="append", default=[], metavar="DIR",
                        help="a folder of task plugin modules (*.py defining TASK or TASKS); repeatable")


def add_workdir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", help=f"data, caches, results and site (default ${ENV_VAR} or ./{DEFAULT_WORKDIR})")


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=DEVICES, default="auto")


def add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=PROFILES, default="demo")
