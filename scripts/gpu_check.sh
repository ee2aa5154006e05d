#!/usr/bin/env bash
# The checks that need a GPU, in one short command (a few minutes on one GPU), printed as tables:
#   1. parity: the demo model on CUDA in fp16 and bf16 against fp32 (max / mean absolute pixel difference, and the
#      CUDA fp32 frames against CPU fp32);
#   2. speed at 128 px, batch 64 and 256: each stage alone (prepare, generate, encode, paste-back), the generator
#      alone and `ganbatch animate --device cuda` end to end, with the GPU's utilisation (nvidia-smi) while the
#      pipeline runs (scripts/bench_animate.py --gpu);
#   3. the inference runtimes on CUDA (torch eager/compiled, ONNX Runtime, TensorRT fp16, auto), generator only.
# Needs a CUDA build of torch and the package's requirements (PYTHON=... to pick the interpreter; default the
# project's .venv, else python3).
#   scripts/gpu_check.sh [--clips 16] [--frames 64]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
CLIPS=16
FRAMES=64
while [ $# -gt 0 ]; do
  case "$1" in
    --clips) CLIPS=$2; shift 2 ;;
    --frames) FRAMES=$2; shift 2 ;;
    *) echo "usage: $0 [--clips N] [--frames N]" >&2; exit 2 ;;
  esac
done

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" - <<'PYTHON'
import numpy as np
import torch

from ganbatch.runtimes import open_runtime
from ganbatch.render import render_clip
from ganbatch.synth import render_face, sample_identity
from ganbatch.targets import expression_aus, expression_schedule

assert torch.cuda.is_available(), "CUDA is not available to this torch"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name()}")
cpu = open_runtime("demo", device="cpu")
side = cpu.info.image_size
faces = [render_face(sample_identity(seed), np.zeros(17), size=side)[0] for seed in range(4)]
targets = expression_schedule(np.zeros(17), expression_aus("happy"), frames=32).targets()


def frames(runtime):
    return np.concatenate([render_clip(runtime, runtime.info, face, targets, chunk_size=32).frames for face in faces])


reference = frames(open_runtime("demo", device="cuda"))
print(f"\nparity, demo model ({side} px), {len(faces)} clips x {len(targets)} frames, pixel values 0-255")
print(f"{'runtime':28s} {'max |diff|':>10s} {'mean |diff|':>12s}")
rows = [("cuda fp32 vs cpu fp32", frames(cpu))]
rows += [(f"cuda {precision} vs cuda fp32", frames(open_runtime("demo", device="cuda", precision=precision)))
         for precision in ("fp16", "bf16")]
for label, got in rows:
    diff = np.abs(got.astype(int) - reference.astype(int))
    print(f"{label:28s} {diff.max():10d} {diff.mean():12.3f}")
PYTHON

for BATCH in 64 256; do
  echo
  echo "speed: 128 px, batch $BATCH, $CLIPS clips x $FRAMES frames (fp16; fp32 rows too)"
  "$PY" scripts/bench_animate.py --gpu --size 128 --batch-size "$BATCH" --clips "$CLIPS" --frames "$FRAMES" \
    --precision fp16 --skip-reference
done

echo
echo "runtimes: torch fp32/fp16/bf16, torch.compile fp16, ONNX Runtime (CUDA EP), TensorRT fp16, auto; 128 px, batch 256"
echo "(a runtime whose package is not installed prints 'skipped' with the extra to install; the device has no internet)"
"$PY" scripts/bench_runtimes.py --device cuda --size 128 --batch-size 256 --clips "$CLIPS" --frames "$FRAMES" \
  --threads 8 --runtime torch,onnxruntime,tensorrt,auto
