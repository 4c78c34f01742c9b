"""Backbones built for the evaluated size, pooled as their convention says, trained with their family's recipe."""
from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from benchmark.core.errors import CheckpointError, ConfigError
from benchmark.core.specs import INPUT_CONVENTIONS, CheckpointSpec, TaskSpec
from benchmark.evaluation.profiles import PROFILES
from benchmark.evaluation.protocols import JobContext
from benchmark.evaluation.protocols.param_groups import param_groups
from benchmark.evaluation.recipes import study_recipe
from benchmark.execution.preflight import check_input_size
from benchmark.execution.worker import failure_line
from benchmark.models.backbones import create_backbone, is_transformer
from benchmark.models.formats import inspect_checkpoint, load_checkpoint
from benchmark.results.job import Job


def _save(model: torch.nn.Module, path) -> None:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)


@pytest.fixture(scope="module")
def vit224(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vit") / "vit224.safetensors"
    _save(timm.create_model("vit_tiny_patch16_224", num_classes=0), path)
    return path


def test_a_vit_saved_at_224_is_evaluated_at_64_with_timms_resampled_position_embedding(vit224):
    loaded = load_checkpoint(vit224, arch="vit_tiny_patch16_224", img_size=64)
    assert loaded.resampled == ["pos_embed: 1x197x192 -> 1x17x192"]
    reference = timm.create_model("vit_tiny_patch16_224", num_classes=0)
    reference.load_state_dict(dict(loaded.state, pos_embed=reference.pos_embed), strict=True)
    same = {k for k, v in loaded.model.state_dict().items() if torch.equal(v, reference.state_dict()[k])}
    assert same == set(reference.state_dict()) - {"pos_embed"}  # only the position embedding changed
    assert loaded.model(torch.rand(2, 3, 64, 64)).shape == (2, 192)


def test_inspect_accepts_a_vit_saved_at_another_size(tmp_path):
    path = tmp_path / "vit96.safetensors"
    _save(timm.create_model("vit_tiny_patch16_224", num_classes=0, img_size=96), path)
    report = inspect_checkpoint(path, arch="vit_tiny_patch16_224")
    assert report["ok"] and report["resampled"] == ["pos_embed: 1x37x192 -> 1x197x192"]


def test_a_size_the_patch_does_not_divide_is_padded_and_said_so(vit224):
    loaded = load_checkpoint(vit224, arch="vit_tiny_patch16_224", img_size=72)
    assert loaded.model.ctbench_build["kwargs"]["img_size"] == 80
    assert any("72 px input padded to 80 px" in note for note in loaded.notes)
    assert loaded.model(torch.rand(1, 3, 72, 72)).shape == (1, 192)


def test_poolings_read_the_tokens_as_named():
    torch.manual_seed(0)
    token = create_backbone("test_vit", img_size=64, pooling="token").eval()
    state = token.state_dict()
    both = create_backbone("test_vit", img_size=64, pooling="token+avg").eval()
    avg = create_backbone("test_vit", img_size=64, pooling="avg").eval()
    both.load_state_dict(state)
    avg.load_state_dict(state)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        tokens = token.forward_features(x)
        assert torch.allclose(token(x), tokens[:, 0])
        assert torch.allclose(avg(x), tokens[:, token.num_prefix_tokens:].mean(1), atol=1e-6)
        assert torch.allclose(both(x), torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], 1), atol=1e-6)
    assert list(both.state_dict()) == list(state)  # the same timm keys: encoders and hashes see one model


def test_token_pooling_on_a_cnn_is_refused():
    with pytest.raises(CheckpointError, match="pooling 'token' reads a class token, and test_resnet has none"):
        create_backbone("test_resnet", pooling="token")


def test_transformer_families_are_known_by_timms_module():
    assert is_transformer("vit_small_patch14_dinov2") and is_transformer("swin_tiny_patch4_window7_224")
    assert not is_transformer("resnet50") and not is_transformer("convnext_atto")
    assert not is_transformer("no-such-model")


def test_transformers_finetune_with_layer_decay_and_cnns_with_the_study_recipe():
    task = TaskSpec(name="t", version="1", domain="ct", kind="classification", class_names=["a", "b"],
                    metrics=["accuracy"], main_metric="accuracy", training=study_recipe("body-region"))
    paper = PROFILES["paper"]
    for arch, expected in (("resnet50", ("lars", 0.01, None)), ("vit_base_patch16_224", ("adamw", 8e-3, 0.65))):
        ctx = JobContext(task, CheckpointSpec(name="c", arch=arch, pretraining_domain="none"), None, None, None,
                         None, 42, lambda: None, profile=paper)
        recipe = ctx.recipe()
        assert (recipe.optimizer, recipe.lr, recipe.layer_decay) == expected


def test_layer_decay_groups_follow_timms_blocks():
    model = create_backbone("test_vit", img_size=64)
    recipe = PROFILES["demo"].training(study_recipe("lits"), transformer=True)
    groups = param_groups(model, recipe)
    first = next(g for g in groups if any(p is model.patch_embed.proj.weight for p in g["params"]))
    last = next(g for g in groups if any(p is model.norm.weight for p in g["params"]))
    depth = len(model.blocks)
    assert first["lr"] == pytest.approx(recipe.lr * 0.65 ** depth)  # the patch embedding: layer 0 of depth + 1
    assert last["lr"] == pytest.approx(recipe.lr) and last["weight_decay"] == 0  # a norm: no decay
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    plain = PROFILES["demo"].training(study_recipe("lits"))
    assert param_groups(model, plain) == list(model.parameters())


def test_a_size_a_windowed_model_cannot_take_stops_the_run_before_any_job(tmp_path):
    path = tmp_path / "maxvit.safetensors"
    _save(timm.create_model("test_maxvit", num_classes=0), path)
    spec = CheckpointSpec(name="maxvit", arch="test_maxvit", weights=path, pretraining_domain="none")
    check_input_size([spec], 48, print)
    with pytest.raises(ConfigError, match=r"^checkpoint maxvit \(test_maxvit\) cannot take the profile's 40 px "
                                          r"input: .+") as raised:
        check_input_size([spec], 40, print)
    assert "\n" not in str(raised.value)


def test_a_jobs_failure_names_checkpoint_task_and_cause():
    model = timm.create_model("vit_tiny_patch16_224", num_classes=0)
    try:
        model(torch.zeros(1, 3, 64, 64))
    except AssertionError as exc:
        error = exc
    job = Job(checkpoint="vit", checkpoint_sha256="0" * 64, task="phantom-body-region", task_version="1",
              protocol="finetune", protocol_version="1", scale=1.0, seed=42, profile="demo")
    line = failure_line(job, error)
    assert line.startswith("checkpoint vit on task phantom-body-region (finetune): AssertionError: Input height (64)")
    assert "(raised at " in line and "\n" not in line
    assert failure_line(job, CheckpointError("bad file")) == \
        "checkpoint vit on task phantom-body-region (finetune): bad file"


def test_forced_conventions_keep_the_checkpoints_pooling():
    from benchmark.execution.job_runner import convention_for

    spec = CheckpointSpec(name="d", arch="vit_small_patch14_dinov2", pretraining_domain="natural",
                          input=INPUT_CONVENTIONS["dinov2"])
    assert convention_for(spec, "minmax_grey3").pooling == "token+avg"
