import pytest

from benchmark.catalog.registries import checkpoint_registry
from benchmark.catalog.resolve import is_available, resolve
from benchmark.catalog.submissions import load_submissions, record_submission
from benchmark.core.errors import CheckpointError, ConfigError, RegistryError
from benchmark.core.specs import CheckpointSpec
from benchmark.core.workdir import Workdir


def spec(name="mine", sha="a" * 64, method="simclr"):
    return CheckpointSpec(name=name, arch="resnet18", weights="/x/w.pth", sha256=sha, pretraining_domain="ct",
                          method=method)


def test_a_submission_is_recorded_once_and_recognised(tmp_path):
    assert record_submission(tmp_path, spec())
    assert not record_submission(tmp_path, spec())
    assert [s.name for s, _ in load_submissions(tmp_path)] == ["mine"]


def test_metadata_can_be_corrected_for_the_same_bytes(tmp_path):
    record_submission(tmp_path, spec())
    assert record_submission(tmp_path, spec(method="byol"))
    assert load_submissions(tmp_path)[0][0].method == "byol"


def test_a_name_cannot_be_moved_to_other_bytes(tmp_path):
    record_submission(tmp_path, spec())
    with pytest.raises(ConfigError, match="already taken"):
        record_submission(tmp_path, spec(sha="b" * 64))


def test_submissions_join_the_registry_and_may_not_shadow_a_baseline(tmp_path):
    workdir = Workdir(tmp_path)
    record_submission(workdir.submissions, spec())
    assert "mine" in checkpoint_registry(workdir)
    assert "mine" not in checkpoint_registry()
    record_submission(workdir.submissions, spec(name="random"))
    with pytest.raises(RegistryError, match="built-in package baselines.*submission"):
        checkpoint_registry(workdir)


def test_a_corrupt_submission_file_is_named(tmp_path):
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="bad.json"):
        load_submissions(tmp_path)


def test_baselines_without_a_local_file_are_unavailable_until_named(tmp_path):
    imagenet = checkpoint_registry().get("imagenet")
    assert not is_available(imagenet, {})
    assert is_available(imagenet, {"imagenet": tmp_path / "w.pth"})
    with pytest.raises(CheckpointError, match="--weights imagenet=FILE"):
        resolve(imagenet, Workdir(tmp_path))
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve(imagenet, Workdir(tmp_path), {"imagenet": tmp_path / "w.pth"})
