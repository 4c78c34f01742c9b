"""seg-linear and seg-finetune on every kind of timm backbone: CNNs and Swin get a U-Net, a ViT a DPT,
each encoder filled exactly with the backbone's weights."""
import dataclasses
import os

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.core.errors import JobError
from benchmark.core.hashing import state_sha256
from benchmark.core.specs import CheckpointSpec
from benchmark.data.slices import SliceSet
from benchmark.evaluation.profiles import PROFILES
from benchmark.evaluation.protocols import PROTOCOLS, JobContext
from benchmark.evaluation.protocols import segmentation as segmentation_module
from benchmark.evaluation.protocols.seg_models import encoder_key_map
from benchmark.evaluation.protocols.segmentation import build_segmenter
from benchmark.models.backbones import create_backbone
from tests.unit.test_protocols import SEG, disc_task

SIZE = 64
SMALL_SWIN = {"embed_dim": 24, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1)}
# arch -> (create_backbone overrides, decoder, an encoder key and the backbone key it must hold)
CASES = {
    "resnet18": ({}, "smp.Unet", ("layer1.0.conv1.weight", "layer1.0.conv1.weight")),
    "convnext_atto": ({}, "smp.Unet", ("stem_0.weight", "stem.0.weight")),
    "densenet121": ({}, "smp.Unet", ("features_conv0.weight", "features.conv0.weight")),
    "efficientnet_b0": ({}, "smp.Unet", ("conv_stem.weight", "conv_stem.weight")),
    "swin_tiny_patch4_window7_224": (SMALL_SWIN, "smp.Unet", ("layers_0.blocks.0.attn.qkv.weight",
                                                              "layers.0.blocks.0.attn.qkv.weight")),
    # drop-path on, so the frozen encoder's eval mode is what keeps seg-linear deterministic
    "vit_tiny_patch16_224": ({"drop_path_rate": 0.2}, "smp.DPT", ("pos_embed", "pos_embed")),
}
PROFILE = dataclasses.replace(PROFILES["demo"], training_overrides={**PROFILES["demo"].training_overrides,
                                                                   "max_steps": 2, "epochs": 2})


@pytest.fixture(autouse=True, scope="module")
def _one_thread_per_worker():
    """Under xdist each worker takes a core: torch's own threads on top would oversubscribe them (2x slower)."""
    threads = torch.get_num_threads()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _backbone(arch: str) -> nn.Module:
    torch.manual_seed(0)
    return create_backbone(arch, img_size=SIZE, **CASES[arch][0])


def _context(arch: str, n_train=24, n_val=8, n_test=8) -> JobContext:
    images, masks = disc_task(n=n_train + n_val + n_test)  # 32 px: doubled to the profile's 64
    images, masks = (a.repeat(2, axis=-1).repeat(2, axis=-2) for a in (images, masks))
    n = len(images)
    slices = SliceSet(images.astype(np.float16), masks, np.asarray([f"p{i // 2}" for i in range(n)]),
                      np.asarray([f"c{i}" for i in range(n)]), "k")
    idx = np.arange(n)
    model = _backbone(arch)
    return JobContext(SEG, CheckpointSpec(name="tiny", arch=arch, pretraining_domain="none"), slices,
                      idx[:n_train], idx[n_train:n_train + n_val], idx[n_train + n_val:], 42, lambda: None,
                      backbone=lambda: model, profile=PROFILE)


@pytest.mark.parametrize("arch", CASES)
def test_the_encoder_holds_every_backbone_weight(arch):
    backbone = _backbone(arch)
    source = backbone.state_dict()
    model, record = build_segmenter(backbone, arch, 3, 3, PROFILE.decoder_channels, PROFILE.dpt_features)
    encoder = model.encoder.model.state_dict()
    encoder_key, backbone_key = CASES[arch][2]
    assert torch.equal(encoder[encoder_key], source[backbone_key])
    mapping = encoder_key_map(source, encoder, arch)
    assert all(torch.equal(value, source[mapping[key]]) for key, value in encoder.items())
    assert record["decoder"] == CASES[arch][1] and record["encoder"] == f"tu-{arch}"
    assert record["unused_backbone_keys"] == len(source) - len(set(mapping.values()))
    if record["decoder"] == "smp.DPT":  # smp's four evenly spaced blocks; the final norm DPT never reads
        assert record["block_indices"] == [2, 5, 8, 11] and record["unused_backbone_modules"] == ["norm"]
    else:
        assert record["decoder_channels"] == list(PROFILE.decoder_channels)
    assert model.eval()(torch.zeros(1, 3, SIZE, SIZE)).shape == (1, 3, SIZE, SIZE)


@pytest.mark.parametrize("arch", CASES)
def test_seg_linear_and_seg_finetune_run_on_every_encoder(arch, monkeypatch):
    training_modules: dict[str, set] = {}
    real_fit = segmentation_module.fit

    def fit(model, loss_fn, *args, **kwargs):  # notes which encoder modules train while the loss is computed
        seen = training_modules.setdefault(protocol, set())

        def loss(logits, y):
            seen.update(name for name, m in model.encoder.named_modules() if m.training)
            return loss_fn(logits, y)

        return real_fit(model, loss, *args, **kwargs)

    monkeypatch.setattr(segmentation_module, "fit", fit)
    built, _ = build_segmenter(_backbone(arch), arch, 3, 3, PROFILE.decoder_channels, PROFILE.dpt_features)
    loaded = state_sha256(built.encoder)
    outcomes = {}
    for protocol in ("seg-linear", "seg-finetune"):
        outcomes[protocol] = outcome = PROTOCOLS.get(protocol).run(_context(arch))
        assert np.isfinite(outcome.metrics["dice_mean"]), outcome.metrics
        assert outcome.predictions["masks"].shape == (8, SIZE, SIZE)
        hyper = outcome.hyperparameters
        assert hyper["decoder"] == CASES[arch][1] and hyper["encoder"] == f"tu-{arch}"
        assert hyper["steps"] == 2
    frozen = outcomes["seg-linear"].hyperparameters
    assert frozen["encoder_sha256"] == {"before": loaded, "after": loaded}
    assert frozen["encoder_params_sha256"]["before"] == frozen["encoder_params_sha256"]["after"]
    trained = outcomes["seg-finetune"].hyperparameters["encoder_sha256"]
    assert trained["before"] == loaded != trained["after"]
    assert not training_modules["seg-linear"]  # no BatchNorm update, no dropout, no drop-path
    assert "" in training_modules["seg-finetune"]


def test_a_backbone_whose_keys_do_not_map_fails_in_one_line():
    class Wrapped(nn.Module):  # the same weights, one level down: no encoder key finds its tensor
        def __init__(self):
            super().__init__()
            self.body = create_backbone("test_resnet")

    with pytest.raises(JobError) as error:
        build_segmenter(Wrapped(), "test_resnet", 3, 3, PROFILE.decoder_channels)
    message = str(error.value)
    assert "\n" not in message and "test_resnet" in message and "body.conv1.0.weight" in message

    vit = create_backbone("vit_tiny_patch16_224", img_size=SIZE)
    del vit.ctbench_build  # built at 64 px, but nothing says so: the encoder's 224 px position embedding differs
    with pytest.raises(JobError, match=r"tu-vit_tiny_patch16_224|vit_tiny_patch16_224.*pos_embed") as error:
        build_segmenter(vit, "vit_tiny_patch16_224", 3, 3, PROFILE.decoder_channels)
    assert "\n" not in str(error.value) and "(1, 197, 192)" in str(error.value)
