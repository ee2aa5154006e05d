"""Output frames laid out: the animated frames alone, beside the source photo, with the attention mask; a preview
strip of a clip; and the bicubic resize (torch) that scales panels to one height.
"""
from __future__ import annotations

import numpy as np

from ganbatch.choices import OUTPUT_LAYOUTS
from ganbatch.io.images import check_uint8
from ganbatch.io.video import check_frames



def compose_frames(frames: np.ndarray, *, layout: str = "single", source: np.ndarray | None = None,
                   attention: np.ndarray | None = None, size: int | None = None) -> np.ndarray:
    """Arrange animated frames for output; returns uint8 (T, H', W', 3).

    ``single`` is the frames alone; ``side-by-side`` puts the ``source`` photo (H, W, 3) left of them;
    ``with-mask`` adds the attention mask (T, H, W) floats in [0, 1] on the right as grayscale, where white
    (attention 1) marks pixels kept from the input. ``size`` rescales every panel to that height in px (bicubic,
    keeping the aspect ratio) before they are put side by side.
    """
    frames = check_frames(frames, "frames")
    count, height, width = frames.shape[:3]
    if layout not in OUTPUT_LAYOUTS:
        raise ValueError(f"layout: unknown layout {layout!r} (choose from {', '.join(OUTPUT_LAYOUTS)})")
    panels = [frames]
    if layout in ("side-by-side", "with-mask"):
        if source is None:
            raise ValueError(f"source: the {layout} layout needs the source image")
        source = check_uint8(source, "source")
        if source.shape != (height, width, 3):
            raise ValueError(f"source: shape {source.shape} does not match the frames' {(height, width, 3)}")
        panels.insert(0, np.broadcast_to(source, frames.shape))
    if layout == "with-mask":
        if attention is None:
            raise ValueError("attention: the with-mask layout needs the attention masks")
        attention = np.asarray(attention)
        if attention.shape != (count, height, width):
            raise ValueError(f"attention: shape {attention.shape} does not match the frames' {(count, height, width)}")
        gray = np.round(np.clip(attention, 0.0, 1.0) * 255.0).astype(np.uint8)
        panels.append(np.repeat(gray[..., None], 3, axis=3))
    if size is not None:
        panels = [_resize_frames(panel, size) for panel in panels]
    return np.concatenate(panels, axis=2) if len(panels) > 1 else np.ascontiguousarray(panels[0])


def preview_strip(frames: np.ndarray, n: int = 6) -> np.ndarray:
    """``n`` evenly spaced frames (first and last included) side by side: a uint8 (H, n*W, 3) image."""
    frames = check_frames(frames, "frames")
    n = min(n, len(frames))
    indices = np.round(np.linspace(0, len(frames) - 1, n)).astype(int)
    return np.concatenate(list(frames[indices]), axis=1)


def _resize_frames(frames: np.ndarray, height: int) -> np.ndarray:
    """Bicubic resize of uint8 (T, H, W, 3) frames to the given height, keeping the aspect ratio."""
    if height < 1:
        raise ValueError(f"size: output height must be positive, got {height}")
    import torch  # here, not at the top: the encode stage of a face-only layout never loads torch
    import torch.nn.functional as F

    width = max(1, round(frames.shape[2] * height / frames.shape[1]))
    batch = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    resized = F.interpolate(batch, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
