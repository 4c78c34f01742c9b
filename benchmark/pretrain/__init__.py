"""Self-supervised pretraining (SimCLR, BYOL) of a timm backbone on an unlabeled corpus.

``pretrain(corpus_dir, out.safetensors)`` writes the backbone weights and a sidecar JSON
with its CheckpointSpec; the demo baselines use ``DEMO_RECIPES``. Modules: ``corpus``
(decode once into memory), ``augment`` (batched SimCLR augmentations), ``methods``
(lightly heads and losses), ``train`` (loop, resume), ``output`` (weights + sidecar).

Only the recipe is imported eagerly: the training code pulls in lightly (seconds), which
a run that finds its demo baselines already trained never needs.
"""
from importlib import import_module

from benchmark.pretrain.recipe import DEMO_RECIPE, DEMO_RECIPES, METHODS, Recipe

_LAZY = {"Corpus": "corpus", "find_corpus_files": "corpus", "load_corpus": "corpus", "read_sidecar": "output",
         "sidecar_path": "output", "state_path": "output", "default_recipe": "train", "is_pretrained": "train",
         "pretrain": "train"}

__all__ = ["DEMO_RECIPE", "DEMO_RECIPES", "METHODS", "Recipe", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
