"""Measure animation speed: frames/s of the generator alone and of `ganbatch animate` end to end.

    .venv/bin/python scripts/bench_animate.py [--frames 64] [--size 128] [--threads 2] [--batch-size 16]

Uses a randomly initialised full-size GANimation generator (conv_dim 64, 6 residual blocks; speed does not depend
on the weights) and one synthetic face. "generator only" times render_clip on one clip (after a warm-up clip);
"animate" runs `ganbatch animate` on the same face with one worker of --threads CPUs and reports the item's own
time from the manifest (decode, render, encode to mp4, write) and the command's wall time (which adds starting a
local Ray, the worker and loading the model).
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganbatch.models import GANimationGenerator, describe_generator, save_generator
from ganbatch.render import render_clip
from ganbatch.synth import render_face, sample_identity
from ganbatch.targets import expression_aus, expression_schedule


def generator_fps(generator, face, frames, size, batch_size):
    """Frames/s of render_clip for one clip of `frames` frames."""
    info = describe_generator(generator, image_size=size)
    targets = expression_schedule(np.zeros(17), expression_aus("happy"), frames=frames).targets()
    render_clip(generator, info, face, targets[:batch_size], chunk_size=batch_size)  # warm-up
    start = time.perf_counter()
    render_clip(generator, info, face, targets, chunk_size=batch_size)
    return frames / (time.perf_counter() - start)


def animate_fps(model, face, frames, threads, batch_size):
    """(item frames/s from the manifest, frames/s over the command's wall time) for one `ganbatch animate` run."""
    with tempfile.TemporaryDirectory() as folder:
        Image.fromarray(face).save(Path(folder) / "face.png")
        command = [sys.executable, "-m", "ganbatch.cli", "animate", str(Path(folder) / "face.png"),
                   "--model", str(model), "--out", str(Path(folder) / "out"), "--expression", "happy",
                   "--frames", str(frames), "--workers", "1", "--cpus-per-worker", str(threads),
                   "--batch-size", str(batch_size), "--device", "cpu"]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        wall = time.perf_counter() - start
        row = json.loads((Path(folder) / "out" / "manifest.jsonl").read_text().splitlines()[0])
    return row["frames"] / row["seconds"], row["frames"] / wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = GANimationGenerator(conv_dim=64, repeat_num=6).eval()
    face = render_face(sample_identity(0), np.zeros(17), size=args.size)[0]
    print(f"generator only: {generator_fps(generator, face, args.frames, args.size, args.batch_size):.2f} frames/s "
          f"({args.frames} frames at {args.size}x{args.size}, {args.threads} threads, batch {args.batch_size})")
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "ganimation.pt"
        save_generator(generator, model, {"image_size": args.size})
        item, wall = animate_fps(model, face, args.frames, args.threads, args.batch_size)
    print(f"ganbatch animate: {item:.2f} frames/s for the item (decode, render, encode, write); "
          f"{wall:.2f} frames/s over the command's wall time (with Ray, worker and model start)")


if __name__ == "__main__":
    main()
