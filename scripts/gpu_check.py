"""The checks that need a GPU, in one process and without Ray (the GPU machine has none): see gpu_check.sh.

    python scripts/gpu_check.py [--device cuda] [--clips 64] [--frames 64] [--batches 64 256 512]

1. parity: the bundled demo model in fp16 and bf16 against fp32 on the device, and the device's fp32 against CPU fp32
   (max / mean absolute pixel difference over 4 clips);
2. generator frames/s at 128 px, the full-size GANimation generator (random weights; speed does not depend on
   them), for each batch size: eager fp32 / fp16 / bf16, channels_last fp16, torch.compile fp16 and CUDA graphs
   (torch.compile mode "reduce-overhead"), with the GPU's utilisation while each runs;
3. end to end in process: clips rendered on the device through `ganbatch.render.render_clips` (batches of frames
   of several clips), encoded to mp4 by ffmpeg on the node's CPUs (a thread per core drives one ffmpeg each),
   frames/s over the wall time, with the GPU's utilisation.
`--device cpu` runs the same code on a CPU at a small size (a smoke test of the script itself).
"""
import argparse
import concurrent.futures
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench_common import GpuSampler

from ganbatch.io.video import VideoWriter
from ganbatch.models import GANimationGenerator, describe_generator
from ganbatch.render import PreparedClip, render_clip, render_clips
from ganbatch.runtimes import open_runtime
from ganbatch.runtimes.torch_engine import TorchRuntime
from ganbatch.synth import render_face, sample_identity
from ganbatch.targets import expression_aus, expression_schedule


def _utilisation(sampler) -> str:
    return f"{np.mean(sampler.samples):.0f}%" if sampler.samples else "-"


def parity(device: str) -> None:
    cpu = open_runtime("demo", runtime="torch", device="cpu")
    side = cpu.info.image_size
    faces = [render_face(sample_identity(seed), np.zeros(17), size=side)[0] for seed in range(4)]
    targets = expression_schedule(np.zeros(17), expression_aus("happy"), frames=32).targets()

    def frames(runtime):
        return np.concatenate([render_clip(runtime, runtime.info, face, targets, chunk_size=32).frames
                               for face in faces])

    reference = frames(open_runtime("demo", runtime="torch", device=device))
    print(f"\nparity: demo model ({side} px), {len(faces)} clips x {len(targets)} frames, pixel values 0-255")
    print(f"{'compared':28s} {'max |diff|':>10s} {'mean |diff|':>12s}")
    rows = [(f"{device} fp32 vs cpu fp32", frames(cpu))]
    for precision in ("fp16", "bf16") if device == "cuda" else ():
        rows.append((f"{device} {precision} vs {device} fp32",
                     frames(open_runtime("demo", runtime="torch", device=device, precision=precision))))
    for label, got in rows:
        diff = np.abs(got.astype(int) - reference.astype(int))
        print(f"{label:28s} {diff.max():10d} {diff.mean():12.3f}")


def _variants(generator, device: str):
    """(label, callable(x, cond)) per way of running the generator on device."""
    def autocast(dtype):
        return torch.autocast(device_type=device, dtype=dtype) if device == "cuda" else torch.autocast("cpu", dtype)

    def eager(model, dtype=None, channels_last=False):
        def run(x, cond):
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                if dtype is None:
                    return model(x, cond)[0]
                with autocast(dtype):
                    return model(x, cond)[0]
        return run

    half, name = (torch.float16, "fp16") if device == "cuda" else (torch.bfloat16, "bf16")
    yield "eager fp32", eager(generator)
    yield f"eager {name}", eager(generator, half)
    if device == "cuda":
        yield "eager bf16", eager(generator, torch.bfloat16)
    last = GANimationGenerator(conv_dim=generator.conv_dim, repeat_num=generator.repeat_num).to(device).eval()
    last.load_state_dict(generator.state_dict())
    last = last.to(memory_format=torch.channels_last)
    yield f"channels_last {name}", eager(last, half, channels_last=True)
    yield f"torch.compile {name}", eager(torch.compile(last), half, channels_last=True)
    if device == "cuda":
        yield f"CUDA graphs {name}", eager(torch.compile(last, mode="reduce-overhead"), half, channels_last=True)


def generator_speed(device: str, size: int, batches: list[int]) -> None:
    torch.manual_seed(0)
    generator = GANimationGenerator(conv_dim=64, repeat_num=6).to(device).eval()
    print(f"\ngenerator: full-size GANimation at {size} px, frames/s (GPU utilisation)")
    print(f"{'variant':22s} " + " ".join(f"{'batch ' + str(batch):>18s}" for batch in batches))
    for label, run in _variants(generator, device):
        cells = []
        for batch in batches:
            x = torch.rand(batch, 3, size, size, device=device) * 2 - 1
            cond = torch.rand(batch, 17, device=device)
            try:
                for _ in range(3):  # warm-up: allocation, autotuning, compilation, graph capture
                    run(x, cond)
                if device == "cuda":
                    torch.cuda.synchronize()
                repeats = max(2, 2048 // batch) if device == "cuda" else 1
                with GpuSampler() as sampler:
                    started = time.perf_counter()
                    for _ in range(repeats):
                        run(x, cond)
                    if device == "cuda":
                        torch.cuda.synchronize()
                    elapsed = time.perf_counter() - started
                cells.append(f"{batch * repeats / elapsed:10.0f} ({_utilisation(sampler):>4s})")
            except Exception as error:  # noqa: BLE001 - a variant that cannot run here is a row that says so
                cells.append(f"{type(error).__name__[:18]:>18s}")
        print(f"{label:22s} " + " ".join(f"{cell:>18s}" for cell in cells), flush=True)


def end_to_end(device: str, size: int, clips: int, frames: int, batch: int) -> None:
    torch.manual_seed(0)
    generator = GANimationGenerator(conv_dim=64, repeat_num=6).eval()
    info = describe_generator(generator, image_size=size)
    runtime = TorchRuntime(generator, info, device=device, precision="fp16" if device == "cuda" else "fp32")
    faces = [render_face(sample_identity(seed), np.zeros(17), size=size)[0] for seed in range(clips)]
    targets = expression_schedule(np.zeros(17), expression_aus("happy"), frames=frames).targets()
    prepared = [PreparedClip(face, targets) for face in faces]
    workers = len(os.sched_getaffinity(0))
    per_call = max(1, batch // frames)
    render_clips(runtime, prepared[:per_call], batch_size=batch)  # warm-up

    def encode(clip, path):
        with VideoWriter(path, fps=25, format="mp4") as writer:
            writer.write(clip.frames)

    with tempfile.TemporaryDirectory() as folder, GpuSampler() as sampler, \
            concurrent.futures.ThreadPoolExecutor(workers) as pool:
        started = time.perf_counter()
        pending = []
        for start in range(0, clips, per_call):
            made = render_clips(runtime, prepared[start:start + per_call], batch_size=batch)
            pending += [pool.submit(encode, clip, Path(folder) / f"{start + index}.mp4")
                        for index, clip in enumerate(made)]
        for future in pending:
            future.result()
        elapsed = time.perf_counter() - started
    print(f"\nend to end in process: {clips} clips x {frames} frames at {size} px, render_clips on {device} "
          f"({runtime.precision}, batch {batch}) + mp4 encoding on {workers} CPU threads")
    print(f"{clips * frames / elapsed:.0f} frames/s over {elapsed:.1f} s wall; GPU utilisation "
          f"{_utilisation(sampler)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=None, help="default: 128 on cuda, 32 on cpu")
    parser.add_argument("--clips", type=int, default=None, help="end-to-end clips (default: 128 on cuda, 2 on cpu)")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="default: 64 256 512 on cuda, 4 on cpu")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available to this torch")
    size = args.size or (128 if cuda else 32)
    batches = args.batches or ([64, 256, 512] if cuda else [4])
    name = torch.cuda.get_device_name() if cuda else "cpu"
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {name}, {len(os.sched_getaffinity(0))} CPU cores")
    parity(args.device)
    generator_speed(args.device, size, batches)
    end_to_end(args.device, size, args.clips or (128 if cuda else 2), args.frames, max(batches))


if __name__ == "__main__":
    main()
