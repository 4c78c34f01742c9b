"""Foundation-model checkpoints (transformers, open_clip, DINOv2, MAE, BEiT) load onto timm models that compute
what the model that wrote them computes; each detection names its evidence, and mismatches still fail loudly.

The transformers and open_clip cases are proven against those libraries' own forward passes (they are
test dependencies only); DINOv2, MAE and BEiT files are written from a timm model of the family in the
original repository's layout (see ``tests/fixtures/foundation_checkpoints.py``).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmark.cli.main import main
from benchmark.core.errors import CheckpointError
from benchmark.models.formats import detect_format, inspect_checkpoint, load_checkpoint, resolve_weight_file
from benchmark.models.formats.hf_transformers import extract as hf_extract
from tests.fixtures import foundation_checkpoints as fx
from tests.fixtures.checkpoints import MarkerPayload

pytest.importorskip("transformers")
pytest.importorskip("open_clip")

X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
TOLERANCE = 1e-4  # measured: 0 to 1e-6 for every mapping below


def tokens(model, x=X):
    with torch.no_grad():
        return model.forward_features(x)


def pooled(model, x=X):
    with torch.no_grad():
        return model(x)


def close(got, expected):
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= TOLERANCE


# transformers --------------------------------------------------------------------------------------------------

HF_CASES = {  # name: (model_type, classifier, safetensors, config changes)
    "dinov2": ("dinov2", False, True, {}),
    "dinov2-bin": ("dinov2", False, False, {}),
    "dinov2-classifier": ("dinov2", True, True, {}),
    "dinov2-swiglu-bin": ("dinov2", False, False, {"use_swiglu_ffn": True}),
    "dinov2-registers": ("dinov2_with_registers", False, True, {}),
    "dinov2-registers-classifier-bin": ("dinov2_with_registers", True, False, {}),
    "vit": ("vit", False, True, {"layer_norm_eps": 1e-6}),
    "vit-classifier-bin": ("vit", True, False, {"layer_norm_eps": 1e-6}),
}


@pytest.mark.parametrize("case", list(HF_CASES))
def test_transformers_folder_gives_the_hf_model_tokens(case, tmp_path):
    kind, classifier, safetensors, changes = HF_CASES[case]
    model = fx.hf_model(kind, classifier=classifier, **changes)
    folder = fx.write_transformers(model, tmp_path / case, safetensors=safetensors)
    path = resolve_weight_file(folder)
    assert path.name == ("model.safetensors" if safetensors else "pytorch_model.bin")
    fmt, reason = detect_format(path)
    assert fmt == "transformers" and f"config.json beside it with model_type {kind!r}" in reason
    loaded = load_checkpoint(path)
    assert loaded.report.ok and loaded.report.matched == len(loaded.model.state_dict())
    # every token after the last LayerNorm: the CLS one is Dinov2Model's pooler_output
    close(tokens(loaded.model), fx.hf_tokens(model, X))
    assert ("classifier" in loaded.report.dropped) == classifier
    if kind == "vit" and not classifier:
        assert loaded.report.dropped == {"pooler": 2}  # ViTModel's tanh pooler is not the CLS feature
    expected_arch = {"dinov2": "vit_giant_patch14_dinov2" if changes else "vit_base_patch14_dinov2",
                     "dinov2_with_registers": "vit_base_patch14_reg4_dinov2", "vit": "vit_base_patch16_224"}[kind]
    assert loaded.arch == expected_arch and "config.json" in loaded.arch_source
    assert loaded.model.ctbench_build["kwargs"]["embed_dim"] == 64


def test_transformers_5_in_memory_names_load_too(tmp_path):
    """A state_dict saved by hand from transformers 5 (q_proj, layers.N, SwiGLU gate/up) beside its config."""
    for kind, changes in (("vit", {"layer_norm_eps": 1e-6}), ("dinov2", {"use_swiglu_ffn": True})):
        model = fx.hf_model(kind, **changes)
        folder = fx.write_transformers(model, tmp_path / kind)
        (folder / "model.safetensors").unlink()
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
        assert any("q_proj" in k for k in model.state_dict())
        loaded = load_checkpoint(resolve_weight_file(folder))
        close(tokens(loaded.model), fx.hf_tokens(model, X))


def test_vit_layer_norm_eps_is_noted(tmp_path):
    """google/vit configs say eps 1e-12; timm's ViT has 1e-6: told, and the features stay within 1e-3 here."""
    model = fx.hf_model("vit")
    loaded = load_checkpoint(resolve_weight_file(fx.write_transformers(model, tmp_path / "vit")))
    assert any("layer_norm_eps 1e-12" in note for note in loaded.notes)
    assert (tokens(loaded.model) - fx.hf_tokens(model, X)).abs().max().item() < 1e-3


def _config_only(folder: Path, config: dict) -> Path:
    (folder / "config.json").write_text(json.dumps(config))
    return folder / "model.safetensors"


@pytest.mark.parametrize("config, arch", [
    ({"model_type": "dinov2", "hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6,
      "patch_size": 14, "image_size": 518}, "vit_small_patch14_dinov2"),
    ({"model_type": "dinov2_with_registers", "hidden_size": 1024, "num_hidden_layers": 24,
      "num_attention_heads": 16, "patch_size": 14, "image_size": 518, "num_register_tokens": 4},
     "vit_large_patch14_reg4_dinov2"),
    ({"model_type": "vit", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
      "intermediate_size": 3072, "patch_size": 16, "image_size": 224}, "vit_base_patch16_224"),
])
def test_published_dims_get_timm_registered_names(config, arch, tmp_path):
    """facebook/dinov2-small, a dinov2-large with registers, google/vit-base: no constructor arguments needed."""
    width = config["hidden_size"]
    path = _config_only(tmp_path, config)
    out = hf_extract({"encoder.layer.0.mlp.fc1.weight": torch.zeros(4 * width, 1)}, path)
    assert out.arch == arch and out.model_kwargs == {}


def test_rad_dino_preprocessor_sets_the_files_convention(tmp_path):
    """RAD-DINO ships its own mean/std: the file's convention is DINOv2's with them (pooling token+avg)."""
    model = fx.hf_model("dinov2")
    folder = fx.write_transformers(model, tmp_path / "rad-dino", preprocessor={
        "image_mean": [0.5307, 0.5307, 0.5307], "image_std": [0.2583, 0.2583, 0.2583], "resample": 3})
    report = inspect_checkpoint(resolve_weight_file(folder))
    convention = report["input_convention"]
    assert convention["mean"] == [0.5307] * 3 and convention["std"] == [0.2583] * 3
    assert convention["pooling"] == "token+avg" and convention["interpolation"] == "bicubic"
    vit = inspect_checkpoint(resolve_weight_file(fx.write_transformers(fx.hf_model("vit"), tmp_path / "vit")))
    assert vit["input_convention"]["mean"] == [0.5] * 3 and vit["input_convention"]["pooling"] == "token"


def test_unsupported_model_type_is_refused_by_name(tmp_path):
    model = fx.hf_model("dinov2")
    folder = fx.write_transformers(model, tmp_path / "clip")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "siglip_vision_model"}))
    with pytest.raises(CheckpointError, match="model_type 'siglip_vision_model' is not supported"):
        load_checkpoint(resolve_weight_file(folder))


def test_folders_resolve_to_their_weight_file(tmp_path):
    folder = fx.write_transformers(fx.hf_model("dinov2"), tmp_path / "both")
    torch.save({}, folder / "pytorch_model.bin")
    assert resolve_weight_file(folder) == folder / "model.safetensors"  # safetensors first
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="without a weight file") as error:
        resolve_weight_file(empty)
    assert str(empty) in str(error.value)
    (empty / "model.safetensors.index.json").write_text("{}")
    with pytest.raises(CheckpointError, match="sharded"):
        resolve_weight_file(empty)


def test_a_pickle_payload_pytorch_model_bin_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    folder = fx.write_transformers(fx.hf_model("dinov2"), tmp_path / "evil", safetensors=False)
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    torch.save({**state, "extra": MarkerPayload(marker)}, folder / "pytorch_model.bin")
    for call in (lambda: detect_format(resolve_weight_file(folder)), lambda: load_checkpoint(resolve_weight_file(folder))):
        with pytest.raises(CheckpointError, match="refused.*system"):
            call()
    assert not marker.exists()


# open_clip -----------------------------------------------------------------------------------------------------

def test_open_clip_timm_trunk_gives_the_trunk_output(tmp_path):
    model = fx.open_clip_trunk_model()
    path = fx.write_open_clip(model, tmp_path)
    fmt, reason = detect_format(path)
    assert fmt == "open_clip" and "visual.trunk.*" in reason
    loaded = load_checkpoint(path, pooling="token")
    assert loaded.arch == "vit_tiny_patch16_224" and "trunk's shapes" in loaded.arch_source
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))  # open_clip builds the trunk at 224
    close(pooled(loaded.model, x), fx.open_clip_features(model, x))
    dropped = loaded.report.dropped
    assert dropped["visual.head"] == 1 and dropped["logit_scale"] == 1 and dropped["transformer"] > 0


@pytest.mark.parametrize("quick_gelu", [False, True])
def test_open_clip_vit_gives_the_tower_before_its_projection(quick_gelu, tmp_path):
    model = fx.open_clip_vit_model(quick_gelu=quick_gelu)
    config = {"model_cfg": {"quick_gelu": True, "vision_cfg": {"width": 128, "head_width": 64}}} if quick_gelu else None
    path = fx.write_open_clip(model, tmp_path, config=config)
    fmt, reason = detect_format(path)
    assert fmt == "open_clip" and "visual.class_embedding" in reason
    loaded = load_checkpoint(path, pooling="token")
    assert loaded.arch == "vit_base_patch16_clip_224" and loaded.report.dropped["visual.proj"] == 1
    assert (loaded.model.ctbench_build["kwargs"].get("act_layer") == "quick_gelu") == quick_gelu
    close(pooled(loaded.model), fx.open_clip_features(model, X))
    assert loaded.convention.name == "clip" and loaded.convention.pooling == "token"


# DINOv2, MAE, BEiT ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("registers, swiglu", [(False, False), (True, False), (False, True), (True, True)])
def test_dinov2_original_checkpoint(registers, swiglu, tmp_path):
    source = fx.dinov2_timm(registers=registers, swiglu=swiglu)
    path = fx.write_dinov2(source, tmp_path)
    fmt, reason = detect_format(path)
    assert fmt == "dinov2" and "mask_token" in reason and "ls1.gamma" in reason
    loaded = load_checkpoint(path)
    expected = f"vit_{'giant' if swiglu else 'base'}_patch14{'_reg4' if registers else ''}_dinov2"
    assert loaded.arch == expected and loaded.report.dropped == {"mask_token": 1}
    close(tokens(loaded.model), tokens(source))


def test_dinov2_teacher_checkpoint_with_block_chunks(tmp_path):
    source = fx.dinov2_timm()
    path = fx.write_dinov2_teacher(source, tmp_path)
    assert detect_format(path)[0] == "dinov2"
    loaded = load_checkpoint(path)
    assert loaded.report.dropped == {"dino_head": 1, "ibot_head": 1, "mask_token": 1}
    close(tokens(loaded.model), tokens(source))


def test_mae_pretraining_checkpoint(tmp_path):
    source = fx.mae_timm()
    path = fx.write_mae(source, tmp_path)
    fmt, reason = detect_format(path)
    assert fmt == "mae" and "decoder_*" in reason
    loaded = load_checkpoint(path, pooling="avg")
    assert set(loaded.report.dropped) == {"mask_token", "decoder_embed", "decoder_pos_embed", "decoder_blocks",
                                          "decoder_norm", "decoder_pred"}
    close(pooled(loaded.model), pooled(source))  # the mean of the normed patch tokens
    assert loaded.convention.name == "imagenet_rgb_avg" and loaded.method == "mae"


@pytest.mark.parametrize("shared", [True, False])
def test_beit_checkpoint_shared_or_per_block_bias(shared, tmp_path):
    source = fx.beit_timm(shared=shared)
    path = fx.write_beit(source, tmp_path)
    fmt, reason = detect_format(path)
    assert fmt == "beit" and "gamma_1" in reason
    loaded = load_checkpoint(path, pooling="avg")
    assert loaded.arch == "beit_base_patch16_224" and "relative_position_index" in loaded.report.dropped
    assert loaded.report.ignored_head == ([] if shared else ["head.weight", "head.bias"])
    close(pooled(loaded.model), pooled(source))
    assert loaded.convention.mean == (0.5, 0.5, 0.5) and loaded.convention.pooling == "avg"


def test_a_resampled_size_still_loads(tmp_path):
    """At another evaluated size the position embeddings and BEiT's bias tables are resampled, and listed."""
    beit = load_checkpoint(fx.write_beit(fx.beit_timm(), tmp_path / "beit"), img_size=96, pooling="avg")
    assert any(r.startswith("rel_pos_bias.relative_position_bias_table") for r in beit.resampled)
    dinov2 = load_checkpoint(fx.write_dinov2(fx.dinov2_timm(registers=True), tmp_path / "d"), img_size=96)
    assert any(r.startswith("pos_embed") for r in dinov2.resampled)


# mismatches ----------------------------------------------------------------------------------------------------

def test_a_wrong_architecture_fails_loudly(tmp_path):
    folder = fx.write_transformers(fx.hf_model("dinov2"), tmp_path / "hf")
    with pytest.raises(CheckpointError, match="config.json: Dinov2Model.*means timm vit_base_patch14_dinov2, but "
                                              "the architecture given is vit_small_patch14_dinov2"):
        load_checkpoint(resolve_weight_file(folder), arch="vit_small_patch14_dinov2")
    dinov2 = fx.write_dinov2(fx.dinov2_timm(), tmp_path / "dinov2")
    with pytest.raises(CheckpointError, match="DINOv2 loads onto a timm vision_transformer model.*resnet50 is not one"):
        load_checkpoint(dinov2, arch="resnet50")
    clip = fx.write_open_clip(fx.open_clip_vit_model(), tmp_path / "clip")
    with pytest.raises(CheckpointError, match="resnet50 is not one"):
        load_checkpoint(clip, arch="resnet50")


def test_keys_that_do_not_fit_are_listed(tmp_path):
    dinov2 = fx.write_dinov2(fx.dinov2_timm(), tmp_path / "dinov2")
    with pytest.raises(CheckpointError, match=r"unexpected \[blocks.0.ls1.gamma, .*\]") as error:
        load_checkpoint(dinov2, fmt="mae")  # MAE's family has no layer scale
    assert "\n" not in str(error.value)
    state = torch.load(dinov2, weights_only=True)
    del state["blocks.1.ls2.gamma"]
    torch.save(state, dinov2)
    with pytest.raises(CheckpointError, match=r"1 missing \[blocks.1.ls2.gamma\]"):
        load_checkpoint(dinov2)
    report = inspect_checkpoint(dinov2)
    assert not report["ok"] and report["keys"]["missing"] == ["blocks.1.ls2.gamma"]


# inspect explains every detection --------------------------------------------------------------------------------

def test_inspect_prints_each_detection_reason(tmp_path, capsys):
    files = {
        "transformers": (fx.write_transformers(fx.hf_model("dinov2"), tmp_path / "hf"),
                         "config.json beside it with model_type 'dinov2'", "pooling token+avg"),
        "open_clip": (fx.write_open_clip(fx.open_clip_vit_model(), tmp_path / "clip"),
                      "visual.class_embedding and visual.conv1 keys", "clip: "),
        "dinov2": (fx.write_dinov2(fx.dinov2_timm(), tmp_path / "dinov2"), "DINOv2's own checkpoint", "dinov2: "),
        "mae": (fx.write_mae(fx.mae_timm(), tmp_path / "mae"), "MAE's pretraining checkpoint", "pooling avg"),
        "beit": (fx.write_beit(fx.beit_timm(), tmp_path / "beit"), "BEiT's layout", "beit: "),
    }
    for fmt, (path, reason, convention) in files.items():
        assert main(["checkpoints", "inspect", str(path)]) == 0
        out = capsys.readouterr().out
        assert f"format:       {fmt} (" in out and reason in out, out
        assert f"input:        {convention}" in out or convention in out
        assert "0 missing, 0 unexpected" in out and "not part of the backbone, left out" in out
        json.dumps(inspect_checkpoint(resolve_weight_file(path)))  # every summary is JSON-ready
