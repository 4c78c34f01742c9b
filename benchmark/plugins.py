"""The task and checkpoint registries: built-ins first, then installed entry points."""
from __future__ import annotations

from functools import lru_cache

from .registry import Registry
from .specs import CheckpointSpec
from .task import Task

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
def checkpoint_registry() -> Registry[CheckpointSpec]:
    from baselines import builtin_checkpoints

    registry: Registry[CheckpointSpec] = Registry("checkpoint", lambda c: c.name)
    registry.add_many(builtin_checkpoints(), "built-in package baselines")
    registry.load_entry_points(CHECKPOINT_GROUP)
    return registry
