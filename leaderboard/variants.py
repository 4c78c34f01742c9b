"""Results of runs that departed from a checkpoint's defaults become leaderboard entries of their own.

A run may force one input convention on every checkpoint (an ablation), draw budgets per slice
(the study's way) or cap the recipes' epochs. Such a row answers a different question than the
checkpoint's own, so it never shares a row, a mean or a significance test with it: its entry is
named after the checkpoint and the departure (``radnet+input-imagenet-rgb``), described as such,
and plays no baseline role.
"""
from __future__ import annotations

from typing import Any


def variant_suffix(job: Any) -> str:
    """"" for a job run the checkpoint's own way, else what it changed, as a name-safe suffix."""
    parts = []
    if getattr(job, "input_convention", None):
        parts.append("input-" + job.input_convention.replace("_", "-"))
    if getattr(job, "budget_unit", None) not in (None, "patient"):
        parts.append(f"budget-{job.budget_unit}")
    if getattr(job, "max_epochs", None):
        parts.append(f"epochs-{job.max_epochs}")
    return "+".join(parts)


def as_entry(result):
    """The result itself, or a copy filed under its variant's entry name."""
    suffix = variant_suffix(result.job)
    if not suffix:
        return result
    name = f"{result.job.checkpoint}+{suffix}"
    job = result.job.model_copy(update={"checkpoint": name})
    described = f"{result.checkpoint.get('description', '')} [run with {suffix.replace('+', ', ')}]".strip()
    checkpoint = result.checkpoint.model_copy(update={"name": name, "baseline_role": None,
                                                     "description": described})
    return result.model_copy(update={"job": job, "checkpoint": checkpoint})
