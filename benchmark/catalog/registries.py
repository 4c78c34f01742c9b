"""The task and checkpoint registries: built-ins first, then installed entry points, then
task modules from include paths (``--include-path DIR`` or ``$CTBENCH_INCLUDE_PATH``), as
lm-evaluation-harness's ``--include_path`` adds task folders without installing anything.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional

from benchmark.catalog.submissions import load_submissions
from benchmark.core.errors import ConfigError, RegistryError
from benchmark.core.registry import Registry
from benchmark.core.specs import CheckpointSpec
from benchmark.core.workdir import Workdir
from benchmark.data.task import Task

TASK_GROUP = "ctbench.tasks"
CHECKPOINT_GROUP = "ctbench.checkpoints"
INCLUDE_ENV = "CTBENCH_INCLUDE_PATH"
_include_paths: list[Path] = []


def set_include_paths(folders: Iterable[Path]) -> None:
    """Folders of task modules to load besides the built-ins (the CLI's ``--include-path``)."""
    resolved = [Path(f).expanduser().resolve() for f in folders]
    for folder in resolved:
        if not folder.is_dir():
            raise ConfigError("is not a directory (given as an include path)", folder)
    _include_paths[:] = resolved
    task_registry.cache_clear()


def given_include_paths() -> list[Path]:
    """The ``--include-path`` folders alone; a worker process gets ``$CTBENCH_INCLUDE_PATH`` by inheritance."""
    return list(_include_paths)


def include_paths() -> list[Path]:
    from_env = [Path(p) for p in os.environ.get(INCLUDE_ENV, "").split(os.pathsep) if p]
    return [*_include_paths, *(p.expanduser().resolve() for p in from_env)]


@lru_cache(maxsize=1)
def task_registry() -> Registry[Task]:
    from tasks import builtin_tasks, tasks_of

    registry: Registry[Task] = Registry("task", lambda t: t.spec.name)
    for task in builtin_tasks():
        registry.add(task, f"built-in module {type(task).__module__}")
    registry.load_entry_points(TASK_GROUP)
    for folder in include_paths():
        for path in sorted(folder.glob("*.py")):
            if not path.name.startswith(("_", ".")):
                registry.add_many(tasks_of(_load_module(path)), f"include path {path}")
    return registry


def _load_module(path: Path):
    """Import one plugin file under a name unique to its path, so two folders may both hold tasks.py."""
    name = f"ctbench_include_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a broken plugin is named, not a traceback from deep inside importlib
        del sys.modules[name]
        raise RegistryError(f"cannot load task plugin {path}: {type(exc).__name__}: {exc}") from exc
    return module


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
