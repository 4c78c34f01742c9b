#!/usr/bin/env bash
# A paper-scale rehearsal of the CUDA path on one GPU, within 10 minutes: ResNet-50 feature-extraction
# throughput at 256x256 (fp32, bf16 + channels_last), then the real `finetune` (body-region recipe,
# effective batch 4096 through gradient accumulation) and `seg-finetune` (LiTS recipe) protocols on a
# fake int16 slice cache, for a few steps each: train img/s, data-wait fraction, peak memory, micro-batch.
# Extra arguments go to `python -m benchmark.execution.gpu_check` (e.g. --compile, --micro-batch 256;
# --smoke runs tiny sizes on the CPU). The last line is the whole report as JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
exec timeout 600 "$python" -m benchmark.execution.gpu_check "$@"
