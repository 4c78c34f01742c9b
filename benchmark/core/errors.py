"""User-facing failures: one line that names the file and the problem, and an exit code.

The CLI prints ``ctbench: error: <message>`` for these and exits with ``exit_code``;
anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

# Documented in the README; stable so scripts can branch on them.
EXIT_BAD_INPUT = 2
EXIT_BAD_CHECKPOINT = 3
EXIT_JOB_FAILED = 4
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (a scheduler's preemption or time limit, or `kill`): 128 + 15, as shells report it


class CTBenchError(Exception):
    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, path: Optional[Path | str] = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path is not None else message)


class ConfigError(CTBenchError):
    """A flag, spec or plugin that does not make sense."""


class RegistryError(ConfigError):
    """An unknown or duplicated task/checkpoint/protocol name."""


class DataError(CTBenchError):
    """A dataset file that cannot be read or does not match its task."""


class CheckpointError(CTBenchError):
    exit_code = EXIT_BAD_CHECKPOINT


class JobError(CTBenchError):
    exit_code = EXIT_JOB_FAILED
