"""How the jobs run: which executor, how many workers and threads, and the SLURM settings."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

EXECUTORS = ("local", "submitit-local", "slurm")


@dataclass(frozen=True)
class SlurmOptions:
    """One field per ``--slurm-<field>`` flag (underscores as dashes)."""
    partition: Optional[str] = None
    time: int = 240  # minutes (--slurm-time takes sbatch's formats)
    gpus_per_job: int = 1
    cpus_per_job: int = 8
    array_parallelism: int = 32
    account: Optional[str] = None
    extra: dict[str, str] = field(default_factory=dict)  # more sbatch options, e.g. mem=64G, qos=high


@dataclass(frozen=True)
class ExecOptions:
    executor: str = "local"
    jobs: int = 1  # worker processes of local and submitit-local
    threads: Optional[int] = 1  # CPU threads per job (None: torch's default)
    retry_failed: bool = False
    wait: bool = True
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    debug: bool = False
    checkpoint_every_min: float = 10.0  # a training job saves its resumable state this often (0: every step)
    devices_per_job: int = 1  # devices (ranks of one torch.distributed group) that train one job
    micro_batch: Optional[int] = None  # caps a device's micro-batch (gradient accumulation fills the rest)

