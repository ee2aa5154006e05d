"""One-clip renderer: a face crop and per-frame targets through a generator, in batches, to uint8 frames."""
from dataclasses import dataclass

import numpy as np
import torch

from ganbatch.models.checkpoint import GeneratorInfo
from ganbatch.families import get_family
from ganbatch.models.networks import SAMPLING_STEPS, AttentionGenerator
from ganbatch.models.runtime import Runtime, TorchRuntime

# Precisions a torch generator renders at (autocast for fp16/bf16); other runtimes may also offer int8.
PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass
class Clip:
    """Rendered frames uint8 (T,H,W,3); with return_maps also attention float32 (T,H,W) in [0, 1] (1 keeps the
    input pixel) and the colour maps uint8 (T,H,W,3)."""

    frames: np.ndarray
    attention: np.ndarray | None = None
    color: np.ndarray | None = None


def _check_face(face: np.ndarray, image_size: int | None) -> None:
    if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
        raise ValueError(f"face must be a uint8 (H, W, 3) array, got {face.dtype} {face.shape}")
    side = face.shape[0]
    if face.shape[1] != side:
        raise ValueError(f"face must be a square crop, got {face.shape[1]}x{side}")
    if image_size is not None and side != image_size:
        raise ValueError(f"face is {side}x{side} but the model takes {image_size}x{image_size} crops; "
                         "crop/resize it first")
    if side % 2**SAMPLING_STEPS:
        raise ValueError(f"face side {side} must be a multiple of {2**SAMPLING_STEPS}")


def render_clip(generator: AttentionGenerator | Runtime, info: GeneratorInfo, face: np.ndarray, targets: np.ndarray,
                *, chunk_size: int = 16, device="cpu", precision: str = "fp32", input_first: bool = False,
                return_maps: bool = False) -> Clip:
    """Animate face (uint8 HxWx3 at the model's input size) with one frame per target; returns a Clip.

    generator is an AttentionGenerator (run in torch on device at precision: the generator is moved to device, with
    autocast for fp16 (CUDA only) or bf16) or a Runtime from `open_runtime`, which brings its own device and
    precision (then those two arguments are ignored). targets follow the family's convention (GANimation: (T, 17)
    AU intensities 0-5; GANnotation: (T, 66, 2) points in the crop's pixel coordinates). Frames go through the
    generator chunk_size at a time under torch.inference_mode(). input_first makes frame 0 the untouched face
    instead of its generated frame (still T frames; its attention is 1 and its colour map the face itself).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    family = get_family(info.family)
    face = np.asarray(face)
    _check_face(face, info.image_size)
    targets = np.asarray(targets)
    if targets.ndim < 1 or len(targets) == 0:
        raise ValueError("targets hold no frames")
    if precision not in PRECISIONS and not isinstance(generator, Runtime):
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    runtime = generator if isinstance(generator, Runtime) else TorchRuntime(generator, info, device=device,
                                                                             precision=precision)
    side = face.shape[0]

    offset = int(input_first)
    count = len(targets)
    frames = np.empty((count, side, side, 3), np.uint8)
    attention = np.empty((count, side, side), np.float32) if return_maps else None
    color = np.empty((count, side, side, 3), np.uint8) if return_maps else None
    if input_first:
        frames[0] = face
        if return_maps:
            attention[0] = 1.0
            color[0] = face

    x = family.face_to_input(face)
    with torch.inference_mode():
        for start in range(offset, count, chunk_size):
            cond = family.targets_to_cond(targets[start:start + chunk_size], side)
            image, color_map, attention_map = runtime(x.expand(len(cond), -1, -1, -1), cond)
            rows = slice(start, start + len(cond))
            frames[rows] = family.to_pixels(image)
            if return_maps:
                attention[rows] = attention_map[:, 0].numpy()
                color[rows] = family.to_pixels(color_map)
    return Clip(frames=frames, attention=attention, color=color)
