"""Reference checkpoints every submission is compared with.

``demo`` entries run in the demo profile on the embedded default; the others are the
study's references at paper scale. Weights ctbench can make itself (a seeded random
init, SimCLR on the embedded corpora) are materialised on first use; the ImageNet and
RadNet references need a local file (``--weights NAME=FILE``), or, for ImageNet, an
explicit ``--allow-download`` on a machine that can reach the model hub.

Each baseline is its spec next to the function that makes its weights, so a name is written
once; ``baseline_role`` on the spec says which leaderboard reference it plays.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from baselines import demo_simclr, imagenet, random_init
from baselines.random_init import RANDOM_INIT_SEED
from benchmark.core.specs import INPUT_CONVENTIONS, CheckpointSpec

STUDY_INPUT = INPUT_CONVENTIONS["minmax_grey3"]

# function(spec, workdir, allow_download) -> resolved CheckpointSpec with weights
Materializer = Callable[..., CheckpointSpec]


@dataclass(frozen=True)
class Baseline:
    spec: CheckpointSpec
    #: how ctbench makes the weights here; None when only a user-named file will do
    make: Optional[Materializer] = None
    #: ``make`` fetches from the model hub: used only when the user allows downloads
    downloads: bool = False


_BASELINES = (
    Baseline(CheckpointSpec(name="random", arch="test_resnet", pretraining_domain="none", method="random-init",
                            data="none", demo=True, baseline_role="random",
                            description=f"timm default initialisation, torch seed {RANDOM_INIT_SEED}"),
             random_init.materialize),
    Baseline(CheckpointSpec(name="demo-ct-simclr", arch="test_resnet", pretraining_domain="ct", method="simclr",
                            data="embedded CT phantom slice corpus", demo=True,
                            description="SimCLR on the phantom's unlabeled DICOM corpus: the RadNet stand-in"),
             demo_simclr.materialize),
    Baseline(CheckpointSpec(name="demo-natural-simclr", arch="test_resnet", pretraining_domain="natural",
                            method="simclr", data="embedded natural-image crops", demo=True, baseline_role="natural",
                            description="SimCLR on crops of shipped photographs: the ImageNet stand-in"),
             demo_simclr.materialize),
    # A transformer beside the demo's ResNets: timm's test_vit (patch 16, width 64, 6 blocks, 0.3M parameters,
    # about test_resnet's cost per job), randomly initialised, so the demo exercises every protocol on a ViT.
    Baseline(CheckpointSpec(name="random-vit", arch="test_vit", pretraining_domain="none", method="random-init",
                            data="none", demo=True,
                            description=f"timm default initialisation of test_vit, torch seed {RANDOM_INIT_SEED}"),
             random_init.materialize),
    Baseline(CheckpointSpec(name="random-resnet50", arch="resnet50", pretraining_domain="none", method="random-init",
                            data="none", baseline_role="random", input=STUDY_INPUT,
                            description=f"timm default initialisation, torch seed {RANDOM_INIT_SEED}; fed the "
                                        "study's input, as the study fed its random init"),
             random_init.materialize),
    Baseline(CheckpointSpec(name="imagenet", arch="resnet50", pretraining_domain="natural", method="supervised",
                            data="ImageNet-1k", format="timm", baseline_role="natural",
                            description="timm resnet50 ImageNet weights: a local file, or --allow-download"),
             imagenet.download, downloads=True),
    # The study's own ImageNet reference: SimCLR on ImageNet-1k (LARS, lr 4.8, batch 4096, 100 epochs; see
    # benchmark/pretrain/recipe.py STUDY_RECIPES), saved as a torchvision-style encoder like its RadNet one.
    Baseline(CheckpointSpec(name="imagenet-simclr", arch="resnet50", pretraining_domain="natural", method="simclr",
                            data="ImageNet-1k", format="study", input=STUDY_INPUT, baseline_role="natural",
                            description="SimCLR on ImageNet in the study's format, from a local file "
                                        "(--weights imagenet-simclr=FILE)")),
    Baseline(CheckpointSpec(name="radnet", arch="resnet50", pretraining_domain="ct", method="simclr",
                            data="RadNet-12M", format="study", input=STUDY_INPUT,
                            description="the study's released SimCLR ResNet-50 encoder, from a local file")),
)


def builtin_checkpoints() -> list[CheckpointSpec]:
    return [baseline.spec for baseline in _BASELINES]


def materializer(name: str, allow_download: bool = False) -> Optional[Materializer]:
    """How to make a baseline's weights here, or None when only a user-named file will do."""
    baseline = next((b for b in _BASELINES if b.spec.name == name), None)
    if baseline is None or (baseline.downloads and not allow_download):
        return None
    return baseline.make
