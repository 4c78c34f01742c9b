#!/usr/bin/env bash
# The CUDA fast path on one GPU, in well under 5 minutes: ResNet-50 feature-extraction
# throughput at 256x256 in fp32 and in bf16 + channels_last, then one short finetune
# through the real `finetune` protocol. Extra arguments go to `python -m benchmark.execution.gpu_check`
# (e.g. --compile, --batch 512). The last line is the whole report as JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
exec timeout 300 "$python" -m benchmark.execution.gpu_check "$@"
