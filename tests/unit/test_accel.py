"""The fast-path switches: inert on a CPU (so CPU numbers stay plain fp32), and the GPU check's code path."""
import json

import pytest
import torch

from benchmark.evaluation.accel import Accelerator, largest_batch
from benchmark.execution import gpu_check


def test_a_cpu_accelerator_is_plain_fp32():
    accel = Accelerator.create(torch.device("cpu"))
    assert (accel.precision, accel.channels_last, accel.compile) == ("fp32", False, False)
    x = torch.rand(2, 3, 4, 4)
    assert accel.to_device(x) is x
    with accel.autocast():
        assert torch.get_autocast_dtype("cpu") is not None and not torch.is_autocast_enabled("cpu")
    assert not accel.grad_scaler().is_enabled()


def test_an_explicit_cpu_precision_turns_autocast_on():
    accel = Accelerator.create(torch.device("cpu"), "bf16")
    with accel.autocast():
        assert torch.is_autocast_enabled("cpu")
        assert torch.nn.Linear(4, 4)(torch.rand(2, 4)).dtype == torch.bfloat16


def test_largest_batch_keeps_the_given_batch_on_a_cpu():
    assert largest_batch(lambda size: size, 64, Accelerator(torch.device("cpu"))) == 64


def test_gpu_check_smoke_runs_the_real_protocols_on_a_cpu(capsys):
    assert gpu_check.main(["--smoke"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["extract_img_per_s_fp32"] > 0 and report["extract_img_per_s_bf16+channels_last"] > 0
    for name, protocol in (("finetune_body_region", "finetune"), ("seg_finetune_lits", "seg-finetune")):
        run = report[name]
        assert run["protocol"] == protocol and run["steps"] == 2 and run["train_img_per_s"] > 0
        assert 0 <= run["data_wait_fraction"] <= 1 and run["micro_batch"] >= 1
        assert {"peak_memory_gib", "accumulation_steps", "effective_batch", "wall_s"} <= run.keys()
    assert report["finetune_body_region"]["accumulation_steps"] == 2  # the recipe's batch, through accumulation


def test_the_micro_batch_cap_is_off_by_default():
    assert Accelerator(torch.device("cpu")).micro_batch is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_gpu_check_without_a_gpu_says_so(capsys):
    assert gpu_check.main([]) == 2
    assert "no CUDA device" in capsys.readouterr().err
