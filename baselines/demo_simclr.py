"""The two demo references: SimCLR on the embedded CT corpus and on the natural corpus.

Same method and architecture, different pretraining domain: on the embedded default
they play the study's RadNet-vs-ImageNet comparison in miniature. Each is trained once
and cached under a name that hashes the recipe and the corpus.
"""
from __future__ import annotations

import json

from benchmark.core.hashing import canonical_hash
from benchmark.core.specs import CheckpointSpec
from benchmark.core.workdir import Workdir


def _corpus(spec: CheckpointSpec, workdir: Workdir):
    from benchmark.synthetic.embedded import natural_dataset, phantom_dataset

    if spec.pretraining_domain == "ct":
        return phantom_dataset(workdir.data) / "corpus"
    return natural_dataset(workdir.data) / "corpus"


def materialize(spec: CheckpointSpec, workdir: Workdir, allow_download: bool = False) -> CheckpointSpec:
    from benchmark.pretrain import DEMO_RECIPES

    corpus = _corpus(spec, workdir)
    recipe = DEMO_RECIPES[spec.pretraining_domain].with_(arch=spec.arch)
    key = canonical_hash([recipe.to_dict(), corpus.parent.name])[:12]  # the folder name carries the data's hash
    out = workdir.checkpoints / f"{spec.name}-{key}.safetensors"
    sidecar = out.with_suffix(".json")
    if not (out.is_file() and sidecar.is_file()):
        from benchmark.pretrain import pretrain

        pretrain(corpus, out, recipe=recipe, name=spec.name, pretraining_domain=spec.pretraining_domain, demo=True)
    trained = CheckpointSpec.model_validate(json.loads(sidecar.read_text())["checkpoint"])
    return spec.model_copy(update={"weights": out, "input": trained.input})
