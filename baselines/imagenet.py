"""The ImageNet reference from timm's hub, only with explicit opt-in.

These machines are offline, so this path runs only when a user passes
``--allow-download`` on a machine that can reach the hub; otherwise ``--weights
imagenet=FILE`` names a local timm/torchvision resnet50 file.
"""
from __future__ import annotations

from benchmark.core.errors import CheckpointError
from benchmark.core.specs import CheckpointSpec
from benchmark.core.workdir import Workdir


def download(spec: CheckpointSpec, workdir: Workdir, allow_download: bool = False) -> CheckpointSpec:
    path = workdir.checkpoints / f"{spec.name}-{spec.arch}-timm.safetensors"
    if not path.exists():
        import timm

        from benchmark.models.backbones import save_backbone

        try:
            model = timm.create_model(spec.arch, pretrained=allow_download, num_classes=0)
        except Exception as exc:  # network and hub errors come in many types
            raise CheckpointError(f"could not download {spec.arch} ImageNet weights ({type(exc).__name__}: {exc}); "
                                  f"pass --weights {spec.name}=FILE instead") from None
        save_backbone(model, path)
    return spec.model_copy(update={"weights": path})
