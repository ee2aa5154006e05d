"""One-clip renderer: a face crop and per-frame targets through a generator, in batches, to uint8 frames.

`render_clips` is the one path every caller takes (`render_clip` for one clip, the animate generate stage for the
clips of a Ray batch, eval, previews and the benchmarks): the frames to generate of all clips, taken in order and
cut into forward passes of at most batch_size frames, so short clips share a pass; a frame whose target repeats an
earlier frame's of the same clip (the way back of a ping-pong, held frames) is generated once and copied.
"""
import numpy as np
import torch

from ganbatch.clips import Clip, PreparedClip  # the renderer's input and output (numpy only, see ganbatch.clips)
from ganbatch.models.checkpoint import GeneratorInfo
from ganbatch.families import get_family
from ganbatch.models.networks import SAMPLING_STEPS, AttentionGenerator
from ganbatch.runtimes.base import Runtime
from ganbatch.runtimes.torch_engine import TorchRuntime

# Precisions a torch generator renders at (autocast for fp16/bf16); other runtimes may also offer int8.
PRECISIONS = ("fp32", "fp16", "bf16")


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


def _unique_frames(targets: np.ndarray, first: int) -> np.ndarray:
    """For each frame from `first` on, the index of the first frame with the same target (itself when new)."""
    seen: dict[bytes, int] = {}
    flat = np.ascontiguousarray(targets).reshape(len(targets), -1)
    return np.array([seen.setdefault(flat[index].tobytes(), index) for index in range(first, len(targets))],
                    dtype=np.int64)


def _segments(frames: list[tuple[int, int]]) -> list[tuple[int, list[int]]]:
    """Consecutive (clip, frame) pairs grouped by clip: (clip, its frames in this pass)."""
    segments: list[tuple[int, list[int]]] = []
    for index, frame in frames:
        if segments and segments[-1][0] == index:
            segments[-1][1].append(frame)
        else:
            segments.append((index, [frame]))
    return segments


def render_clips(runtime: Runtime, clips: list[PreparedClip], *, batch_size: int = 16,
                 return_maps: bool = False) -> list[Clip]:
    """The frames (with return_maps also the attention and colour maps) of several clips through runtime; see the
    module doc. An input_first frame 0 is the untouched face (attention 1, colour map the face)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    family = get_family(runtime.info.family)
    outputs, wanted, sources = [], [], []  # per clip: its Clip and frame -> source frame; per pass: (clip, frame)
    for index, clip in enumerate(clips):
        count, side = len(clip.targets), clip.face.shape[0]
        maps = dict(attention=np.empty((count, side, side), np.float32),
                    color=np.empty((count, side, side, 3), np.uint8)) if return_maps else {}
        outputs.append(Clip(frames=np.empty((count, side, side, 3), np.uint8), **maps))
        if clip.input_first:
            outputs[-1].frames[0] = clip.face
            if return_maps:
                outputs[-1].attention[0], outputs[-1].color[0] = 1.0, clip.face
        first = int(clip.input_first)
        source = _unique_frames(clip.targets, first)
        sources.append(source)
        wanted += [(index, frame) for frame in range(first, count) if source[frame - first] == frame]
    inputs = [family.face_to_input(clip.face) for clip in clips]
    with torch.inference_mode():
        for start in range(0, len(wanted), batch_size):
            segments = _segments(wanted[start:start + batch_size])
            x = torch.cat([inputs[index].expand(len(frames), -1, -1, -1) for index, frames in segments])
            cond = torch.cat([family.targets_to_cond(clips[index].targets[frames], clips[index].face.shape[0])
                              for index, frames in segments])
            image, color_map, attention_map = runtime(x, cond)
            pixels = family.to_pixels(image)
            colors = family.to_pixels(color_map) if return_maps else None
            offset = 0
            for index, frames in segments:
                rows = slice(offset, offset + len(frames))
                outputs[index].frames[frames] = pixels[rows]
                if return_maps:
                    outputs[index].attention[frames] = attention_map[rows, 0].numpy()
                    outputs[index].color[frames] = colors[rows]
                offset += len(frames)
    for clip, output, source in zip(clips, outputs, sources):
        first = int(clip.input_first)
        repeats = np.flatnonzero(source != np.arange(first, len(clip.targets))) + first
        for name in ("frames", "attention", "color"):
            array = getattr(output, name)
            if array is not None and len(repeats):
                array[repeats] = array[source[repeats - first]]
    return outputs


def render_clip(generator: AttentionGenerator | Runtime, info: GeneratorInfo, face: np.ndarray, targets: np.ndarray,
                *, chunk_size: int = 16, device="cpu", precision: str = "fp32", input_first: bool = False,
                return_maps: bool = False) -> Clip:
    """Animate face (uint8 HxWx3 at the model's input size) with one frame per target; returns a Clip.

    generator is an AttentionGenerator (run in torch on device at precision: the generator is moved to device, with
    autocast for fp16 (CUDA only) or bf16) or a Runtime from `open_runtime`, which brings its own device and
    precision (then those two arguments are ignored). targets follow the family's convention (GANimation: (T, 17)
    AU intensities 0-5; GANnotation: (T, 66, 2) points in the crop's pixel coordinates). Frames go through the
    generator chunk_size at a time (`render_clips`). input_first makes frame 0 the untouched face instead of its
    generated frame (still T frames; its attention is 1 and its colour map the face itself).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    face = np.asarray(face)
    _check_face(face, info.image_size)
    targets = np.asarray(targets)
    if targets.ndim < 1 or len(targets) == 0:
        raise ValueError("targets hold no frames")
    if precision not in PRECISIONS and not isinstance(generator, Runtime):
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    runtime = generator if isinstance(generator, Runtime) else TorchRuntime(generator, info, device=device,
                                                                             precision=precision)
    (clip,) = render_clips(runtime, [PreparedClip(face, targets, input_first)], batch_size=chunk_size,
                           return_maps=return_maps)
    return clip
