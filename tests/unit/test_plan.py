import pytest

from benchmark.core.errors import ConfigError, RegistryError
from benchmark.core.specs import RunSpec
from benchmark.core.workdir import Workdir
from benchmark.execution.grid import plan


def test_protocols_only_pair_with_task_kinds_they_evaluate(tmp_path):
    spec = RunSpec(checkpoints=["random"], tasks=["phantom-body-region", "phantom-liver-segmentation"],
                   scales=[1.0, 0.1], seeds=[42, 1])
    grid = plan(spec, Workdir(tmp_path))
    pairs = {(j.task, j.protocol) for j in grid.jobs}
    assert pairs == {("phantom-body-region", "linear"), ("phantom-body-region", "finetune"),
                     ("phantom-liver-segmentation", "seg-linear"), ("phantom-liver-segmentation", "seg-finetune")}
    assert len(grid.jobs) == 4 * 2 * 2  # task-protocol pairs x scales x seeds
    assert sorted(grid.not_applicable) == [("phantom-body-region", "seg-finetune"), ("phantom-body-region", "seg-linear"),
                                           ("phantom-liver-segmentation", "finetune"),
                                           ("phantom-liver-segmentation", "linear")]
    assert grid.checkpoints["random"].weights.is_file()


def test_a_grid_with_nothing_to_run_is_an_error(tmp_path):
    spec = RunSpec(checkpoints=["random"], tasks=["phantom-liver-segmentation"], protocols=["linear", "knn"])
    with pytest.raises(ConfigError, match="no protocol"):
        plan(spec, Workdir(tmp_path))


def test_unknown_protocol_is_named(tmp_path):
    with pytest.raises(RegistryError, match="unknown protocol 'finetuning'"):
        plan(RunSpec(checkpoints=["random"], tasks=["phantom-body-region"], protocols=["finetuning"]),
             Workdir(tmp_path))


def test_workdir_flag_beats_environment_beats_default(monkeypatch, tmp_path):
    monkeypatch.setenv("CTBENCH_WORKDIR", str(tmp_path / "env"))
    assert Workdir.resolve(str(tmp_path / "flag")).root == tmp_path / "flag"
    assert Workdir.resolve().root == tmp_path / "env"
    monkeypatch.delenv("CTBENCH_WORKDIR")
    monkeypatch.chdir(tmp_path)
    assert Workdir.resolve().root == tmp_path / "ctbench-work"
