"""Before any job runs: can each checkpoint's network take the run's image size at all?

A ViT whose patch or a Swin whose windows cannot tile the profile's size would otherwise fail
every one of its jobs with the same library assertion, after the data was prepared; one forward
pass of a blank batch per checkpoint finds that in a second and stops the run with one line.
A checkpoint that does not load is left to its jobs, which report it as they always have.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch

from benchmark.core.errors import ConfigError, CTBenchError
from benchmark.core.specs import CheckpointSpec


def check_input_size(checkpoints: Iterable[CheckpointSpec], size: int, log: Callable[[str], None]) -> None:
    """ConfigError naming the checkpoint, its architecture, the size and the cause, for the first that cannot."""
    from benchmark.models.load import load_backbone

    for spec in checkpoints:
        if spec.weights is None:
            continue
        try:
            with torch.random.fork_rng(devices=[]):
                model = load_backbone(spec, size)
        except CTBenchError:
            continue
        for note in model.ctbench_load.get("notes", []):
            if "padded" in note:
                log(f"{spec.name}: {note}")
        try:
            with torch.no_grad():
                model(torch.zeros(2, spec.input.channels, size, size))
        except Exception as exc:  # noqa: BLE001 - whatever the library raises, the user gets one line
            cause = " ".join(str(exc).split()) or type(exc).__name__
            raise ConfigError(f"checkpoint {spec.name} ({spec.arch}) cannot take the profile's {size} px input: "
                              f"{cause}") from None
