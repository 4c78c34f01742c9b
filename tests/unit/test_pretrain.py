"""The pretraining recipe: outputs, reproducibility, resume, learning, and bad corpora.

Everything runs on tiny generated corpora with timm's ``test_resnet`` at 32 px, so the
whole file takes seconds; the recipe code paths are the same as for resnet18 at 64 px.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file

from benchmark.core.errors import ConfigError, DataError
from benchmark.core.hashing import file_sha256
from benchmark.core.specs import CheckpointSpec
from benchmark.pretrain import (
    DEMO_RECIPE,
    DEMO_RECIPES,
    Recipe,
    default_recipe,
    find_corpus_files,
    is_pretrained,
    load_corpus,
    pretrain,
    read_sidecar,
)
from benchmark.pretrain.augment import SimCLRAugment, hsv_to_rgb, rgb_to_hsv
from benchmark.pretrain.output import state_path
from benchmark.pretrain.train import lr_at
from benchmark.synthetic.natural import NaturalConfig, generate_natural
from benchmark.synthetic.phantom import PhantomConfig, generate_dataset

TINY = dict(arch="test_resnet", image_size=32, progress=False)


@pytest.fixture(scope="module")
def ct_corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pretrain-phantom") / "phantom"
    generate_dataset(out, PhantomConfig(n_patients=1, n_corpus_patients=2, matrix=64, slices_per_series=2,
                                        n_lits_volumes=1, lits_slices=4), workers=1)
    return out / "corpus"


@pytest.fixture(scope="module")
def natural_corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pretrain-natural") / "natural"
    generate_natural(out, NaturalConfig(grid=2, crops_per_block=1, crop_px=32, n_corpus=16))
    return out / "corpus"


@pytest.fixture(scope="module")
def straight_run(natural_corpus, tmp_path_factory) -> Path:
    """Two epochs without interruption: the reference for determinism and resume."""
    out = tmp_path_factory.mktemp("straight") / "nat.safetensors"
    pretrain(natural_corpus, out, epochs=2, batch_size=8, **TINY)
    return out


def test_the_weights_do_not_depend_on_the_callers_thread_count(natural_corpus, straight_run, tmp_path):
    """1 and 2 torch threads give different sums at this size; the pin makes both the reference's bytes."""
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out = tmp_path / f"threads-{threads}.safetensors"
            pretrain(natural_corpus, out, epochs=2, batch_size=8, **TINY)
            assert file_sha256(out) == file_sha256(straight_run), f"{threads} caller thread(s)"
            assert torch.get_num_threads() == threads, "the caller's thread count is restored"
    finally:
        torch.set_num_threads(before)


def test_ct_run_writes_weights_and_a_valid_sidecar(ct_corpus, tmp_path):
    out = tmp_path / "ct-demo.safetensors"
    spec = pretrain(ct_corpus, out, epochs=1, batch_size=8, demo=True, **TINY)

    assert out.is_file() and not state_path(out).exists()
    assert spec.sha256 == file_sha256(out) and spec.weights == out.resolve()
    assert (spec.name, spec.format, spec.pretraining_domain, spec.method, spec.demo) == \
        ("ct-demo", "timm", "ct", "simclr", True)
    n_files = len(find_corpus_files(ct_corpus)[1])
    assert f"{n_files} CT DICOM slices" in spec.data and ct_corpus.name in spec.data
    assert spec.input.channels == 3 and all(s > 0 for s in spec.input.std)

    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert CheckpointSpec.model_validate(sidecar["checkpoint"]) == spec
    assert sidecar["recipe"]["arch"] == "test_resnet" and sidecar["recipe"]["temperature"] == DEMO_RECIPE.temperature
    assert sidecar["corpus"]["kind"] == "dicom" and sidecar["corpus"]["n_images"] == n_files
    assert [w["center"] for w in sidecar["corpus"]["preprocessing"]["windows"]] == [40, -600, 400]
    assert len(sidecar["loss_per_epoch"]) == 1

    # The backbone loads back into timm with strict keys and gives finite features.
    model = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    model.load_state_dict(load_file(str(out)), strict=True)
    with torch.no_grad():
        features = model.eval()(torch.rand(2, 3, 32, 32))
    assert features.shape == (2, model.num_features) and torch.isfinite(features).all()


def test_sidecar_reads_back_after_the_folder_moves(natural_corpus, straight_run, tmp_path):
    moved = tmp_path / "moved"
    moved.mkdir()
    for path in (straight_run, straight_run.with_suffix(".json")):
        shutil.copy(path, moved / path.name)
    spec, payload = read_sidecar(moved / straight_run.with_suffix(".json").name)
    assert spec.weights == (moved / straight_run.name).resolve()
    assert spec.pretraining_domain == "natural" and payload["corpus"]["kind"] == "image"
    # natural images: one 0-255 window over the three colour channels
    assert payload["corpus"]["preprocessing"]["windows"] == [{"center": 127.5, "width": 255.0}]


def test_same_inputs_give_the_same_weight_bytes(natural_corpus, straight_run, tmp_path):
    again = tmp_path / "again.safetensors"
    pretrain(natural_corpus, again, epochs=2, batch_size=8, **TINY)
    assert again.read_bytes() == straight_run.read_bytes()


def test_finished_run_is_recognised_as_cached(natural_corpus, straight_run):
    recipe = DEMO_RECIPES["natural"].with_(arch="test_resnet", image_size=32, epochs=2, batch_size=8)
    assert is_pretrained(natural_corpus, straight_run, recipe)
    assert not is_pretrained(natural_corpus, straight_run)  # the default: the natural demo recipe
    assert not is_pretrained(natural_corpus, straight_run, recipe.with_(epochs=3))
    assert not is_pretrained(natural_corpus, straight_run.with_name("absent.safetensors"), recipe)


def test_interrupted_run_resumes_to_the_same_weights(natural_corpus, straight_run, tmp_path):
    out = tmp_path / "resumed.safetensors"

    def interrupt(epoch: int, loss: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(natural_corpus, out, epochs=2, batch_size=8, on_epoch_end=interrupt, **TINY)
    assert state_path(out).is_file() and not out.exists()
    state = torch.load(state_path(out), weights_only=True)  # plain tensors and numbers only
    assert state["epochs_done"] == 1

    # A different recipe (here: total epochs, which the LR schedule spans) refuses the state.
    with pytest.raises(ConfigError, match="another recipe"):
        pretrain(natural_corpus, out, epochs=3, batch_size=8, **TINY)

    seen = []
    spec = pretrain(natural_corpus, out, epochs=2, batch_size=8, on_epoch_end=lambda e, l: seen.append(e), **TINY)
    assert seen == [1], "only the second epoch runs on resume"
    assert out.read_bytes() == straight_run.read_bytes()
    assert spec.sha256 == file_sha256(straight_run)
    assert json.loads(out.with_suffix(".json").read_text())["loss_per_epoch"] == \
        json.loads(straight_run.with_suffix(".json").read_text())["loss_per_epoch"]
    assert not state_path(out).exists()


def test_simclr_loss_decreases(natural_corpus, tmp_path):
    out = tmp_path / "learn.safetensors"
    pretrain(natural_corpus, out, epochs=6, batch_size=16, lr=3e-3, **TINY)
    losses = json.loads(out.with_suffix(".json").read_text())["loss_per_epoch"]
    assert len(losses) == 6
    assert losses[-1] < losses[0], losses
    assert sum(losses[-2:]) < sum(losses[:2]), losses


def test_byol_writes_a_backbone(natural_corpus, tmp_path):
    out = tmp_path / "byol.safetensors"
    spec = pretrain(natural_corpus, out, method="byol", epochs=1, batch_size=8, **TINY)
    assert spec.method == "byol" and spec.sha256 == file_sha256(out)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    model.load_state_dict(load_file(str(out)), strict=True)  # no momentum copy or head keys


def test_corpus_without_images_is_a_data_error(tmp_path):
    empty = tmp_path / "empty-corpus"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="empty-corpus.*holds no DICOM files and no images"):
        pretrain(empty, tmp_path / "x.safetensors", **TINY)
    with pytest.raises(DataError, match="does not exist"):
        pretrain(tmp_path / "missing", tmp_path / "x.safetensors", **TINY)


def test_mixed_corpus_is_refused(ct_corpus, natural_corpus, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(ct_corpus, mixed)
    shutil.copy(next(natural_corpus.glob("*.png")), mixed / "photo.png")
    with pytest.raises(DataError, match="mixes"):
        find_corpus_files(mixed)


def test_bad_arguments_are_config_errors(natural_corpus, tmp_path):
    with pytest.raises(ConfigError, match="safetensors"):
        pretrain(natural_corpus, tmp_path / "x.pt", **TINY)
    with pytest.raises(ConfigError, match="unknown pretraining method"):
        pretrain(natural_corpus, tmp_path / "x.safetensors", method="mae", **TINY)


def test_default_recipe_follows_the_corpus_domain(ct_corpus, natural_corpus):
    assert default_recipe(ct_corpus) == DEMO_RECIPES["ct"] == DEMO_RECIPE
    assert default_recipe(natural_corpus) == DEMO_RECIPES["natural"]
    from baselines import builtin_checkpoints

    pretrained = {c.arch for c in builtin_checkpoints() if c.demo and c.method != "random-init"}
    assert {r.arch for r in DEMO_RECIPES.values()} == pretrained
    assert {r.image_size for r in DEMO_RECIPES.values()} == {64}


def test_corpus_is_decoded_once_into_a_float16_tensor(natural_corpus):
    corpus = load_corpus(natural_corpus, 32, progress=False)
    assert corpus.images.dtype == torch.float16 and corpus.images.shape == (16, 3, 32, 32)
    assert 0 <= float(corpus.images.min()) and float(corpus.images.max()) <= 1
    assert len(corpus.fingerprint) == 64


def test_augmentations_differ_per_image_and_follow_the_generator():
    augment = SimCLRAugment(Recipe(image_size=32), mean=(0.5,) * 3, std=(0.25,) * 3)
    images = torch.rand(1, 3, 32, 32).expand(64, -1, -1, -1).contiguous()
    views = augment(images.clone(), torch.Generator().manual_seed(0))
    assert views.shape == (64, 3, 32, 32) and torch.isfinite(views).all()
    assert len({v.numpy().tobytes() for v in views}) > 60, "each image draws its own crop and jitter"
    pixels = views * 0.25 + 0.5
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    assert torch.equal(views, augment(images.clone(), torch.Generator().manual_seed(0)))
    gray_share = float((views[:, 0] == views[:, 1]).flatten(1).all(1).float().mean())
    assert 0.05 < gray_share < 0.5  # random grayscale p 0.2


def test_hsv_round_trip():
    rgb = torch.rand(4, 3, 8, 8)
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(rgb)), rgb, atol=1e-5)


def test_learning_rate_warms_up_then_decays_to_zero():
    lrs = [lr_at(step, 100, 10, 1.0) for step in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] < 0.01
