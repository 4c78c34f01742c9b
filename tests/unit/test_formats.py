"""Every checkpoint format gives the source model's features; unsafe or broken files are refused."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from benchmark.core.errors import CheckpointError
from benchmark.core.specs import CheckpointSpec, InputConvention
from benchmark.models.formats import detect_format, inspect_checkpoint, load_checkpoint
from benchmark.models.formats.radimagenet import KERAS_BN_EPS
from benchmark.models.load import load_backbone
from tests.fixtures import checkpoints as fx

X = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def r18():
    return fx.source_model("resnet18", seed=0)


@pytest.fixture(scope="module")
def r18_features(r18):
    return fx.reference_features(r18, X)


@pytest.fixture(scope="module")
def r50():
    return fx.source_model("resnet50", seed=5)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return tmp_path_factory.mktemp("checkpoints")


def features(model, x=X):
    with torch.no_grad():
        return model(x)


def spec(path: Path, fmt: str, arch: str = "resnet18", channels: int = 3) -> CheckpointSpec:
    return CheckpointSpec(name="t", arch=arch, weights=path, format=fmt, pretraining_domain="ct",
                          input=InputConvention(channels=channels, mean=(0.5,) * channels, std=(0.25,) * channels))


RESNET18_WRITERS = {
    # writer, the format detection must name
    "timm-pth": (fx.write_timm_pth, "timm"),
    "timm-train-checkpoint": (fx.write_timm_train_checkpoint, "timm"),
    "timm-safetensors": (fx.write_timm_safetensors, "safetensors"),
    "torchvision": (fx.write_torchvision, "timm"),  # same keys as timm for ResNets: either name loads it
    "solo-learn": (lambda m, out: fx.write_solo_learn(m, out / "solo"), "solo-learn"),
    "solo-learn-old-encoder": (lambda m, out: fx.write_solo_learn_old(m, out / "solo-old"), "solo-learn"),
    "lightly-sequential": (fx.write_lightly, "lightly"),
    "lightly-exported-last": (fx.write_lightly_exported, "lightly"),
    "radiologynet": (fx.write_radiologynet, "radiologynet"),
}


@pytest.mark.parametrize("name", list(RESNET18_WRITERS))
def test_each_format_gives_the_source_features(name, r18, r18_features, files):
    writer, expected_format = RESNET18_WRITERS[name]
    path = writer(r18, _mk(files / name))
    fmt, reason = detect_format(path)
    assert fmt == expected_format, reason
    assert reason

    report = inspect_checkpoint(path)  # no --arch: inferred from args.json, model_name or key shapes
    assert report["arch"] == "resnet18"
    assert report["ok"] and report["finite"]
    keys = report["keys"]
    assert keys["missing"] == [] and keys["unexpected"] == [] and keys["shape_mismatch"] == []
    assert keys["matched"] == len(fx.source_model("resnet18").state_dict()) - 2  # all but fc.weight/fc.bias
    assert report["input_channels"] == 3 and len(report["sha256"]) == 64
    assert report["parameters"] == sum(p.numel() for n, p in r18.named_parameters() if not n.startswith("fc."))
    json.dumps(report)  # JSON-ready

    loaded = load_checkpoint(path, arch="resnet18", fmt=fmt)
    assert not loaded.model.training
    torch.testing.assert_close(features(loaded.model), r18_features, rtol=1e-5, atol=1e-5)


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_torchvision_forward_equals_timm_for_the_same_weights(r18, r18_features, files):
    """The premise of the torchvision adapter: identical keys *and* identical computation."""
    tv = torchvision.models.resnet18(weights=None, num_classes=fx.NUM_CLASSES)
    tv.load_state_dict(r18.state_dict())
    tv.fc = torch.nn.Identity()
    torch.testing.assert_close(features(tv.eval()), r18_features, rtol=1e-5, atol=1e-5)
    loaded = load_checkpoint(fx.write_torchvision(r18, files), fmt="torchvision")
    assert loaded.report.ignored_head == ["fc.weight", "fc.bias"]


def test_solo_learn_takes_only_backbone_keys_and_records_args(r18, r18_features, files):
    path = fx.write_solo_learn(r18, files / "solo-args")
    loaded = load_checkpoint(path)
    assert loaded.arch == "resnet18" and "args.json" in loaded.arch_source
    assert loaded.method == "byol"
    assert loaded.report.dropped == {"momentum_backbone": 120, "projector": 8, "momentum_projector": 1,
                                     "classifier": 2}
    assert any("inert placeholders" in note and "omegaconf" in note for note in loaded.notes)
    torch.testing.assert_close(features(loaded.model), r18_features, rtol=1e-5, atol=1e-5)
    with pytest.raises(CheckpointError, match="args.json backbone 'resnet18' means timm resnet18.*resnet50"):
        load_checkpoint(path, arch="resnet50")


def test_load_backbone_uses_the_spec_format_and_records_how(r18, r18_features, files):
    path = fx.write_lightly(r18, _mk(files / "lightly-spec"))
    model = load_backbone(spec(path, "lightly"))
    assert not model.training and model.num_features == 512
    torch.testing.assert_close(features(model), r18_features, rtol=1e-5, atol=1e-5)
    assert model.ctbench_load["format"] == "lightly" and model.ctbench_load["keys"]["matched"] == 120
    assert model.ctbench_load["input_conv"]["adapted"] is False


def test_study_encoders(r50, files):
    reference = fx.reference_features(r50, X)
    plain = fx.write_study_encoder(r50, files)
    finetuned = fx.write_study_finetuned(r50, files)
    assert detect_format(plain)[0] == "timm"  # a headless torchvision dict: the timm adapter reads it as is
    report = inspect_checkpoint(finetuned)
    assert report["format"] == "study" and report["arch"] == "resnet50" and report["ok"]
    assert report["keys"]["ignored_head"] == ["head.weight", "head.bias"]
    for path in (plain, finetuned):
        loaded = load_checkpoint(path, fmt="study")
        assert loaded.arch == "resnet50" and loaded.report.ok
        assert loaded.report.matched == len(loaded.model.state_dict())
        torch.testing.assert_close(features(loaded.model), reference, rtol=1e-4, atol=1e-4)


def _keras_resnet50_reference(state: dict, x: torch.Tensor) -> torch.Tensor:
    """The Keras ResNet50 computation written out with functional ops, independently of the model class."""
    def bn(t, name):
        return F.batch_norm(t, state[f"{name}.running_mean"], state[f"{name}.running_var"], state[f"{name}.weight"],
                            state[f"{name}.bias"], False, 0.0, KERAS_BN_EPS)

    def conv(t, name, stride=1, padding=0):
        return F.conv2d(t, state[f"{name}.weight"], state[f"{name}.bias"], stride, padding)

    t = F.max_pool2d(F.pad(F.relu(bn(conv(x, "conv1", 2, 3), "bn1")), (1, 1, 1, 1)), 3, 2)  # Keras pads with 0
    for stage, blocks in enumerate((3, 4, 6, 3), start=1):
        for block in range(blocks):
            name = f"layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1  # Keras: stride on the first 1x1 conv
            shortcut = bn(conv(t, f"{name}.downsample.0", stride), f"{name}.downsample.1") if block == 0 else t
            out = F.relu(bn(conv(t, f"{name}.conv1", stride), f"{name}.bn1"))
            out = F.relu(bn(conv(out, f"{name}.conv2", 1, 1), f"{name}.bn2"))
            t = F.relu(bn(conv(out, f"{name}.conv3"), f"{name}.bn3") + shortcut)
    return t.mean(dim=(2, 3))


def test_radimagenet_port(files):
    source = fx.radimagenet_model(seed=3)
    path = fx.write_radimagenet(source, files)
    fmt, reason = detect_format(path)
    assert fmt == "radimagenet" and "bias" in reason
    report = inspect_checkpoint(path)
    assert report["arch"] == "resnet50" and report["ok"] and report["keys"]["unexpected"] == []
    assert report["keys"]["matched"] == len(source.state_dict())
    assert report["input_hint"]["channel_order"] == "BGR" and report["input_hint"]["std"] == [1.0, 1.0, 1.0]
    model = load_backbone(spec(path, "radimagenet", arch="resnet50"))
    out = features(model)
    assert out.shape == (2, 2048) == (2, model.num_features)
    torch.testing.assert_close(out, _keras_resnet50_reference(source.state_dict(), X), rtol=1e-4, atol=1e-4)
    with pytest.raises(CheckpointError, match="ResNet50"):
        load_checkpoint(path, arch="resnet18", fmt="radimagenet")


def test_wrong_architecture_lists_the_keys(r18, files):
    path = fx.write_timm_pth(r18, _mk(files / "wrong-arch"))
    with pytest.raises(CheckpointError) as error:
        load_backbone(spec(path, "timm", arch="resnet50"))
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    assert "missing [" in message and "layer1.0.conv3.weight" in message and "more" in message
    assert "with another shape" in message and "look like resnet18" in message
    report = inspect_checkpoint(path, arch="resnet50")  # inspect reports instead of raising
    assert not report["ok"] and "layer1.0.conv3.weight" in report["keys"]["missing"]


def test_unexpected_keys_are_listed(r18, files):
    state = dict(r18.state_dict())
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    path = _mk(files / "extra") / "extra.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"1 unexpected \[layer5.0.conv1.weight\]"):
        load_checkpoint(path, arch="resnet18")


def test_malicious_pickle_is_refused_and_never_runs(r18, tmp_path):
    marker = tmp_path / "pwned"
    for path in fx.write_malicious(r18, tmp_path, marker):
        for call in (lambda: detect_format(path), lambda: inspect_checkpoint(path),
                     lambda: load_backbone(spec(path, "timm"))):
            with pytest.raises(CheckpointError, match="refused") as error:
                call()
            assert "\n" not in str(error.value) and str(path) in str(error.value)
            assert "system" in str(error.value) or "open" in str(error.value)
    assert not marker.exists()


def test_truncated_files_are_refused(r18, files):
    out = _mk(files / "truncated")
    for path in (fx.write_timm_pth(r18, out), fx.write_timm_safetensors(r18, out)):
        broken = fx.write_truncated(path)
        with pytest.raises(CheckpointError, match="not a readable") as error:
            inspect_checkpoint(broken)
        assert "\n" not in str(error.value)


def test_non_finite_weights_are_refused(r18, files):
    state = dict(r18.state_dict())
    state["layer2.0.conv1.weight"] = state["layer2.0.conv1.weight"].clone()
    state["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    state["bn1.running_var"] = torch.full_like(state["bn1.running_var"], float("inf"))
    path = _mk(files / "nan") / "nan.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"non-finite.*2 tensors.*bn1.running_var.*layer2.0.conv1.weight"):
        load_backbone(spec(path, "timm"))
    report = inspect_checkpoint(path)
    assert report["finite"] is False and not report["ok"]


@pytest.mark.parametrize("file_chans, model_chans", [(1, 3), (3, 1)])
def test_input_conv_is_adapted_between_1_and_3_channels(file_chans, model_chans, files):
    source = fx.source_model("resnet18", seed=2, in_chans=file_chans)
    path = fx.write_timm_pth(source, _mk(files / f"chans{file_chans}"))
    assert inspect_checkpoint(path)["input_channels"] == file_chans
    model = load_backbone(spec(path, "timm", channels=model_chans))
    record = model.ctbench_load["input_conv"]
    assert record["adapted"] is True and record["file_channels"] == file_chans
    assert record["model_channels"] == model_chans and record["how"]
    grey = X[:, :1]  # a grey image: same content in every channel, as CT windows of one slice
    expected = fx.reference_features(source, grey.expand(-1, file_chans, -1, -1))
    torch.testing.assert_close(features(model, grey.expand(-1, model_chans, -1, -1)), expected,
                               rtol=1e-4, atol=1e-4)


def test_explicit_format_overrides_detection_and_unknown_format_fails(r18, files):
    path = fx.write_lightly(r18, _mk(files / "override"))
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path, arch="resnet18", fmt="timm")  # lightly keys read as timm names do not fit
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        load_checkpoint(path, fmt="keras")


def test_missing_file_and_non_state_dict(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        inspect_checkpoint(tmp_path / "nope.pth")
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match="state dict"):
        inspect_checkpoint(path)
