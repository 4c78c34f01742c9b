"""`ctbench submit` and `ctbench checkpoints inspect` on foundation-model checkpoints: a transformers folder
(recorded as its weight file) and an open_clip state dict, each evaluated end to end with its own input
convention; mismatched, unsafe or empty ones refused before anything is stored."""
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from benchmark.cli.main import main
from benchmark.core.hashing import file_sha256
from tests.cli_helpers import TASK, run_cli
from tests.fixtures import foundation_checkpoints as fx
from tests.fixtures.checkpoints import MarkerPayload

pytest.importorskip("transformers")
pytest.importorskip("open_clip")


def _submit(path: Path, name: str, arch: str, workdir: Path, phantom: Path):
    return run_cli("submit", str(path), "--name", name, "--arch", arch, "--pretraining-domain", "natural",
                   "--tasks", TASK, "--task-data", f"{TASK}={phantom / 'dicom'}", "--scales", "1", "--seeds", "42",
                   "--protocols", "linear", "--device", "cpu", "--workdir", str(workdir))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("foundation")
    return {"hf": fx.write_transformers(fx.hf_model("dinov2"), out / "tiny-dinov2"),
            "clip": fx.write_open_clip(fx.open_clip_vit_model(), out / "clip"), "dir": out}


@pytest.fixture(scope="module")
def submitted(files, tiny_phantom):
    """Both submissions at once, each in its own workdir (two CLI processes: half the wall time)."""
    runs = {"hf": (files["hf"], "tiny-dinov2", "vit_base_patch14_dinov2"),
            "clip": (files["clip"], "tiny-clip", "vit_base_patch16_clip_224")}
    with ThreadPoolExecutor(len(runs)) as pool:
        futures = {key: pool.submit(_submit, path, name, arch, files["dir"] / f"work-{key}", tiny_phantom)
                   for key, (path, name, arch) in runs.items()}
        return {key: (files["dir"] / f"work-{key}", future.result()) for key, future in futures.items()}


def _stored(workdir: Path, name: str) -> tuple[dict, dict]:
    spec = json.loads((workdir / "submissions" / f"{name}.json").read_text())
    results = list((workdir / "results" / name).rglob("*.json"))
    assert len(results) == 1
    return spec, json.loads(results[0].read_text())


def test_a_transformers_folder_is_submitted_as_its_weight_file(submitted, files):
    workdir, proc = submitted["hf"]
    assert "format transformers: config.json beside it with model_type 'dinov2'" in proc.stderr
    spec, result = _stored(workdir, "tiny-dinov2")
    weights = files["hf"] / "model.safetensors"
    assert spec["weights"] == str(weights) and spec["sha256"] == file_sha256(weights)
    assert spec["format"] == "transformers" and spec["method"] == "dinov2"
    assert spec["input"]["name"] == "dinov2" and spec["input"]["pooling"] == "token+avg"
    load = result["checkpoint_load"]
    assert load["format"] == "transformers" and load["keys"]["missing"] == [] and load["keys"]["unexpected"] == []
    assert load["input_convention"]["pooling"] == "token+avg" and load["build"]["kwargs"]["embed_dim"] == 64
    assert result["main_metric"]["value"] is not None


def test_an_open_clip_file_is_submitted_with_clips_convention(submitted, files):
    workdir, proc = submitted["clip"]
    assert "format open_clip: visual.class_embedding and visual.conv1 keys" in proc.stderr
    spec, result = _stored(workdir, "tiny-clip")
    assert spec["format"] == "open_clip" and spec["input"]["name"] == "clip" and spec["input"]["pooling"] == "token"
    assert spec["input"]["mean"] == [0.48145466, 0.4578275, 0.40821073]
    load = result["checkpoint_load"]
    assert load["keys"]["dropped"]["visual.proj"] == 1 and load["keys"]["missing"] == []
    assert result["main_metric"]["value"] is not None


def test_inspect_takes_a_folder_and_explains_the_detection(files, capsys):
    assert main(["checkpoints", "inspect", str(files["hf"])]) == 0
    out = capsys.readouterr().out
    assert f"file:         {files['hf'] / 'model.safetensors'}" in out
    assert "format:       transformers (config.json beside it with model_type 'dinov2'" in out
    assert "architecture: vit_base_patch14_dinov2 (config.json: Dinov2Model, hidden 64" in out
    assert "pooling token+avg (this file's default" in out


def test_a_wrong_architecture_is_refused_before_anything_is_stored(files, tmp_path, capsys):
    code = main(["submit", str(files["hf"]), "--name", "wrong", "--arch", "vit_small_patch14_dinov2",
                 "--workdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 3 and "config.json: Dinov2Model" in err and "vit_small_patch14_dinov2" in err
    assert not (tmp_path / "submissions").exists()


def test_an_unsafe_or_empty_folder_is_refused(files, tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = fx.write_transformers(fx.hf_model("dinov2"), tmp_path / "evil", safetensors=False)
    state = torch.load(evil / "pytorch_model.bin", weights_only=True)
    torch.save({**state, "extra": MarkerPayload(marker)}, evil / "pytorch_model.bin")
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, message in ((evil, "refused"), (empty, "without a weight file")):
        code = main(["submit", str(folder), "--name", "x", "--arch", "vit_base_patch14_dinov2",
                     "--workdir", str(tmp_path / "w")])
        err = capsys.readouterr().err
        assert code == 3 and message in err and str(folder) in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "w" / "submissions").exists()
