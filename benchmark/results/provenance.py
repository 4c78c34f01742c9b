"""Where a number came from: code version, packages, machine settings."""
from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from benchmark import __version__

if TYPE_CHECKING:
    from benchmark.evaluation.accel import Accelerator

PACKAGES = ("torch", "torchvision", "timm", "monai", "numpy", "scikit-learn", "scipy", "pydicom", "nibabel",
            "safetensors", "pydantic")


@lru_cache(maxsize=1)
def git_state() -> dict:
    """Commit and dirty flag of the source tree ctbench runs from (None outside a checkout)."""
    src = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def collect(accel: "Accelerator", batch_size: int) -> dict:
    device = accel.device
    return {
        "ctbench_version": __version__,
        "git": git_state(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "precision": accel.precision,
        "channels_last": accel.channels_last,
        "compile": accel.compile,
        "batch_size": batch_size,
    }
