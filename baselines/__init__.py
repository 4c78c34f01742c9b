"""Reference checkpoints every submission is compared with.

``demo`` entries run in the demo profile on the embedded default; the others are the
study's references at paper scale. Weights ctbench can make itself (a seeded random
init, SimCLR on the embedded corpora) are materialised on first use; the ImageNet and
RadNet references need a local file (``--weights NAME=FILE``), or, for ImageNet, an
explicit ``--allow-download`` on a machine that can reach the model hub.
"""
from __future__ import annotations

from typing import Callable, Optional

from baselines.random_init import RANDOM_INIT_SEED
from benchmark.core.specs import CheckpointSpec

# name -> function(spec, workdir, allow_download) -> resolved CheckpointSpec with weights
Materializer = Callable[..., CheckpointSpec]


def builtin_checkpoints() -> list[CheckpointSpec]:
    return [
        CheckpointSpec(name="random", arch="test_resnet", pretraining_domain="none", method="random-init", data="none",
                       demo=True, description=f"timm default initialisation, torch seed {RANDOM_INIT_SEED}"),
        CheckpointSpec(name="demo-ct-simclr", arch="test_resnet", pretraining_domain="ct", method="simclr",
                       data="embedded CT phantom slice corpus", demo=True,
                       description="SimCLR on the phantom's unlabeled DICOM corpus: the RadNet stand-in"),
        CheckpointSpec(name="demo-natural-simclr", arch="test_resnet", pretraining_domain="natural", method="simclr",
                       data="embedded natural-image crops", demo=True,
                       description="SimCLR on crops of shipped photographs: the ImageNet stand-in"),
        CheckpointSpec(name="random-resnet50", arch="resnet50", pretraining_domain="none", method="random-init",
                       data="none", description=f"timm default initialisation, torch seed {RANDOM_INIT_SEED}"),
        CheckpointSpec(name="imagenet", arch="resnet50", pretraining_domain="natural", method="supervised",
                       data="ImageNet-1k", format="timm",
                       description="timm resnet50 ImageNet weights: a local file, or --allow-download"),
        CheckpointSpec(name="radnet", arch="resnet50", pretraining_domain="ct", method="simclr",
                       data="RadNet-12M", format="study",
                       description="the study's released SimCLR ResNet-50 encoder, from a local file"),
    ]


def materializer(name: str, allow_download: bool = False) -> Optional[Materializer]:
    """How to make a baseline's weights here, or None when only a user-named file will do."""
    from baselines import demo_simclr, imagenet, random_init

    makers: dict[str, Materializer] = {
        "random": random_init.materialize,
        "random-resnet50": random_init.materialize,
        "demo-ct-simclr": demo_simclr.materialize,
        "demo-natural-simclr": demo_simclr.materialize,
    }
    if allow_download:
        makers["imagenet"] = imagenet.download
    return makers.get(name)
