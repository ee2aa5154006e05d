"""Measure animation speed: the generator alone, `ganbatch animate` end to end, and the original tools' approach.

    .venv/bin/python scripts/bench_animate.py [--clips 4] [--frames 64] [--size 128] [--threads 2]
        [--batch-size 16] [--precision fp32|bf16|fp16] [--device cpu|cuda]

Every measurement animates the same clips: --clips synthetic faces, each along one target (the "happy" expression
over --frames frames), with a randomly initialised full-size GANimation generator (conv_dim 64, 6 residual blocks;
speed does not depend on the weights). Rows, all in frames/s over clips x frames frames:

- reference: the approach of the original tools, reproduced here as a plain loop (not their code): one frame per
  generator forward (batch 1), fp32, each generated frame saved as its own PNG file with PIL.
- generator only: `render_clip` per clip at --batch-size, after one untimed warm-up clip; no decoding or encoding.
- animate items: `ganbatch animate` on the same faces (one worker, --threads CPUs), from the manifest: frames over
  the sum of the items' own seconds (decode, render, encode to mp4, write).
- animate wall: the same frames over the command's wall time, which adds starting Python, a local Ray and the
  worker, and loading the model; that start-up time is printed on its own.

fp32 is always measured; a lower --precision (bf16 on CPU, fp16/bf16 on CUDA) is measured as well, so that both
fp32 and the chosen precision are compared with the fp32 reference. With --device cuda, the GPU variants are
measured too: fp16 and bf16 autocast, and at --precision channels_last (weights and input), torch.compile, and
both. Ratios printed: "x reference" (frames/s over the reference's) and "x generator" (over the plain generator's
at the same precision: for animate rows the end-to-end / generator-only ratio, for GPU variants their gain).
"""
import argparse
import copy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganbatch.animate.manifest import read_manifest
from ganbatch.models import GANimationGenerator, describe_generator, get_family, save_generator
from ganbatch.render import PRECISIONS, render_clip
from ganbatch.synth import render_face, sample_identity
from ganbatch.targets import expression_aus, expression_schedule

EXPRESSION = "happy"
GPU_PRECISIONS = ("fp16", "bf16")
GPU_LAYOUTS = ("channels_last", "torch.compile", "channels_last + torch.compile")


class ChannelsLastGenerator(torch.nn.Module):
    """A generator run with its weights and its image input in channels_last (NHWC) memory format."""

    def __init__(self, generator: torch.nn.Module):
        super().__init__()
        self.generator = generator.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor, cond: torch.Tensor):
        """The wrapped generator's forward on x converted to channels_last."""
        return self.generator(x.contiguous(memory_format=torch.channels_last), cond)


def gpu_variant(generator: torch.nn.Module, layout: str) -> torch.nn.Module:
    """A copy of generator prepared for one of GPU_LAYOUTS (the original is left as it is)."""
    variant = copy.deepcopy(generator)
    if "channels_last" in layout:
        variant = ChannelsLastGenerator(variant)
    if "torch.compile" in layout:
        variant = torch.compile(variant)
    return variant


def make_clips(count: int, size: int, frames: int) -> tuple[list[np.ndarray], np.ndarray]:
    """`count` synthetic neutral faces (uint8 size x size) and the targets (frames, 17) of the benchmark's one
    target, the same expression schedule `ganbatch animate --expression happy --frames N` makes."""
    faces = [render_face(sample_identity(seed), np.zeros(17), size=size)[0] for seed in range(count)]
    targets = expression_schedule(np.zeros(17), expression_aus(EXPRESSION), frames=frames).targets()
    return faces, targets


def generator_fps(generator, info, faces, targets, *, batch_size: int, device: str, precision: str) -> float:
    """Frames/s of render_clip over every face's clip, after one untimed clip (which also compiles, if needed)."""
    render_clip(generator, info, faces[0], targets, chunk_size=batch_size, device=device, precision=precision)
    start = time.perf_counter()
    for face in faces:
        render_clip(generator, info, face, targets, chunk_size=batch_size, device=device, precision=precision)
    return len(faces) * len(targets) / (time.perf_counter() - start)


def reference_fps(generator, info, faces, targets, *, device: str, folder: Path) -> float:
    """Frames/s of the original tools' approach: per frame, the face and that frame's target are converted, go
    through the generator alone (batch 1, fp32), and the result is saved as a PNG with PIL."""
    family = get_family(info.family)
    side = faces[0].shape[0]
    generator = generator.to(device)

    def one_frame(face, target, path):
        image, _, _ = generator(family.face_to_input(face).to(device),
                                family.targets_to_cond(target[None], side).to(device))
        Image.fromarray(family.to_pixels(image)[0]).save(path)

    with torch.inference_mode():
        one_frame(faces[0], targets[0], folder / "warm-up.png")
        start = time.perf_counter()
        for clip, face in enumerate(faces):
            for frame, target in enumerate(targets):
                one_frame(face, target, folder / f"clip{clip}_{frame:05d}.png")
        return len(faces) * len(targets) / (time.perf_counter() - start)


def animate_fps(model: Path, face_folder: Path, out: Path, frames: int, args,
                precision: str) -> tuple[float, float, float]:
    """Run `ganbatch animate` on every face in face_folder; returns (frames/s over the items' own seconds,
    frames/s over the command's wall time, seconds of the wall time spent outside the items)."""
    command = [sys.executable, "-m", "ganbatch.cli", "animate", str(face_folder), "--model", str(model),
               "--out", str(out), "--expression", EXPRESSION, "--frames", str(frames), "--workers", "1",
               "--cpus-per-worker", str(args.threads), "--batch-size", str(args.batch_size),
               "--device", args.device, "--precision", precision]
    start = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if finished.returncode != 0:
        raise SystemExit(f"ganbatch animate failed (exit {finished.returncode}):\n{finished.stderr[-3000:]}")
    rows = read_manifest(str(out / "manifest.jsonl"))
    total_frames = sum(row["frames"] for row in rows)
    item_seconds = sum(row["seconds"] for row in rows)
    return total_frames / item_seconds, total_frames / wall, wall - item_seconds


def report(label: str, fps: float, reference: float | None = None, generator: float | None = None) -> None:
    """Print one result row: frames/s, then the ratios to the reference and to the plain generator, when given."""
    ratios = ""
    if reference is not None:
        ratios += f"  {fps / reference:6.2f} x reference"
    if generator is not None:
        ratios += f"  {fps / generator:6.2f} x generator"
    print(f"{label:44s} {fps:8.2f} frames/s{ratios}", flush=True)


def parse_args() -> argparse.Namespace:
    """The command line; fp16 is refused on CPU and --device cuda without CUDA, before any work."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4, help="faces, one clip each (default 4)")
    parser.add_argument("--frames", type=int, default=64, help="frames per clip (default 64)")
    parser.add_argument("--size", type=int, default=128, help="face crop side in pixels (default 128)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, and the animate worker's CPUs")
    parser.add_argument("--batch-size", type=int, default=16, help="frames per generator call (default 16)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="ours, besides fp32: bf16 (CPU or CUDA) or fp16 (CUDA)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine")
    if args.device == "cpu" and args.precision == "fp16":
        parser.error("--precision fp16 needs --device cuda; use bf16 on CPU")
    if min(args.clips, args.frames, args.threads, args.batch_size) < 1:
        parser.error("--clips, --frames, --threads and --batch-size must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = GANimationGenerator(conv_dim=64, repeat_num=6).eval()
    info = describe_generator(generator, image_size=args.size)
    faces, targets = make_clips(args.clips, args.size, args.frames)
    precisions = ["fp32"] + ([args.precision] if args.precision != "fp32" else [])
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {args.threads} threads"
    print(f"{device_name}; GANimation generator conv_dim 64, 6 residual blocks; {args.clips} clips x "
          f"{args.frames} frames at {args.size}x{args.size}; batch {args.batch_size}", flush=True)

    with tempfile.TemporaryDirectory(prefix="ganbatch-bench-") as folder:
        folder = Path(folder)
        (folder / "reference").mkdir()
        reference = reference_fps(generator, info, faces, targets, device=args.device, folder=folder / "reference")
        report("reference (batch 1, fp32, a PNG per frame)", reference, reference)

        plain = {}
        for precision in precisions:
            plain[precision] = generator_fps(generator, info, faces, targets, batch_size=args.batch_size,
                                             device=args.device, precision=precision)
            report(f"generator only, {precision}", plain[precision], reference)

        if args.device == "cuda":
            for precision in GPU_PRECISIONS:
                if precision not in plain:
                    fps = generator_fps(generator, info, faces, targets, batch_size=args.batch_size,
                                        device=args.device, precision=precision)
                    report(f"generator only, {precision}", fps, reference, plain["fp32"])
            for layout in GPU_LAYOUTS:
                fps = generator_fps(gpu_variant(generator, layout), info, faces, targets,
                                    batch_size=args.batch_size, device=args.device, precision=args.precision)
                report(f"generator only, {args.precision} + {layout}", fps, reference, plain[args.precision])
        else:
            reason = "run with --device cuda" if torch.cuda.is_available() else "CUDA is not available here"
            print(f"GPU variants (fp16, bf16, channels_last, torch.compile): skipped, {reason}", flush=True)

        model = folder / "ganimation.pt"
        save_generator(generator, model, {"image_size": args.size})
        face_folder = folder / "faces"
        face_folder.mkdir()
        for index, face in enumerate(faces):
            Image.fromarray(face).save(face_folder / f"face{index}.png")
        for precision in precisions:
            items, wall, start_up = animate_fps(model, face_folder, folder / f"out-{precision}", args.frames, args,
                                                precision)
            report(f"animate items, {precision}", items, reference, plain[precision])
            report(f"animate wall, {precision}", wall, reference, plain[precision])
            print(f"{'':44s} ({start_up:.1f} s of the wall time outside the items: Ray, worker, model start)",
                  flush=True)


if __name__ == "__main__":
    main()
