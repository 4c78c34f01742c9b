"""Built-in task plugins. Each module exposes ``TASK``, an instance of benchmark.task.Task."""
from __future__ import annotations

from benchmark.task import Task


def builtin_tasks() -> list[Task]:
    from . import phantom_region

    return [phantom_region.TASK]
