"""The CLI's parsers: every command is still there, each beside its handler, and the flags that take a
spec's Literal values offer exactly those values."""
import argparse
import subprocess
import sys
from typing import get_args

import pytest

from benchmark.cli import main as cli
from benchmark.cli import options
from benchmark.core.specs import DEFAULT_PROTOCOLS, CheckpointFormat, Precision, PretrainingDomain, Profile, RunSpec
from benchmark.pretrain.recipe import METHODS, Method
from tests.cli_helpers import REPO

COMMANDS = {
    "run": set(), "submit": set(), "status": set(), "data": {"demo", "index", "inspect", "preview"},
    "tasks": {"list", "show", "validate"}, "checkpoints": {"list", "inspect"}, "results": {"export", "import", "bundle"},
    "rescore": set(), "leaderboard": {"build", "export", "compare", "ingest"},
    "splits": {"make", "export", "import", "verify"},
    "analyze": set(), "pretrain": set(),
}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(found[0].choices) if found else {}


def _action(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


@pytest.fixture(scope="module")
def commands() -> dict[str, argparse.ArgumentParser]:
    return _subparsers(cli.build_parser())


def _parser(commands, path: str) -> argparse.ArgumentParser:
    command, _, action = path.partition(" ")
    return _subparsers(commands[command])[action] if action else commands[command]


def test_the_parser_has_the_same_commands_and_sub_commands(commands):
    assert {name: set(_subparsers(parser)) for name, parser in commands.items()} == COMMANDS


def test_each_command_has_a_handler_from_its_own_module(commands):
    for name, parser in commands.items():
        handler = parser.get_default("handler")
        assert callable(handler), name
        assert handler.__module__.startswith("benchmark.cli.") and handler.__module__ != "benchmark.cli.main", name


@pytest.mark.parametrize("path, flag, literal", [
    ("run", "--device", RunSpec.model_fields["device"].annotation),
    ("submit", "--device", RunSpec.model_fields["device"].annotation),
    ("analyze", "--device", RunSpec.model_fields["device"].annotation),
    ("run", "--profile", Profile), ("submit", "--profile", Profile), ("analyze", "--profile", Profile),
    ("splits make", "--profile", Profile),
    ("run", "--precision", Precision), ("submit", "--precision", Precision),
    ("submit", "--pretraining-domain", PretrainingDomain), ("pretrain", "--pretraining-domain", PretrainingDomain),
    ("pretrain", "--method", Method),
])
def test_choices_are_the_spec_literals(commands, path, flag, literal):
    assert tuple(_action(_parser(commands, path), flag).choices) == get_args(literal)


def test_the_literals_themselves_are_what_users_type():
    """A spec edit shows up here and in the CLI at once; this pins what the CLI accepts today."""
    assert get_args(RunSpec.model_fields["device"].annotation) == ("auto", "cpu", "cuda")
    assert get_args(Profile) == ("demo", "paper")
    assert get_args(Precision) == ("auto", "fp32", "bf16", "fp16")
    assert get_args(PretrainingDomain) == ("ct", "natural", "none", "mixed")
    assert get_args(Method) == METHODS


@pytest.mark.parametrize("path", ["run", "submit"])
def test_executor_choices_are_the_executors(commands, path):
    from benchmark.execution.executors.options import EXECUTORS

    assert tuple(_action(_parser(commands, path), "--executor").choices) == tuple(EXECUTORS) == options.EXECUTORS


@pytest.mark.parametrize("path", ["submit", "checkpoints inspect"])
def test_format_help_lists_every_checkpoint_format_but_leaves_unknown_names_to_the_registry(commands, path):
    action = _action(_parser(commands, path), "--format")
    assert action.choices is None  # an unknown format is a checkpoint error (exit 3), not a usage error
    assert all(fmt in action.help for fmt in get_args(CheckpointFormat))


def test_protocols_help_names_the_registered_protocols_and_the_default(commands):
    from benchmark.evaluation.protocols import PROTOCOLS

    assert set(options.PROTOCOL_NAMES) == set(PROTOCOLS.names())
    help_text = _action(commands["run"], "--protocols").help
    assert ", ".join(options.PROTOCOL_NAMES) in help_text and ",".join(DEFAULT_PROTOCOLS) in help_text


def test_analyze_compares_only_registered_protocols(commands):
    from benchmark.evaluation.protocols import PROTOCOLS

    assert set(_action(commands["analyze"], "--protocol").choices) <= set(PROTOCOLS.names())


def test_defaults_are_among_the_choices(commands):
    for name, parser in commands.items():
        for sub in [parser, *_subparsers(parser).values()]:
            for action in sub._actions:
                if action.choices and action.default is not None and not isinstance(action, argparse._SubParsersAction):
                    assert action.default in action.choices, (name, action.option_strings)


@pytest.mark.parametrize("argv", [["tasks", "list"], ["status", "--workdir", "{tmp}"], ["--help"]])
def test_light_commands_do_not_import_torch_or_monai(argv, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = ("import sys, runpy; sys.argv = ['ctbench', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('benchmark.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'monai'))\n"
            "print('HEAVY', heavy, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert "HEAVY []" in proc.stderr, proc.stderr[-2000:]
