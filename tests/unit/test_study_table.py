"""docs/reproducing-the-study.md against the code: every row marked "same" pins values the code must hold.

The page's tables compare the study (TIO-IKIM/Transfer-learning-across-domain-boundaries) with ctbench
point by point. A ``same`` row lists checks `` `path = value` ``: ``path`` is a dotted path into the
dict :func:`configuration` builds from the code (task names hold hyphens, never dots; a number indexes
a list), ``value`` a JSON literal. Paths under ``behaviour`` are small computations on the code (a
resize, a min-max, one training epoch), so that "same" means what the code does, not only what it says.
The page's commands must parse with ``ctbench``'s own parser, and every flag it names must exist.
"""
from __future__ import annotations

import json
import re
import shlex
from functools import lru_cache
from pathlib import Path

import pytest

from tests.fixtures.study_behaviour import behaviour

DOC = Path(__file__).resolve().parents[2] / "docs" / "reproducing-the-study.md"
COLUMNS = ("aspect", "the study", "ctbench", "same / different", "why", "pinned")
VERDICTS = ("same", "different")
PIN = re.compile(r"`([A-Za-z0-9_.-]+) = ([^`]+)`")
STUDY_FILE = re.compile(r"[\w./…<>-]+\.(?:py|yaml|md|ipynb|log|csv)\b")
CTBENCH_PATH = re.compile(r"\b(?:benchmark|tasks|baselines)/[\w/]+\.py\b")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]")


def _cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:-1] if body.endswith("|") else body[1:]
    return [cell.strip() for cell in body.split("|")]


def table_rows(text: str) -> list[dict]:
    """Rows of every table whose header has the study-table columns, with the line each is on."""
    rows, header = [], None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.lstrip().startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if header is None:
            header = [cell.lower() for cell in cells]
            continue
        if all(set(cell) <= set("-: ") for cell in cells) or not set(COLUMNS) <= set(header):
            continue
        assert len(cells) == len(header), f"line {number}: {len(cells)} cells under a {len(header)}-column header"
        rows.append({"line": number, **dict(zip(header, cells))})
    return rows


def pins(cell: str) -> list[tuple[str, str]]:
    return PIN.findall(cell)


ROWS = table_rows(DOC.read_text(encoding="utf-8")) if DOC.is_file() else []
PINS = [(row["line"], path, value) for row in ROWS if row["same / different"] == "same"
        for path, value in pins(row["pinned"])]


# --- the configuration the pins resolve in ------------------------------------------------------


@lru_cache(maxsize=1)
def configuration() -> dict:
    from baselines import builtin_checkpoints
    from benchmark.catalog.registries import task_registry
    from benchmark.cli.options import BUDGET_UNITS
    from benchmark.core.specs import DEFAULT_SEEDS, INPUT_CONVENTIONS, RunSpec
    from benchmark.data.slices import cache_stage
    from benchmark.evaluation import metrics
    from benchmark.evaluation.profiles import PROFILES
    from benchmark.evaluation.protocols import PROTOCOLS
    from benchmark.evaluation.recipes import STUDY_AUGMENTATION, STUDY_RECIPES
    from benchmark.models.formats.study import FORMAT as STUDY_FORMAT
    from benchmark.pretrain.recipe import STUDY_RECIPES as PRETRAIN_RECIPES
    from tasks import brats

    paper = PROFILES["paper"]
    registry = task_registry()
    task_entries = {}
    for name in registry.names():
        task = registry.get(name)
        spec = task.spec
        task_entries[name] = {
            "kind": spec.kind, "domain": spec.domain, "class_names": list(spec.class_names),
            "n_labels": len(spec.class_names), "metrics": list(spec.metrics), "main_metric": spec.main_metric,
            "metrics_study": [m for m in spec.metrics if m.startswith("dice_study_")],
            "regions": {k: list(v) for k, v in spec.regions.items()},
            "training": paper.training(spec.training).model_dump(mode="json"),
            "preprocessing": paper.preprocessing(spec.preprocessing).model_dump(mode="json"),
            "every_slice": getattr(task, "every_slice", None),
        }
    task_entries[brats.TASK.spec.name]["reader"] = {
        "channels": list(brats.CHANNELS), "percentiles": list(brats.PERCENTILES),
        "disk_to_class": [[disk, index] for disk, index in sorted(brats.DISK_TO_CLASS.items())],
    }
    brats_spec = brats.TASK.spec
    config = {
        "conventions": {name: c.model_dump(mode="json") for name, c in INPUT_CONVENTIONS.items()},
        "cache_stage": {name: cache_stage(c, "ct") for name, c in INPUT_CONVENTIONS.items()},
        "baselines": {spec.name: {"input": spec.input.name, "format": spec.format, "arch": spec.arch,
                                  "method": spec.method, "pretraining_domain": spec.pretraining_domain,
                                  "baseline_role": spec.baseline_role} for spec in builtin_checkpoints()},
        "formats": {"study": {"convention": STUDY_FORMAT.convention.name}},
        "tasks": task_entries,
        "recipes": {family: recipe.model_dump(mode="json") for family, recipe in STUDY_RECIPES.items()},
        "augmentations": {name: aug.model_dump(mode="json") for name, aug in STUDY_AUGMENTATION.items()},
        "paper": {"image_size": paper.image_size, "batch_size": paper.batch_size, "seeds": list(paper.seeds),
                  "decoder_channels": list(paper.decoder_channels), "training_overrides": paper.training_overrides},
        "run_defaults": {field: RunSpec.model_fields[field].default
                         for field in ("budget_unit", "force_input_convention", "max_epochs")}
        | {"seeds": list(DEFAULT_SEEDS)},
        "cli": {"budget_unit_choices": list(BUDGET_UNITS)},
        "study_dice": {"batch_size": metrics.STUDY_BATCH_SIZE, "eps": metrics.STUDY_EPS, "seed": metrics.STUDY_DICE_SEED,
                       "lits_targets": list(metrics.study_targets(["background", "liver", "tumour"])),
                       "brats_targets": list(metrics.study_targets(brats_spec.class_names, brats_spec.regions))},
        "protocols": {name: {"kinds": sorted(p.kinds), "uses_features": p.uses_features,
                             "freeze_encoder": getattr(p, "freeze_encoder", None),
                             "frozen_bn": getattr(p, "frozen_bn", None)}
                      for name, p in ((name, PROTOCOLS.get(name)) for name in PROTOCOLS.names())},
        "pretrain": {name: recipe.to_dict() for name, recipe in PRETRAIN_RECIPES.items()},
        "behaviour": behaviour(),
    }
    return json.loads(json.dumps(config))  # tuples as lists, as JSON has them


def resolve(config: dict, path: str):
    node = config
    for part in path.split("."):
        if isinstance(node, list) and re.fullmatch(r"-?\d+", part):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            known = sorted(node) if isinstance(node, dict) else type(node).__name__
            raise KeyError(f"{path}: no {part!r} here (have {known})")
    return node


def matches(actual, expected) -> bool:
    """JSON equality, with floats compared approximately; a bool is never a number."""
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, (int, float)):
        return (isinstance(actual, (int, float)) and not isinstance(actual, bool)
                and actual == pytest.approx(expected, rel=1e-9, abs=1e-12))
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(map(matches, actual, expected))
    if isinstance(expected, dict):
        return isinstance(actual, dict) and actual.keys() == expected.keys() and all(
            matches(actual[k], v) for k, v in expected.items())
    raise TypeError(f"unexpected JSON value {expected!r}")


# --- the tables -------------------------------------------------------------------------------------


def test_the_page_has_study_tables_with_same_rows():
    assert DOC.is_file(), DOC
    assert ROWS, "no table with the columns " + ", ".join(COLUMNS)
    assert any(row["same / different"] == "same" for row in ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[f"L{row['line']}" for row in ROWS])
def test_each_row_is_well_formed(row):
    verdict, pinned = row["same / different"], row["pinned"]
    assert verdict in VERDICTS, f"line {row['line']}: same / different is {verdict!r}"
    assert STUDY_FILE.search(row["the study"]), f"line {row['line']}: the study's cell cites no study file"
    assert CTBENCH_PATH.search(row["ctbench"]), f"line {row['line']}: the ctbench cell names no module path"
    if verdict == "same":
        assert pins(pinned), f"line {row['line']}: a 'same' row needs at least one pin"
        leftover = PIN.sub("", pinned).replace(";", "").strip()
        assert not leftover, f"line {row['line']}: pinned holds more than pins: {leftover!r}"
        assert not row["why"], f"line {row['line']}: 'why' is for rows that differ"
    else:
        assert not pinned, f"line {row['line']}: a 'different' row pins nothing"
        assert row["why"], f"line {row['line']}: a 'different' row says why"


@pytest.mark.parametrize("line, path, value", PINS, ids=[f"L{line}:{path}" for line, path, _ in PINS])
def test_pin_holds_in_the_code(line, path, value):
    expected = json.loads(value)
    actual = resolve(configuration(), path)
    assert matches(actual, expected), f"line {line}: {path} is {json.dumps(actual)}, the page pins {value}"


def test_pins_catch_a_changed_recipe(monkeypatch):
    """The table is read against the code as it is: a different LiTS rate in the recipe fails its pin."""
    from tasks.lits import LitsLiverSegmentationAllSlices

    path, pinned = "tasks.lits-liver-segmentation-all-slices.training.lr", "0.0002"
    assert (path, pinned) in [(p, v) for _, p, v in PINS]
    spec = LitsLiverSegmentationAllSlices.spec
    monkeypatch.setattr(LitsLiverSegmentationAllSlices, "spec", spec.model_copy(
        update={"training": spec.training.model_copy(update={"lr": 1e-3})}))
    assert not matches(resolve(configuration.__wrapped__(), path), json.loads(pinned))


def test_the_page_names_every_study_dice_key():
    from tasks.brats import TASK as BRATS
    from tasks.lits import SEGMENTATION_ALL_SLICES

    text = DOC.read_text(encoding="utf-8")
    keys = [m for task in (BRATS, SEGMENTATION_ALL_SLICES) for m in task.spec.metrics if m.startswith("dice_study_")]
    assert {"dice_study_background", "dice_study_ET", "dice_study_WT", "dice_study_TC"} <= set(keys)
    assert [k for k in keys if k not in text] == []


# --- the commands ------------------------------------------------------------------------------------


def _commands(text: str) -> list[str]:
    """``ctbench ...`` lines of the fenced code blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip().startswith("ctbench "):
                commands.append(command.strip())
    return commands


def _subparsers(parser):
    import argparse

    found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(found[0].choices) if found else {}


def _all_flags(parser) -> set[str]:
    flags = {s for a in parser._actions for s in a.option_strings}
    for sub in _subparsers(parser).values():
        flags |= _all_flags(sub)
    return flags


COMMANDS = _commands(DOC.read_text(encoding="utf-8")) if DOC.is_file() else []


def test_the_page_shows_the_grid_and_pretraining_commands():
    assert any(c.startswith("ctbench run ") for c in COMMANDS)
    assert any(c.startswith("ctbench pretrain ") for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=[c.split()[1] for c in COMMANDS])
def test_each_command_parses_with_its_own_flags(command):
    from benchmark.cli import main as cli

    parser = cli.build_parser()
    tokens = shlex.split(command)[1:]
    subparser = _subparsers(parser)[tokens[0]]
    accepted = {s for a in subparser._actions for s in a.option_strings}
    flags = [t.split("=")[0] for t in tokens if t.startswith("--")]
    assert [f for f in flags if f not in accepted] == [], "written out in full, not abbreviated"
    try:
        args = parser.parse_args(tokens)
    except SystemExit as exc:
        pytest.fail(f"`{command}` does not parse (exit {exc.code})")
    if tokens[0] == "run":
        _check_the_grid(args)


def _check_the_grid(args):
    from baselines import builtin_checkpoints
    from benchmark.catalog.registries import task_registry
    from benchmark.cli.evaluate import _run_spec
    from benchmark.evaluation.protocols import PROTOCOLS

    spec = _run_spec(args, args.checkpoints, dict(args.data))
    assert set(spec.tasks) <= set(task_registry().names())
    assert set(spec.protocols) <= set(PROTOCOLS.names())
    assert set(spec.checkpoints) <= {c.name for c in builtin_checkpoints()}
    assert set(spec.weights) <= set(spec.checkpoints) and set(spec.data_roots) == set(spec.tasks)
    assert (spec.profile, spec.budget_unit, spec.seeds, spec.precision) == ("paper", "slice", [42, 1, 2, 3], "fp16")
    assert {"linear-study", "seg-linear-study", "finetune", "seg-finetune"} <= set(spec.protocols)
    assert "lits-liver-segmentation-all-slices" in spec.tasks


def test_every_flag_the_page_names_exists():
    from benchmark.cli import main as cli

    named = set(FLAG.findall(DOC.read_text(encoding="utf-8")))
    assert named, "the page names no flags"
    assert sorted(named - _all_flags(cli.build_parser())) == []
