import pytest
from pydantic import ValidationError

from benchmark.core.specs import CheckpointSpec, Preprocessing, RunSpec, TaskSpec, Window


def task_kwargs(**overrides):
    base = dict(name="t", version="1", domain="ct", kind="classification", class_names=["a", "b"],
                metrics=["accuracy"], main_metric="accuracy")
    return {**base, **overrides}


def test_task_spec_accepts_a_valid_spec():
    spec = TaskSpec(**task_kwargs())
    assert spec.default_scales == [1.0, 0.1, 0.01]
    assert spec.higher_is_better


@pytest.mark.parametrize("bad", [
    {"unknown_field": 1},
    {"domain": "ultrasound"},
    {"kind": "regression"},
    {"main_metric": "auc"},  # not in metrics
    {"name": "../etc"},  # names become paths
    {"version": "v1"},
    {"default_scales": [0.0]},
    {"default_scales": [1.5]},
])
def test_task_spec_rejects(bad):
    with pytest.raises(ValidationError):
        TaskSpec(**task_kwargs(**bad))


def test_checkpoint_spec_forbids_extra_and_checks_domain_and_sha():
    CheckpointSpec(name="c", arch="resnet18", pretraining_domain="ct")
    with pytest.raises(ValidationError):
        CheckpointSpec(name="c", arch="resnet18", pretraining_domain="imagenet")
    with pytest.raises(ValidationError):
        CheckpointSpec(name="c", arch="resnet18", pretraining_domain="ct", sha256="xyz")
    with pytest.raises(ValidationError):
        CheckpointSpec(name="c", arch="resnet18", pretraining_domain="ct", weigths="typo.pt")


def test_run_spec_defaults_are_the_study_seeds_and_validates_scales():
    assert RunSpec(checkpoints=["a"], tasks=["t"]).seeds == [42, 1, 2, 3]
    with pytest.raises(ValidationError):
        RunSpec(checkpoints=["a"], tasks=["t"], scales=[0.5, 2])


def test_preprocessing_key_changes_with_any_field_and_windows_must_fit_channels():
    base = Preprocessing(windows=[Window(center=40, width=400)], channels=3, size=64)
    assert base.key() == Preprocessing(windows=[Window(center=40, width=400)], channels=3, size=64).key()
    assert base.key() != base.model_copy(update={"size": 32}).key()
    with pytest.raises(ValidationError):
        Preprocessing(windows=[Window(center=0, width=1)] * 2, channels=1)
    assert Window(center=40, width=400).bounds == (-160, 240)
