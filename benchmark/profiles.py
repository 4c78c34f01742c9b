"""Run profiles: ``demo`` fits a laptop CPU in minutes, ``paper`` is the study's setting."""
from __future__ import annotations

from dataclasses import dataclass

from .specs import Preprocessing


@dataclass(frozen=True)
class ProfileSettings:
    name: str
    image_size: int
    batch_size: int

    def preprocessing(self, task_default: Preprocessing) -> Preprocessing:
        return task_default.model_copy(update={"size": self.image_size})


PROFILES = {
    "demo": ProfileSettings("demo", image_size=64, batch_size=64),
    "paper": ProfileSettings("paper", image_size=256, batch_size=128),
}
