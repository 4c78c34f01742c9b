"""A job's identity: which checkpoint, task, protocol, data scale, seed and profile.

A job id is a readable prefix plus a hash of everything that defines the job, so the
same job always lands in the same result file (which is how an interrupted run
resumes) and a re-submitted checkpoint with different bytes never collides.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

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

    @property
    def job_id(self) -> str:
        digest = canonical_hash(asdict(self))[:12]
        return f"{self.task}--{self.protocol}--{self.checkpoint}--s{self.scale:g}--seed{self.seed}--{digest}"

    def as_dict(self) -> dict:
        return {"job_id": self.job_id, **asdict(self)}

    @classmethod
    def from_dict(cls, payload: dict) -> "Job":
        return cls(**{k: v for k, v in payload.items() if k != "job_id"})
