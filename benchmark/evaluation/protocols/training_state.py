"""A training job's resumable state: saved every few minutes and when the job is stopped, read
back when the same job runs again, deleted once its result is written.

It holds the model, optimiser, schedule and gradient scaler, the random generators, the epoch
and step, the epoch's data order and everything model selection and the record have gathered,
so a job killed at any step and resumed gives the bytes an uninterrupted run gives (on CPU).
Written atomically (a kill mid-save leaves the previous state), read with
``torch.load(weights_only=True)``: tensors and plain types only, never arbitrary objects.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmark.core.atomic import atomic_open, write_json

STATE_VERSION = 1
DEFAULT_EVERY_MIN = 10.0
logger = logging.getLogger(__name__)


@dataclass
class Checkpointing:
    """Where a job's training state lives and how often it is saved.

    ``identity`` is what a saved state must match to be resumed (the job, and the set-up that
    shapes its steps: world size, micro-batch, device type, precision); a state from another
    set-up is set aside with a warning, and training starts over.
    """

    path: Path
    every_s: float = DEFAULT_EVERY_MIN * 60
    identity: dict = field(default_factory=dict)
    _last: float = field(default_factory=time.monotonic)

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_s

    def save(self, state: dict) -> None:
        """The state, then a small JSON beside it (``<job>.pt.json``) that ``ctbench status`` reads
        without loading hundreds of megabytes; it is advisory, the ``.pt`` is what resumes."""
        with atomic_open(self.path, "wb") as handle:
            torch.save({"version": STATE_VERSION, "identity": self.identity, **state}, handle)
        write_json(self.summary_path, {"epoch": state["epoch"], "step": state["done"],
                                       "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        self._last = time.monotonic()
        logger.info("saved training state at epoch %d, step %d", state["epoch"], state["done"])

    @property
    def summary_path(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    def load(self) -> dict | None:
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - truncated, foreign or unsafe: never trusted, recomputed
            logger.warning("training state %s cannot be resumed (%s); training from the start",
                           self.path, str(exc).splitlines()[0][:200])
            return None
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION \
                or state.get("identity") != self.identity:
            logger.warning("training state %s was saved by another set-up (%s); training from the start",
                           self.path, state.get("identity") if isinstance(state, dict) else "not a state")
            return None
        return state

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.summary_path.unlink(missing_ok=True)


def rng_states(device: torch.device) -> dict:
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states: dict, device: torch.device) -> None:
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)
