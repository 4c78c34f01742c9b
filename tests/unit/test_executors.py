"""Executor configuration: chunking, CLI validation and the SLURM parameters."""
import argparse

import pytest

from benchmark.cli.evaluate import exec_options
from benchmark.cli.main import build_parser
from benchmark.cli.options import slurm_minutes as _slurm_minutes
from benchmark.core.errors import ConfigError
from benchmark.execution.executors import SlurmOptions
from benchmark.execution.executors.chunks import chunks
from benchmark.execution.executors.submitit_executor import slurm_parameters
from benchmark.execution.grid import expand


def grid(profile="demo"):
    return expand([("a", "1" * 64), ("b", "2" * 64)], [("t", "1", [1.0, 0.1])],
                  [("linear", "1"), ("finetune", "1")], [42, 1, 2], profile)


def test_demo_chunks_are_one_per_task_checkpoint_and_protocol():
    parts = chunks(grid("demo"))
    assert len(parts) == 4 and all(len(p) == 6 for p in parts)
    assert all(len({(j.task, j.checkpoint, j.protocol) for j in p}) == 1 for p in parts)


def test_paper_chunks_give_each_training_job_its_own_task_but_keep_feature_jobs_together():
    parts = chunks(grid("paper"))
    assert sorted(len(p) for p in parts) == [1] * 12 + [6, 6]
    assert {p[0].protocol for p in parts if len(p) == 6} == {"linear"}
    assert sorted(j.job_id for p in parts for j in p) == sorted(j.job_id for j in grid("paper"))


@pytest.mark.parametrize("text, minutes", [("240", 240), ("4:00:00", 240), ("30:30", 31), ("1-12:00", 2160),
                                           ("2-01:02:03", 2943), ("1-0", 1440)])
def test_slurm_times_follow_sbatch_formats(text, minutes):
    assert _slurm_minutes(text) == minutes


@pytest.mark.parametrize("text", ["0", "soon", "1:2:3:4", "-5", ""])
def test_bad_slurm_times_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        _slurm_minutes(text)


def parse(*flags):
    return build_parser().parse_args(["run", *flags])


def test_slurm_flags_become_submitit_parameters():
    options = exec_options(parse("--executor", "slurm", "--slurm-partition", "gpu", "--slurm-time", "1-00:00:00",
                                 "--slurm-gpus-per-job", "2", "--slurm-account", "lab", "--slurm-extra", "mem=64G",
                                 "--slurm-extra=--qos=high", "--no-wait"))
    assert not options.wait and options.slurm.extra == {"mem": "64G", "qos": "high"}
    params = slurm_parameters(options.slurm)
    assert params["slurm_partition"] == "gpu" and params["timeout_min"] == 1440 and params["gpus_per_node"] == 2
    assert params["slurm_account"] == "lab" and params["slurm_additional_parameters"] == {"mem": "64G", "qos": "high"}
    assert params["cpus_per_task"] == SlurmOptions().cpus_per_job
    assert params["slurm_array_parallelism"] == SlurmOptions().array_parallelism


def test_devices_per_job_become_tasks_and_gpus_per_node_and_the_callable_is_checkpointable():
    """One rank per task (submitit starts them, each seeing its local rank's GPU); USR2 before a
    time-out makes submitit call ``checkpoint``, which resubmits the same chunk."""
    from benchmark.execution.executors.submitit_executor import ResumableChunk

    options = exec_options(parse("--executor", "slurm", "--devices-per-job", "4", "--checkpoint-every", "2.5",
                                 "--micro-batch", "64"))
    assert (options.devices_per_job, options.checkpoint_every_min, options.micro_batch) == (4, 2.5, 64)
    params = slurm_parameters(options.slurm, options.devices_per_job)
    assert params["tasks_per_node"] == 4 and params["gpus_per_node"] == 4 and params["nodes"] == 1
    delayed = ResumableChunk().checkpoint("the chunk")
    assert isinstance(delayed.function, ResumableChunk) and delayed.args == ("the chunk",)


@pytest.mark.parametrize("value", ["-1", "soon", "inf"])
def test_checkpoint_every_takes_minutes_of_zero_or_more(value, capsys):
    with pytest.raises(SystemExit):
        parse("--checkpoint-every", value)
    assert "expected a number of minutes" in capsys.readouterr().err


@pytest.mark.parametrize("flags, named", [(("--slurm-partition", "gpu"), "--slurm-partition"),
                                          (("--no-wait",), "--no-wait"),
                                          (("--executor", "submitit-local", "--slurm-time", "10"), "--slurm-time"),
                                          (("--executor", "slurm", "--jobs", "2"), "--jobs")])
def test_a_flag_the_executor_would_ignore_is_an_error(flags, named):
    with pytest.raises(ConfigError, match=named):
        exec_options(parse(*flags))


def test_local_defaults_run_in_process_with_one_thread():
    options = exec_options(parse())
    assert (options.executor, options.jobs, options.threads, options.wait) == ("local", 1, 1, True)
