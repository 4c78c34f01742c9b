"""The analysis beyond ResNets: where the stages of ConvNeXt, EfficientNet, DenseNet, Swin and
plain ViTs are, that their outputs reach CKA laid out as timm itself lays them out, and
``analyze`` end to end on ViT checkpoints beside a ResNet."""
import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from benchmark.analysis import analysis_folder, analyze
from benchmark.analysis.activations import (
    HIERARCHICAL,
    NHWC,
    PLAIN,
    RESNET,
    STAGES,
    TOKENS,
    pool,
    shared_names,
    stage_activations,
    stage_layout,
)
from benchmark.analysis.cka import linear_cka
from benchmark.core.errors import ConfigError
from benchmark.core.hashing import state_sha256
from benchmark.core.specs import CheckpointSpec, RunSpec
from benchmark.core.workdir import Workdir
from benchmark.evaluation.accel import Accelerator
from benchmark.evaluation.inputs import to_model_input
from benchmark.evaluation.profiles import PROFILES
from benchmark.models.backbones import create_backbone, save_backbone

CPU = Accelerator(torch.device("cpu"))
CK = CheckpointSpec(name="tiny", arch="vit_tiny_patch16_224", pretraining_domain="none")
TINY_SWIN = dict(img_size=64, embed_dim=24, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))
TINY_DENSENET = dict(growth_rate=8, block_config=(1, 1, 1, 1))  # densenet121's modules, a fraction of its cost


def _model(arch, seed=0, **kwargs):
    torch.manual_seed(seed)
    return create_backbone(arch, **kwargs).eval()


@pytest.fixture(scope="module")
def vit():
    """vit_tiny (12 blocks) at 64 px, as a CT task feeds it: built once, never changed by a test."""
    return _model("vit_tiny_patch16_224", img_size=64)


def _images(n=6, size=64, seed=0):
    """Blocky random textures in [0, 1], as the slices of a CT task vary in more than brightness."""
    rng = np.random.default_rng(seed)
    return np.kron(rng.uniform(0, 1, (n, 3, 8, 8)), np.ones((1, 1, size // 8, size // 8))).astype(np.float16)


# --- where the stages are -----------------------------------------------------------------------

def test_a_resnet_keeps_its_layer_names():
    layout = stage_layout(_model("resnet18"))
    assert layout.names == STAGES and layout.family == RESNET
    assert [s.module for s in layout.stages] == list(STAGES)


@pytest.mark.parametrize("arch,kwargs,modules,covers,layout", [
    ("convnext_atto", {}, ["stages.0", "stages.1", "stages.2", "stages.3"], ("stages.2",), "NCHW"),
    # feature_info skips blocks.3 and blocks.5 (no change of stride): stage3 ends at blocks.4, so covers blocks.3
    ("efficientnet_b0", {}, ["blocks.1", "blocks.2", "blocks.4", "blocks.6"], ("blocks.3", "blocks.4"), "NCHW"),
    ("densenet121", TINY_DENSENET, ["features.denseblock1", "features.denseblock2", "features.denseblock3", "features.norm5"],
     ("features.transition2", "features.denseblock3"), "NCHW"),
    ("swin_tiny_patch4_window7_224", TINY_SWIN, ["layers.0", "layers.1", "layers.2", "layers.3"], ("layers.2",), NHWC),
])
def test_hierarchical_stages_come_from_timm_feature_info(arch, kwargs, modules, covers, layout):
    """The last module of each stride, the stride-2 stem level dropped as a ResNet's act1 is."""
    found = stage_layout(_model(arch, **kwargs))
    assert found.family == HIERARCHICAL and found.arch == arch
    assert found.names == ("stage1", "stage2", "stage3", "stage4")
    assert [s.module for s in found.stages] == modules
    assert found.stages[2].covers == covers and {s.layout for s in found.stages} == {layout}


def test_a_plain_vit_is_four_groups_of_consecutive_blocks(vit):
    found = stage_layout(vit)
    assert found.family == PLAIN and found.prefix_tokens == 1
    assert [s.covers for s in found.stages] == [tuple(f"blocks.{i}" for i in range(k, k + 3)) for k in (0, 3, 6, 9)]
    assert [s.module for s in found.stages] == ["blocks.2", "blocks.5", "blocks.8", "blocks.11"]
    assert {s.layout for s in found.stages} == {TOKENS}
    shallow = stage_layout(_model("test_vit", img_size=64))  # 6 blocks; array_split: 2, 2, 1, 1
    assert [len(s.covers) for s in shallow.stages] == [2, 2, 1, 1]
    described = found.describe()
    assert described["stages"]["stage1"] == {"module": "blocks.2", "covers": ["blocks.0", "blocks.1", "blocks.2"],
                                             "layout": TOKENS}


def test_an_unknown_layout_is_a_one_line_config_error():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    model.ctbench_build = {"arch": "my-net"}
    with pytest.raises(ConfigError, match="my-net") as caught:
        stage_layout(model)
    message = str(caught.value)
    assert "\n" not in message and "layer1" in message and "feature_info" in message and "blocks" in message


def test_mixed_checkpoints_share_positional_names_and_different_depths_are_refused():
    resnet, transformer = stage_layout(_model("test_resnet")), stage_layout(_model("test_vit", img_size=64))
    assert shared_names({"a": resnet, "b": resnet}) == {"a": resnet, "b": resnet}  # all ResNets: layer1 ..
    mixed = shared_names({"r": resnet, "v": transformer})
    assert mixed["r"].names == mixed["v"].names == ("stage1", "stage2", "stage3", "stage4")
    assert mixed["r"].stages[0].module == "layer1" and mixed["v"].stages[0].module == "blocks.1"
    two_blocks = stage_layout(_model("test_vit", img_size=64, depth=2))
    with pytest.raises(ConfigError, match="different numbers of stages"):
        shared_names({"r": resnet, "v": two_blocks})


# --- what the stages compute --------------------------------------------------------------------

@pytest.mark.parametrize("arch,kwargs,size,channels", [
    ("convnext_atto", {}, 64, (40, 80, 160, 320)),
    ("efficientnet_b0", {}, 64, (24, 40, 112, 320)),
    ("densenet121", TINY_DENSENET, 64, (24, 20, 18, 17)),  # a transition halves, a one-layer block adds 8
])
def test_cnn_stage_activations_are_pooled_channels(arch, kwargs, size, channels):
    acts = stage_activations(_model(arch, **kwargs), _images(4, size), CK, CPU, 4)
    assert [a.shape for a in acts.values()] == [(4, c * 4) for c in channels]


@pytest.mark.parametrize("arch,kwargs,size", [
    ("vit_tiny_patch16_224", None, 64),  # the module's vit
    ("vit_tiny_patch16_224", dict(img_size=60, depth=4), 60),  # padded to 64: a 4 x 4 grid (timm's dynamic_img_pad)
    ("vit_small_patch14_reg4_dinov2", dict(img_size=56, depth=4), 56),  # class + 4 register tokens dropped
    ("swin_tiny_patch4_window7_224", TINY_SWIN, 64),  # NHWC
])
def test_token_and_nhwc_stages_match_timms_own_spatial_intermediates(arch, kwargs, size, vit):
    """timm's forward_intermediates lays tokens out as (n, D, h, w) by itself: the oracle."""
    model, images = vit if kwargs is None else _model(arch, **kwargs), _images(3, size)
    before = state_sha256(model)
    layout = stage_layout(model)
    acts = stage_activations(model, images, CK, CPU, 2)
    assert state_sha256(model) == before and not model._forward_hooks and not model.patch_embed._forward_hooks
    indices = [int(s.module.rsplit(".", 1)[1]) for s in layout.stages]
    with torch.no_grad():
        expected = model.forward_intermediates(to_model_input(images, CK), indices=indices, norm=False,
                                               intermediates_only=True)
    for (stage, got), spatial in zip(acts.items(), expected):
        assert got.shape == (3, spatial.shape[1] * 4)
        np.testing.assert_allclose(got, pool(spatial), atol=1e-5, err_msg=stage)


def test_cka_of_a_vit_with_itself_is_one_and_with_a_reinitialised_copy_lower():
    """A copy re-initialised by timm's own init, another seed, still scores high (a random ViT is
    mostly a random projection of the patches, which CKA barely tells apart: about 0.92 here);
    weights drawn at unit scale make the blocks mix in earnest, and CKA drops far (0.5 to 0.6)."""
    images, model = _images(24), _model("test_vit", img_size=64)
    first, again = (stage_activations(model, images, CK, CPU, 24) for _ in range(2))
    reseeded = copy.deepcopy(model)
    torch.manual_seed(1)
    reseeded.init_weights()
    scrambled = copy.deepcopy(model)
    torch.manual_seed(2)
    with torch.no_grad():
        for parameter in scrambled.parameters():
            parameter.normal_(0.0, 1.0)
    reseeded, scrambled = (stage_activations(m, images, CK, CPU, 24) for m in (reseeded, scrambled))
    assert list(first) == ["stage1", "stage2", "stage3", "stage4"]
    for stage in first:
        assert linear_cka(first[stage], again[stage]) == pytest.approx(1.0, abs=1e-9)
        assert linear_cka(first[stage], reseeded[stage]) < 0.97
        assert linear_cka(first[stage], scrambled[stage]) < 0.75


# --- analyze, end to end ------------------------------------------------------------------------

def test_analyze_runs_on_two_vits_beside_a_resnet(tiny_phantom, tmp_path, monkeypatch):
    """`ctbench analyze`'s path with the demo's random-vit, a second test_vit and the random ResNet,
    on the tiny phantom, the finetune cut to one step."""
    short = dict(PROFILES["demo"].training_overrides, epochs=1, max_steps=1)
    monkeypatch.setitem(PROFILES, "demo", dataclasses.replace(PROFILES["demo"], training_overrides=short,
                                                                       step_budgets={}))
    torch.manual_seed(1)
    save_backbone(create_backbone("test_vit"), tmp_path / "vit-b.safetensors")
    other = CheckpointSpec(name="vit-b", arch="test_vit", weights=tmp_path / "vit-b.safetensors",
                           pretraining_domain="none")
    task = "phantom-body-region"
    spec = RunSpec(checkpoints=["random-vit", "vit-b", "random"], tasks=[task], profile="demo", device="cpu",
                   data_roots={task: tiny_phantom / "dicom"})
    workdir = Workdir(tmp_path / "work")
    payload = analyze(workdir, ["random-vit", other, "random"], task, spec, max_cases=16, log=lambda _: None)

    stages = ["stage1", "stage2", "stage3", "stage4"]
    settings = payload["settings"]
    assert settings["stages"] == stages
    layouts = settings["stage_layouts"]
    assert layouts["random-vit"]["family"] == PLAIN and layouts["random"]["family"] == RESNET
    assert layouts["vit-b"]["stages"]["stage1"]["covers"] == ["blocks.0", "blocks.1"]  # test_vit: 6 blocks
    assert [layouts["random"]["stages"][s]["module"] for s in stages] == list(STAGES)
    for name in ("random-vit", "vit-b", "random"):
        assert list(payload["reuse"][name]["linear"]) == stages
        assert all(0 <= v <= 1 for kind in ("linear", "rbf") for v in payload["reuse"][name][kind].values())
        assert list(payload["uniqueness"][name]) == stages
    for matrix in map(np.array, payload["pairwise"]["linear"].values()):
        np.testing.assert_allclose(np.diag(matrix), 1.0)
    folder = analysis_folder(workdir, task)
    assert json.loads((folder / "analysis.json").read_text())["settings"]["stages"] == stages
    assert {p.name for p in folder.iterdir()} >= {"reuse.svg", "pairwise.svg", "uniqueness.svg", "who_knew_what.svg"}
