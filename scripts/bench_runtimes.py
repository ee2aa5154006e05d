"""Generator-only speed of every inference runtime and precision available here, next to the reference loop.

    .venv/bin/python scripts/bench_runtimes.py [--clips 4] [--frames 64] [--size 128] [--threads 2]
        [--batch-size 16] [--device cpu|cuda] [--runtime auto,torch,onnxruntime,openvino,tensorrt]

The clips, the randomly initialised full-size GANimation generator (conv_dim 64, 6 residual blocks) and the
reference loop (batch 1, fp32, a PNG per frame) are bench_animate.py's, so its rows and these compare directly.
Each row opens the model through `open_runtime` (checkpoint exported on the fly for ONNX Runtime / OpenVINO, int8
calibrated on synthetic faces) and times `render_clip` over every clip after one untimed warm-up clip, like
bench_animate's "generator only" rows. Variants that cannot run here are listed with the reason. The machine's CPU
capability and flags are printed first (record them with the numbers). `runtime_rows` is the part
bench_animate.py can import to print the same rows in its own run.
"""
import argparse
import tempfile
import time
from pathlib import Path

import torch

from bench_common import bench_setup, reference_fps, report

from ganbatch.models import save_generator
from ganbatch.models.locate import open_model
from ganbatch.render import render_clip
from ganbatch.runtimes import RuntimeUnavailableError, open_runtime
from ganbatch.runtimes.machine import detect_machine
from ganbatch.runtimes.torch_engine import TorchRuntime

CPU_VARIANTS = (("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"),
                ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"), ("auto", None))
CUDA_VARIANTS = (("torch", "fp32"), ("torch", "fp16"), ("torch", "bf16"), ("torch.compile", "fp16"),
                 ("onnxruntime", "fp32"), ("tensorrt", "fp16"), ("auto", None))


def runtime_fps(runtime, faces, targets, *, batch_size: int) -> float:
    """Frames/s of render_clip with runtime over every face's clip, after one untimed clip."""
    render_clip(runtime, runtime.info, faces[0], targets, chunk_size=batch_size)
    start = time.perf_counter()
    for face in faces:
        render_clip(runtime, runtime.info, face, targets, chunk_size=batch_size)
    return len(faces) * len(targets) / (time.perf_counter() - start)


def _open(model: str, runtime: str, precision: str | None, device: str, threads: int):
    if runtime == "torch.compile":
        generator, info = open_model(model)
        return TorchRuntime(generator, info, device=device, precision=precision, threads=threads, compile=True)
    return open_runtime(model, runtime=runtime, device=device, precision=precision or "fp32", threads=threads)


def runtime_rows(model: str, faces, targets, *, batch_size: int, device: str, threads: int, reference: float,
                 runtimes=None) -> dict[str, float]:
    """Print one generator-only row per runtime/precision variant of this device (only the runtimes named in
    runtimes, when given), with its ratio to the reference loop; returns {label: frames/s}."""
    variants = CUDA_VARIANTS if device == "cuda" else CPU_VARIANTS
    measured = {}
    for runtime, precision in variants:
        if runtimes and runtime.split(".")[0] not in runtimes:
            continue
        label = f"generator only, {runtime}" + (f" {precision}" if precision else "")
        try:
            engine = _open(model, runtime, precision, device, threads)
        except (RuntimeUnavailableError, ValueError) as error:
            print(f"{label:44s} skipped: {' '.join(str(error).split())[:110]}", flush=True)
            continue
        measured[label] = runtime_fps(engine, faces, targets, batch_size=batch_size)
        report(label, measured[label], reference)
        if runtime == "auto":
            print(f"    {engine.describe()}", flush=True)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4, help="faces, one clip each (default 4)")
    parser.add_argument("--frames", type=int, default=64, help="frames per clip (default 64)")
    parser.add_argument("--size", type=int, default=128, help="face crop side in pixels (default 128)")
    parser.add_argument("--threads", type=int, default=2, help="threads of every runtime (default 2)")
    parser.add_argument("--batch-size", type=int, default=16, help="frames per generator call (default 16)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--runtime", default="", help="comma-separated runtimes to measure (default: all)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine")
    generator, info, faces, targets = bench_setup(args)
    machine = detect_machine(torch.device(args.device))
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {args.threads} threads"
    print(f"{device_name}; {machine.describe()}", flush=True)
    print(f"GANimation generator conv_dim 64, 6 residual blocks; {args.clips} clips x {args.frames} frames at "
          f"{args.size}x{args.size}; batch {args.batch_size}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ganbatch-bench-") as folder:
        folder = Path(folder)
        (folder / "reference").mkdir()
        reference = reference_fps(generator, info, faces, targets, device=args.device, folder=folder / "reference")
        report("reference (batch 1, fp32, a PNG per frame)", reference, reference)
        model = folder / "ganimation.pt"
        save_generator(generator, model, {"image_size": args.size})
        runtime_rows(str(model), faces, targets, batch_size=args.batch_size, device=args.device,
                     threads=args.threads, reference=reference,
                     runtimes={name.strip() for name in args.runtime.split(",") if name.strip()})


if __name__ == "__main__":
    main()
