"""The ``paper`` profile end to end on CPU: the study's LiTS, BraTS and ChestX-ray14 tasks (tiny fixtures in
their real layouts), a study-format ResNet-50 and a timm one, each fed its own input convention.

The only concession to a CPU is ``--max-epochs 1``: every other setting (256 px, ResNet-50, the
study's recipes, batch sizes and augmentations, no hold-out at "last epoch") is the paper's.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision

from tests.cli_helpers import results, run_cli
from tests.fixtures.checkpoints import NUM_CLASSES, write_study_encoder, write_timm_safetensors
from tests.fixtures.datasets.cross_domain import write_brats2020, write_chestxray14
from tests.fixtures.datasets.nifti_ct import write_lits

TASKS = {"lits-liver-segmentation": "lits", "brats2020-segmentation": "brats", "chestxray14": "cx14"}
PROTOCOLS = "linear,knn,linear-study,finetune,seg-linear,seg-linear-study,seg-finetune"


def _torchvision_init_as_timm() -> torch.nn.Module:
    """A torchvision ResNet-50 initialisation (the study's scratch model is one) held by a timm model."""
    torch.manual_seed(0)
    tv = torchvision.models.resnet50(weights=None, num_classes=NUM_CLASSES)
    model = timm.create_model("resnet50", pretrained=False, num_classes=NUM_CLASSES)
    model.load_state_dict(tv.state_dict())
    return model


def paper_args(workdir: Path, data: dict, weights: dict, protocols: str, *extra: str) -> list[str]:
    return ["run", "--profile", "paper", "--workdir", str(workdir), "--device", "cpu", "--max-epochs", "1",
            "--seeds", "42", "--scales", "1", "--tasks", ",".join(data), "--protocols", protocols,
            "--checkpoints", ",".join(weights), *[f"--weights={name}={path}" for name, path in weights.items()],
            "--analysis-task", "none", *[f"--data={task}={path}" for task, path in data.items()], *extra]


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    data = {"lits-liver-segmentation": write_lits(root / "lits", n_volumes=4),
            "brats2020-segmentation": write_brats2020(root / "brats", n_patients=4, shape=(32, 32, 4)),
            "chestxray14": write_chestxray14(root / "cx14")}
    (root / "weights").mkdir()
    torch.manual_seed(1)
    weights = {"radnet": write_study_encoder(_torchvision_init_as_timm(), root / "weights"),
               "imagenet": write_timm_safetensors(timm.create_model("resnet50", pretrained=False), root / "weights")}
    workdir = root / "work"
    run_cli(*paper_args(workdir, data, weights, PROTOCOLS))
    return workdir, data, weights


def test_every_job_ran_in_its_checkpoints_own_convention(paper_run):
    workdir, _, _ = paper_run
    found = results(workdir)
    ran = {(r["job"]["task"], r["job"]["protocol"], r["job"]["checkpoint"]) for r in found.values()}
    expected = {(task, protocol, checkpoint) for checkpoint in ("radnet", "imagenet")
                for task, protocol in [("chestxray14", "linear"), ("chestxray14", "knn"), ("chestxray14", "linear-study"),
                                       ("chestxray14", "finetune"),
                                       *((seg, p) for seg in ("lits-liver-segmentation", "brats2020-segmentation")
                                         for p in ("seg-linear", "seg-linear-study", "seg-finetune"))]}
    assert ran == expected
    for result in found.values():
        seen = result["input"]
        assert seen["forced"] is False
        if result["job"]["checkpoint"] == "radnet":  # the study's encoders: min-max grey x3, no mean/std
            assert seen["native"] == "minmax_grey3"
            assert seen["convention"]["intensity_applied"] == "minmax" and seen["convention"]["mean"] is None
            assert seen["convention"]["cache_values"] == "raw" and seen["convention"]["interpolation"] == "bilinear"
        else:  # timm's ImageNet weights: the task's mapping, then ImageNet statistics
            assert seen["native"] == "imagenet_rgb"
            assert seen["convention"]["mean"] == [0.485, 0.456, 0.406]
        assert result["preprocessing"]["size"] == 256 and result["job"]["profile"] == "paper"
        assert result["job"]["max_epochs"] == 1
        assert set(result["classes_absent"]) <= {"val", "test"} and "test" in result["classes_absent"]
        assert set(result["classes_absent"]["test"]) <= set(result["task"]["class_names"])


def test_training_jobs_follow_the_study(paper_run):
    workdir, _, _ = paper_run
    for result in results(workdir).values():
        job, hyper = result["job"], result["hyperparameters"]
        if job["protocol"] in ("linear", "knn"):
            assert result["counts"]["val_cases"] > 0  # the probes tune C or k on their hold-out
            assert hyper["sweep_undefined"] in (True, False)
            continue
        recipe = hyper["recipe"]
        assert recipe["selection"] == "last" and recipe["head_bias"] is False and recipe["epochs"] == 1
        assert result["counts"]["val_cases"] == 0  # the whole budget trains: nothing is selected on a hold-out
        assert "-noval" in result["splits"]["budget_manifest"]
        augmentation = hyper["augmentation"]
        assert augmentation["implementation"] == "kornia" and augmentation["implementation_version"]
        assert hyper["micro_batch"] * hyper["accumulation_steps"] >= min(recipe["batch_size"], result["counts"]["train_cases"])
        speeds = result["provenance"]["throughput"]
        assert [s["epoch"] for s in speeds] == [1] and all(0 <= s["data_wait_fraction"] <= 1 for s in speeds)
        assert augmentation["p"] == 0.2 and augmentation["crop_scale"] == [0.08, 1.0] and augmentation["blur_kernel"] == 3
        if job["task"] == "brats2020-segmentation":
            assert augmentation["jitter"] is None and augmentation["sharpness"] is None
        if job["task"] == "chestxray14":
            assert recipe["class_weights"][-1] == 0.001 and augmentation["sharpness"] == 2.0
        if job["protocol"].endswith("linear-study"):
            assert job["protocol"] in ("linear-study", "seg-linear-study")


def test_segmentation_results_carry_the_studys_dice_beside_the_ranking_one(paper_run):
    workdir, _, _ = paper_run
    for result in results(workdir).values():
        if result["job"]["task"] == "brats2020-segmentation":
            assert {k for k in result["metrics"] if k.startswith("dice_study_")} == {
                "dice_study_background", "dice_study_ET", "dice_study_WT", "dice_study_TC"}
            assert result["main_metric"]["name"] == "dice_mean"
        if result["job"]["task"] == "lits-liver-segmentation":
            assert {"dice_study_liver", "dice_study_tumour"} <= set(result["metrics"])


def test_a_forced_convention_is_recorded_cached_apart_and_ranked_apart(paper_run):
    workdir, data, weights = paper_run
    run_cli(*paper_args(workdir, {"chestxray14": data["chestxray14"]}, weights, "linear",
                        "--force-input-convention", "imagenet_rgb"))
    linear = {r["input"]["forced"]: r for r in results(workdir).values()
              if r["job"]["protocol"] == "linear" and r["job"]["checkpoint"] == "radnet"}
    native, forced = linear[False], linear[True]
    assert forced["input"]["convention"]["name"] == "imagenet_rgb" and forced["input"]["native"] == "minmax_grey3"
    assert forced["feature_cache_key"] != native["feature_cache_key"]
    assert "--in-imagenet_rgb--" in forced["job"]["job_id"]
    html = (workdir / "site" / "index.html").read_text()
    assert "radnet+input-imagenet-rgb" in html  # its own leaderboard entry, never averaged into radnet's


def test_features_of_each_convention_come_from_one_raw_and_one_mapped_cache(paper_run):
    workdir, _, _ = paper_run
    stages = [json.loads(p.read_text())["stage"] for p in (workdir / "cache" / "slices").rglob("meta.json")]
    assert sorted(stage["values"] for stage in stages) == ["raw", "raw", "raw", "unit", "unit", "unit"]


def test_raw_caches_keep_the_sources_own_values_once_per_channel(paper_run):
    """int16 HU for LiTS's NIfTI, uint8 for ChestX-ray14's 8-bit PNGs, one stored plane per grey slice."""
    workdir, _, _ = paper_run
    raw = {}
    for meta in (workdir / "cache" / "slices").rglob("meta.json"):
        if json.loads(meta.read_text())["stage"]["values"] == "raw":
            raw[meta.parent.parent.name.split("@")[0]] = np.load(meta.parent / "images.npy", mmap_mode="r")
    assert raw["lits-liver-segmentation"].dtype == np.int16 and raw["lits-liver-segmentation"].shape[1] == 1
    assert raw["chestxray14"].dtype == np.uint8 and raw["chestxray14"].shape[1] == 1
