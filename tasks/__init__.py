"""Built-in task plugins. Each module exposes ``TASK``, an instance of benchmark.task.Task."""
from __future__ import annotations

from benchmark.task import Task


def builtin_tasks() -> list[Task]:
    from . import natural_photos, phantom_liver, phantom_region

    return [phantom_region.TASK, phantom_liver.LESION_PRESENT, phantom_liver.SEGMENTATION, natural_photos.TASK]
