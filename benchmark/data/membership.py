"""A split's identity across labs: who is in which set, and nothing about whose copy it was.

A manifest's file sha256 covers its ``data_fingerprint`` (and a budget's, its split file's
sha256), so two labs holding the same public release in differently packed files get different
file hashes for the same patients. The membership hash covers only what a result depends on:
the task and its version, and the patient (or, for slice budgets, case) ids of each set, which
is what a published split fixes and what a leaderboard must compare on.
"""
from __future__ import annotations

from benchmark.core.hashing import canonical_hash

MEMBERSHIP_SCHEME = "ctbench-membership-v1"  # folded into every hash: a change of formula changes every hash


def split_membership(split: dict) -> str:
    """Of a ``split.json`` payload: test patients and the pool by stratum."""
    return canonical_hash({
        "scheme": MEMBERSHIP_SCHEME, "kind": "split", "task": split["task"], "task_version": split["task_version"],
        "test_patients": sorted(split["test_patients"]),
        "pool_strata": {name: sorted(members) for name, members in split["pool_strata"].items()},
    })


def budget_membership(budget: dict, split: dict) -> str:
    """Of a budget payload drawn in ``split``: its seed, scale, unit, hold-out and members, tied to
    the split's membership (not to the split file's sha256, which names the lab's copy)."""
    unit = budget.get("unit", "patient")
    members = {"train_patients": sorted(budget["train_patients"]), "val_patients": sorted(budget["val_patients"])}
    if unit == "slice":
        members.update(train_cases=sorted(budget["train_cases"]), val_cases=sorted(budget["val_cases"]))
    return canonical_hash({
        "scheme": MEMBERSHIP_SCHEME, "kind": "budget", "task": budget["task"], "task_version": budget["task_version"],
        "split": split_membership(split), "seed": int(budget["seed"]), "scale": float(budget["scale"]),
        "unit": unit, "holdout": bool(budget.get("holdout", True)), **members,
    })
