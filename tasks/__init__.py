"""Built-in task plugins. Each module exposes ``TASK`` (a benchmark.data.task.Task) or ``TASKS`` (a list).

Modules are discovered, not listed, so a new dataset adapter is one new file.
"""
from __future__ import annotations

import importlib
import pkgutil

from benchmark.core.errors import RegistryError
from benchmark.data.task import Task


def builtin_tasks() -> list[Task]:
    found: list[Task] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "embedded":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found += tasks_of(module)
    return found


def tasks_of(module) -> list[Task]:
    """``TASKS`` and/or ``TASK`` of a plugin module, checked to be Task instances."""
    tasks = list(getattr(module, "TASKS", [])) + ([module.TASK] if hasattr(module, "TASK") else [])
    for task in tasks:
        if not isinstance(task, Task):
            raise RegistryError(f"{getattr(module, '__file__', module.__name__)}: {task!r} is not a benchmark.data.task.Task")
    return tasks
