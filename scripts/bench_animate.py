"""Measure animation speed: each pipeline stage on its own, the generator alone, `ganbatch animate` end to end, and
the original tools' approach.

    .venv/bin/python scripts/bench_animate.py [--clips 4] [--frames 64] [--size 128] [--threads N]
        [--batch-size 16] [--precision fp32|bf16|fp16] [--gpu] [--skip-reference]
        [--runtime torch,onnxruntime,openvino,tensorrt,auto]
    .venv/bin/python scripts/bench_animate.py --defaults [--size 128] [--weights random|demo] [--sizes 4x32,8x32,16x64]
        [--repeat 1]

--defaults measures what a user gets: `ganbatch animate` with default flags (no --runtime, --batch-size or stage
sizes) on 4 x 32, 8 x 32 and 16 x 64 frames, each cold (an empty runtime cache: the model never seen on this
machine, so auto tunes) and warm (the same cache, a second run), against the reference loop on the same clips in
the same run; wall time of the whole command (Python, Ray, the actor, the model) against the loop's. The machine's
CPU capability and flags come first, the engine each run chose last.

Every measurement animates the same clips: --clips synthetic faces, each along one target (the "happy" expression
over --frames frames), with a full-size GANimation generator (conv_dim 64, 6 residual blocks): seeded random weights,
or with --weights demo the bundled demo's trained weights widened to full size (bench_common.widened_demo). Speed
does not depend on the weights; what `auto` chooses does (its quality gate). Rows, all in frames/s over clips x frames frames:

- reference: the approach of the original tools, reproduced here as a plain loop (not their code): one frame per
  generator forward (batch 1), fp32, each generated frame saved as its own PNG file with PIL.
- generator only: `render_clip` per clip at --batch-size, after one untimed warm-up clip; no decoding or encoding.
- stage prepare / generate / encode: the animate pipeline's three stages on their own, in this process, each over
  every clip (ganbatch.animate.item): prepare reads a face's PNG, decodes it, fits it and computes its per-frame
  targets; generate makes the frames with clips batched together up to --batch-size frames per forward pass;
  encode lays the frames out and writes an mp4 (ffmpeg) atomically. Also paste-back alone: each clip's frames
  blended into a 512x512 photo. The CPU stages' cost per frame is printed, with the CPUs a GPU making 5,000 frames/s
  would need to keep up.
- animate items: `ganbatch animate` with its default stage sizes, from the manifest: frames over the sum of the
  items' own seconds (each item's prepare, its share of the generator calls, and its encode).
- animate wall: the same frames over the command's wall time, which adds starting Python and Ray, the generator
  actor and its model; the command's own start-up figures (from its summary) are printed on their own line.

--runtime adds, for each runtime named, its generator-only rows at every precision it offers here
(bench_runtimes.runtime_rows: the checkpoint exported on the fly, int8 calibrated on synthetic faces) and an
`animate --runtime R` end-to-end pair of rows, compared with that runtime's best generator-only row.

fp32 is always measured; a lower --precision (bf16 on CPU, fp16/bf16 on CUDA) is measured as well, so that both
fp32 and the chosen precision are compared with the fp32 reference. --gpu runs the generator on CUDA (the generate
stage and `animate --device cuda`), also measures fp16 and bf16 autocast and, at --precision, channels_last (weights
and input), torch.compile, and both, and samples the GPU's utilisation with nvidia-smi while `animate` runs. Ratios:
"x reference" (frames/s over the reference's) and "x generator" (over the plain generator's at the same precision:
for stage and animate rows stage or end-to-end / generator-only, for GPU variants their gain).
"""
import argparse
import copy
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganbatch.animate.item import ItemSettings, encode_item, prepare_item
from ganbatch.animate.manifest import read_manifest_rows
from ganbatch.animate.plan import WorkItem
from ganbatch.animate.targets import load_targets
from ganbatch.cluster import local_cpus
from ganbatch.faces import CropTransform, paste_back
from ganbatch.jobs.animate import CropSpec, OutputSpec, TargetSpec
from ganbatch.models import save_generator
from ganbatch.runtimes.torch_engine import TorchRuntime
from ganbatch.render import PRECISIONS, render_clip, render_clips

from bench_common import EXPRESSION, GpuSampler, bench_setup, reference_fps, report

GPU_PRECISIONS = ("fp16", "bf16")
GPU_LAYOUTS = ("channels_last", "torch.compile", "channels_last + torch.compile")
TARGET_FPS_PER_GPU = 5000
PHOTO_SIDE = 512


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


def generator_fps(generator, info, faces, targets, *, batch_size: int, device: str, precision: str) -> float:
    """Frames/s of render_clip over every face's clip, after one untimed clip (which also compiles, if needed)."""
    render_clip(generator, info, faces[0], targets, chunk_size=batch_size, device=device, precision=precision)
    start = time.perf_counter()
    for face in faces:
        render_clip(generator, info, face, targets, chunk_size=batch_size, device=device, precision=precision)
    return len(faces) * len(targets) / (time.perf_counter() - start)


def stage_seconds(runtime, face_files: list[Path], frames: int, folder: Path, batch_size: int) -> dict[str, float]:
    """Seconds of each stage over every clip, in this process: prepare, generate, encode, paste-back."""
    targets = load_targets([TargetSpec(expression=EXPRESSION, frames=frames)])
    settings = ItemSettings(model="bench", crop=CropSpec(), output=OutputSpec())
    items = [WorkItem(str(path), str(folder / f"{path.stem}.mp4"), f"{path.stem}.mp4", 0, EXPRESSION)
             for path in face_files]
    seconds = {}
    start = time.perf_counter()
    prepared = [prepare_item(item, targets, settings.crop, runtime.info.image_size) for item in items]
    seconds["prepare"] = time.perf_counter() - start
    clips = [clip for clip, _ in prepared]
    render_clips(runtime, clips[:1], batch_size=batch_size)  # warm-up
    start = time.perf_counter()
    made = render_clips(runtime, clips, batch_size=batch_size, return_maps=True)
    seconds["generate"] = time.perf_counter() - start
    start = time.perf_counter()
    for item, clip, (_, placement) in zip(items, made, prepared):
        encode_item(item, clip, placement, settings)
    seconds["encode"] = time.perf_counter() - start
    side = runtime.info.image_size
    photo = np.random.default_rng(0).integers(0, 256, (PHOTO_SIDE, PHOTO_SIDE, 3), dtype=np.uint8)
    transform = CropTransform(x0=PHOTO_SIDE / 4, y0=PHOTO_SIDE / 4, side=PHOTO_SIDE / 2, size=side)
    start = time.perf_counter()
    for clip in made:
        for begin in range(0, len(clip.frames), batch_size):
            paste_back(photo, clip.frames[begin:begin + batch_size], clip.attention[begin:begin + batch_size],
                       transform)
    seconds["paste-back"] = time.perf_counter() - start
    return seconds


def animate_fps(model: Path, face_folder: Path, out: Path, frames: int, args, precision: str,
                runtime: str = "torch") -> tuple[float, float, str, list[float]]:
    """Run `ganbatch animate` (default stage sizes) on every face in face_folder; returns (frames/s over the
    items' own seconds, frames/s over the command's wall time, its start-up figures, GPU utilisation samples)."""
    command = [sys.executable, "-m", "ganbatch.cli", "animate", str(face_folder), "--model", str(model),
               "--out", str(out), "--expression", EXPRESSION, "--frames", str(frames),
               "--batch-size", str(args.batch_size), "--device", args.device, "--precision", precision,
               "--runtime", runtime, "--no-report"]
    start = time.perf_counter()
    with GpuSampler() as gpu:
        finished = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if finished.returncode != 0:
        raise SystemExit(f"ganbatch animate failed (exit {finished.returncode}):\n{finished.stderr[-3000:]}")
    rows = read_manifest_rows(str(out / "manifest.jsonl"))
    total_frames = sum(row["frames"] for row in rows)
    item_seconds = sum(row["seconds"] for row in rows)
    startup = re.search(r"start-up [^;]*", finished.stderr)
    return (total_frames / item_seconds, total_frames / wall, startup.group(0) if startup else "start-up: ?",
            gpu.samples if args.device == "cuda" else [])


def report_cpu_stages(seconds: dict[str, float], frames: int) -> None:
    """The CPU stages' milliseconds per frame, and the CPUs per GPU they imply at TARGET_FPS_PER_GPU."""
    per_frame = {stage: 1000 * seconds[stage] / frames for stage in ("prepare", "encode", "paste-back")}
    print("CPU cost per frame (one core): " + ", ".join(f"{stage} {ms:.2f} ms" for stage, ms in per_frame.items()),
          flush=True)
    plain = per_frame["prepare"] + per_frame["encode"]
    print(f"CPUs per GPU for {TARGET_FPS_PER_GPU} frames/s: {TARGET_FPS_PER_GPU * plain / 1000:.1f} "
          f"(prepare + encode), {TARGET_FPS_PER_GPU * (plain + per_frame['paste-back']) / 1000:.1f} with paste-back",
          flush=True)


DEFAULT_SIZES = ((4, 32), (8, 32), (16, 64))


def animate_defaults(model: Path, face_folder: Path, out: Path, frames: int, cache: Path) -> tuple[float, str]:
    """`ganbatch animate` with default flags (but --frames) and the runtime cache at cache; (wall seconds, the
    engine it ran)."""
    command = [sys.executable, "-m", "ganbatch.cli", "animate", str(face_folder), "--model", str(model),
               "--out", str(out), "--expression", EXPRESSION, "--frames", str(frames)]
    start = time.perf_counter()
    environment = {**os.environ, "GANBATCH_CACHE": str(cache)}
    finished = subprocess.run(command, capture_output=True, text=True, env=environment)
    wall = time.perf_counter() - start
    if finished.returncode != 0:
        raise SystemExit(f"ganbatch animate failed (exit {finished.returncode}):\n{finished.stderr[-3000:]}")
    engines = {row.get("runtime") for row in read_manifest_rows(str(out / "manifest.jsonl"))}
    return wall, ", ".join(sorted(engine for engine in engines if engine))


def defaults_table(args) -> None:
    """The --defaults rows (see the module doc)."""
    from ganbatch.runtimes.machine import detect_machine

    machine = detect_machine(torch.device("cpu"))
    print(f"{machine.describe()}; all flags of note: "
          f"{' '.join(sorted(flag for flag in machine.flags if 'avx' in flag or 'amx' in flag or 'vnni' in flag))}")
    print(f"{'clips x frames':>15s} {'reference s':>12s} {'cold s':>8s} {'cold x':>7s} {'warm s':>8s} {'warm x':>7s}"
          "  engine (cold; warm)", flush=True)
    for clips, frames in args.sizes * args.repeat:
        args.clips, args.frames = clips, frames
        generator, info, faces, targets = bench_setup(args)
        with tempfile.TemporaryDirectory(prefix="ganbatch-bench-") as folder:
            folder = Path(folder)
            (folder / "reference").mkdir()
            reference = clips * frames / reference_fps(generator, info, faces, targets, device="cpu",
                                                       folder=folder / "reference")
            face_folder = folder / "faces"
            face_folder.mkdir()
            for index, face in enumerate(faces):
                Image.fromarray(face).save(face_folder / f"face{index}.png")
            model = folder / "ganimation.pt"
            save_generator(generator, model, {"image_size": args.size})
            cold, cold_engine = animate_defaults(model, face_folder, folder / "cold", frames, folder / "cache")
            warm, warm_engine = animate_defaults(model, face_folder, folder / "warm", frames, folder / "cache")
        print(f"{f'{clips} x {frames}':>15s} {reference:12.1f} {cold:8.1f} {reference / cold:7.2f} {warm:8.1f} "
              f"{reference / warm:7.2f}  {cold_engine}; {warm_engine}", flush=True)


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    """`4x32,16x64` as ((4, 32), (16, 64))."""
    try:
        return tuple((int(clips), int(frames)) for clips, frames in (size.split("x") for size in text.split(",")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected CLIPSxFRAMES,... e.g. 4x32,16x64") from None


def parse_args() -> argparse.Namespace:
    """The command line; --gpu needs CUDA and fp16 needs --gpu, checked before any work."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4, help="faces, one clip each (default 4)")
    parser.add_argument("--frames", type=int, default=64, help="frames per clip (default 64)")
    parser.add_argument("--size", type=int, default=128, help="face crop side in pixels (default 128)")
    parser.add_argument("--threads", type=int, default=local_cpus(),
                        help="torch threads of the in-process rows (default: the cores this process may use)")
    parser.add_argument("--batch-size", type=int, default=16, help="frames per generator call (default 16)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="ours, besides fp32: bf16 (CPU or CUDA) or fp16 (CUDA)")
    parser.add_argument("--gpu", action="store_true", help="run the generator on CUDA (see the module doc)")
    parser.add_argument("--weights", choices=("random", "demo"), default="random",
                        help="the full-size generator's weights: seeded random, or the bundled demo's widened to full "
                        "size (a trained stand-in: auto's quality gate depends on the weights; default random)")
    parser.add_argument("--skip-reference", action="store_true", help="leave out the (slow) batch-1 reference")
    parser.add_argument("--runtime", default="", help="comma-separated runtimes to add rows for (torch, "
                                                      "onnxruntime, openvino, tensorrt, auto; default: none)")
    parser.add_argument("--defaults", action="store_true", help="only the default-flags table (see the module doc)")
    parser.add_argument("--sizes", type=_sizes, default=DEFAULT_SIZES,
                        help="with --defaults: CLIPSxFRAMES,... (default 4x32,8x32,16x64)")
    parser.add_argument("--repeat", type=int, default=1, help="with --defaults: measure each size this many times")
    args = parser.parse_args()
    args.device = "cuda" if args.gpu else "cpu"
    args.runtimes = [name.strip() for name in args.runtime.split(",") if name.strip()]
    if args.gpu and not torch.cuda.is_available():
        parser.error("--gpu: CUDA is not available on this machine")
    if not args.gpu and args.precision == "fp16":
        parser.error("--precision fp16 needs --gpu; use bf16 on CPU")
    if min(args.clips, args.frames, args.threads, args.batch_size) < 1:
        parser.error("--clips, --frames, --threads and --batch-size must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    if args.defaults:
        defaults_table(args)
        return
    generator, info, faces, targets = bench_setup(args)
    frames = args.clips * args.frames
    precisions = ["fp32"] + ([args.precision] if args.precision != "fp32" else [])
    device_name = torch.cuda.get_device_name() if args.gpu else f"cpu, {args.threads} threads"
    print(f"{device_name}; GANimation generator conv_dim 64, 6 residual blocks; {args.clips} clips x "
          f"{args.frames} frames at {args.size}x{args.size}; batch {args.batch_size}", flush=True)

    with tempfile.TemporaryDirectory(prefix="ganbatch-bench-") as folder:
        folder = Path(folder)
        reference = None
        if not args.skip_reference:
            (folder / "reference").mkdir()
            reference = reference_fps(generator, info, faces, targets, device=args.device,
                                      folder=folder / "reference")
            report("reference (batch 1, fp32, a PNG per frame)", reference, reference)

        plain = {}
        for precision in precisions:
            plain[precision] = generator_fps(generator, info, faces, targets, batch_size=args.batch_size,
                                             device=args.device, precision=precision)
            report(f"generator only, {precision}", plain[precision], reference)

        if args.gpu:
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
            print("GPU variants (fp16, bf16, channels_last, torch.compile): skipped (use --gpu)", flush=True)

        face_folder = folder / "faces"
        face_folder.mkdir()
        face_files = []
        for index, face in enumerate(faces):
            face_files.append(face_folder / f"face{index}.png")
            Image.fromarray(face).save(face_files[-1])
        for precision in precisions:
            runtime = TorchRuntime(generator, info, device=args.device, precision=precision)
            seconds = stage_seconds(runtime, face_files, args.frames, folder / f"stages-{precision}",
                                    args.batch_size)
            for stage in ("prepare", "generate", "encode", "paste-back"):
                report(f"stage {stage}, {precision}", frames / seconds[stage], reference, plain[precision])
            if precision == "fp32":
                report_cpu_stages(seconds, frames)

        model = folder / "ganimation.pt"
        save_generator(generator, model, {"image_size": args.size})
        for precision in precisions:
            items, wall, startup, utilisation = animate_fps(model, face_folder, folder / f"out-{precision}",
                                                            args.frames, args, precision)
            report(f"animate items, {precision}", items, reference, plain[precision])
            report(f"animate wall, {precision}", wall, reference, plain[precision])
            gpu = (f"; GPU utilisation mean {np.mean(utilisation):.0f}%, max {max(utilisation):.0f}% "
                   f"({len(utilisation)} samples)" if utilisation else "")
            print(f"{'':44s} ({startup}{gpu})", flush=True)
        if args.runtimes:
            runtime_comparison(model, faces, targets, face_folder, folder, args, reference)


def runtime_comparison(model: Path, faces, targets, face_folder: Path, folder: Path, args, reference) -> None:
    """Generator-only rows of every runtime/precision of --runtime, then `animate --runtime R` for each R, next to
    R's fastest generator-only row."""
    from bench_runtimes import runtime_rows

    measured = runtime_rows(str(model), faces, targets, batch_size=args.batch_size, device=args.device,
                            threads=args.threads, reference=reference, runtimes=args.runtimes)
    variants = {tuple(label.split(", ")[1].split()): fps for label, fps in measured.items()}  # (runtime[, prec])
    for runtime in args.runtimes:
        # int8 needs an int8 export (`ganbatch export --precision int8`), not a flag: not an animate row
        own = {variant[1:] or ("fp32",): fps for variant, fps in variants.items()
               if variant[0] == runtime and variant[1:] != ("int8",)}
        if not own:
            continue
        (precision,), best = max(own.items(), key=lambda entry: entry[1])
        items, wall, startup, _ = animate_fps(model, face_folder, folder / f"out-{runtime}", args.frames, args,
                                              precision, runtime=runtime)
        report(f"animate items, --runtime {runtime} {precision}", items, reference, best)
        report(f"animate wall, --runtime {runtime} {precision}", wall, reference, best)
        print(f"{'':44s} ({startup})", flush=True)


if __name__ == "__main__":
    main()
