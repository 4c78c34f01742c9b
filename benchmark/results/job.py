"""A job's identity: which checkpoint, task, protocol, data scale, seed and profile.

A job id is a readable prefix plus a hash of everything that defines the job, so the
same job always lands in the same result file (which is how an interrupted run
resumes) and a re-submitted checkpoint with different bytes never collides.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from benchmark.core.hashing import canonical_hash
from benchmark.data.splits import MANIFEST_VERSION


@dataclass(frozen=True, order=True)
class Job:
    checkpoint: str
    checkpoint_sha256: str
    task: str
    task_version: str
    protocol: str
    protocol_version: str
    scale: float
    seed: int
    profile: str
    split_version: int = MANIFEST_VERSION  # a change to how splits are drawn must not reuse old results
    # Departures from a checkpoint's own input and the default budgets; each is in the id only when
    # set, so the ids of jobs that use none of them stay what they were.
    input_convention: str = ""  # a forced convention's name; "" = the checkpoint's own
    budget_unit: str = "patient"
    max_epochs: int = 0  # a run's cap on the recipes' epochs; 0 = none

    @property
    def job_id(self) -> str:
        digest = canonical_hash(self.identity())[:12]
        forced = f"--in-{self.input_convention}" if self.input_convention else ""
        return f"{self.task}--{self.protocol}--{self.checkpoint}{forced}--s{self.scale:g}--seed{self.seed}--{digest}"

    def identity(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in OPTIONAL or v != OPTIONAL[k]}

    def as_dict(self) -> dict:
        return {"job_id": self.job_id, **self.identity()}

    @classmethod
    def from_dict(cls, payload: dict) -> "Job":
        return cls(**{k: v for k, v in payload.items() if k != "job_id"})


OPTIONAL = {f.name: f.default for f in fields(Job) if f.name in ("input_convention", "budget_unit", "max_epochs")}
