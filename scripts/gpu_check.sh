#!/usr/bin/env bash
# The checks that need a GPU, in one process and without Ray, on the GPU machine as it is (CUDA torch, numpy,
# scipy, scikit-image, pillow, pyyaml; no Ray, pydantic, click, boto3, ffmpeg or package registry): it imports
# only the pure layers. What it lacks (ffmpeg) is carried as wheels (scripts/gpu_wheels.txt;
# scripts/fetch_gpu_wheels.sh puts them in .whl/), installed into /tmp/site here. One call, a few minutes: parity (fp16/bf16 vs fp32), generator frames/s at 128 px for batch
# 64/256/512 (eager, channels_last, torch.compile, CUDA graphs), end to end in process with encoding on the node's
# CPUs, GPU utilisation (scripts/gpu_check.py says what each row is).
#   scripts/gpu_check.sh [gpu_check.py options]
# With the device tool: carry .whl, command `scripts/gpu_check.sh`, timeout 480 s.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export GANBATCH_CACHE=${GANBATCH_CACHE:-/tmp/ganbatch-cache}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
exec "$PY" scripts/gpu_check.py "$@"
