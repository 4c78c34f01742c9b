"""A model folder, as the Hugging Face hub hands one out, to the one weight file ctbench reads.

A submission records a file and that file's sha256, so a folder given to ``submit`` or ``inspect``
becomes the weight file inside it (its ``config.json`` and ``preprocessor_config.json`` are read
beside that file by the formats). Sharded weights are refused: a spec has one file.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.core.errors import CheckpointError
from benchmark.models.formats import hf_transformers, open_clip_format

#: in the order they are looked for: transformers' (safetensors first), then open_clip's hub names
WEIGHT_FILES = hf_transformers.WEIGHT_FILES + open_clip_format.WEIGHT_FILES


def resolve_weight_file(path: Path | str) -> Path:
    """``path`` itself unless it is a folder; a folder's weight file, or a CheckpointError naming the folder."""
    path = Path(path)
    if not path.is_dir():
        return path
    found = next((path / name for name in WEIGHT_FILES if (path / name).is_file()), None)
    if found is not None:
        return found
    shards = sorted(p.name for p in path.glob("*.index.json"))
    if shards:
        raise CheckpointError(f"the folder holds sharded weights ({', '.join(shards)}); ctbench reads one file: "
                              "save the model again with a larger max_shard_size", path)
    raise CheckpointError(f"a folder without a weight file (looked for {', '.join(WEIGHT_FILES)}); "
                          "give the checkpoint file itself", path)
