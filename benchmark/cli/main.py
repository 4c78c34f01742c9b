"""The ``ctbench`` command line: the parser and the error contract.

User errors end with one line on stderr and a documented exit code; ``--debug`` keeps
the traceback for bug reports. Each command lives in ``benchmark/cli/``.
"""
from __future__ import annotations

import argparse
import atexit
import os
import sys
from typing import Optional, Sequence

from pydantic import ValidationError

from benchmark import __version__
from benchmark.cli import analyze, catalog, data, evaluate, pretrain, results, splits, status
from benchmark.core.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_JOB_FAILED, EXIT_TERMINATED, CTBenchError
from benchmark.core.interrupts import Terminated, handle_sigterm

# Each module registers its commands with ``add_parser(subparsers)`` and sets ``handler`` on each; building the
# parser imports only their cheap parts: torch and MONAI are imported inside the handlers that need them.
COMMAND_MODULES = (evaluate, status, data, catalog, results, splits, analyze, pretrain)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ctbench", description="Does CT-domain pretraining beat ImageNet "
                                     "pretraining, and where does the domain boundary start to cost?")
    parser.add_argument("--version", action="version", version=f"ctbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.add_parser(sub)
    return parser


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
    handle_sigterm()  # a scheduler's SIGTERM takes Ctrl-C's path: workers stopped, training state saved
    try:
        if getattr(args, "include_path", None):
            from benchmark.catalog.registries import set_include_paths

            set_include_paths(args.include_path)
        return args.handler(args)
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
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (``Terminated``)
        if args.debug:
            raise
        terminated = isinstance(exc, Terminated)
        print(f"ctbench: {'terminated' if terminated else 'interrupted'}; finished jobs are stored, run the same "
              "command again to resume", file=sys.stderr)
        _forget_unhandled_interrupt()
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


def _forget_unhandled_interrupt() -> None:
    """CPython sets an "unhandled KeyboardInterrupt" flag when the interrupt leaves code it runs
    through ``PyRun_*``, and then kills itself with SIGINT at exit instead of returning 130. A
    Ctrl-C that lands while MONAI first imports torch._dynamo (an in-process job's first seconds)
    leaves it set although ctbench handled the interrupt. The next such evaluation resets it."""
    import ctypes

    ctypes.pythonapi.PyRun_SimpleString(b"pass")


if __name__ == "__main__":
    sys.exit(main())
