"""The task and checkpoint registries: built-ins first, then installed entry points."""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

from .registry import Registry
from .specs import CheckpointSpec
from .submissions import load_submissions
from .task import Task
from .workdir import Workdir

TASK_GROUP = "ctbench.tasks"
CHECKPOINT_GROUP = "ctbench.checkpoints"


@lru_cache(maxsize=1)
def task_registry() -> Registry[Task]:
    from tasks import builtin_tasks

    registry: Registry[Task] = Registry("task", lambda t: t.spec.name)
    for task in builtin_tasks():
        registry.add(task, f"built-in module {type(task).__module__}")
    registry.load_entry_points(TASK_GROUP)
    return registry


@lru_cache(maxsize=1)
def _installed_checkpoints() -> Registry[CheckpointSpec]:
    from baselines import builtin_checkpoints

    registry: Registry[CheckpointSpec] = Registry("checkpoint", lambda c: c.name)
    registry.add_many(builtin_checkpoints(), "built-in package baselines")
    registry.load_entry_points(CHECKPOINT_GROUP)
    return registry


def checkpoint_registry(workdir: Optional[Workdir] = None) -> Registry[CheckpointSpec]:
    """Built-ins and plugins, plus the checkpoints submitted to ``workdir`` (read fresh each call)."""
    registry = _installed_checkpoints().copy()
    if workdir is not None:
        for spec, path in load_submissions(workdir.submissions):
            registry.add(spec, f"submission {path}")
    return registry
