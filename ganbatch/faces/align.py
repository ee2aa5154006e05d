"""Square face crops for the models, and paste-back of animated crops into the full photo.

Coordinates: boxes are in pixel-edge coordinates (pixel ``i`` spans ``[i, i + 1)``), points (landmarks) in
pixel-centre coordinates (pixel ``i`` is centred on ``i``), in both the full image and the crop.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from ganbatch.faces.detect import Face, check_rgb_image

# Crop side = (1 + margin) x the longer side of the face box. Measured on the shared fixture crops (the original
# tools' framing), the 68-landmark box spans 0.8-0.98 of the crop side, i.e. margins of 0.02-0.32; 0.2 sits in that
# range. Detector boxes without landmarks (lbp) are already looser than landmark boxes.
DEFAULT_MARGIN = 0.2
# Resampling filter for crops and --crop none resizing.
RESAMPLE = Image.Resampling.LANCZOS


@dataclass(frozen=True)
class CropTransform:
    """A square region of a full image resampled to a ``size x size`` crop, and the point maps between them.

    The region is ``[x0, x0 + side) x [y0, y0 + side)`` in full-image pixel-edge coordinates; it may extend past
    the image border (the crop then holds edge-replicated pixels there).
    """

    x0: float
    y0: float
    side: float
    size: int

    @property
    def scale(self) -> float:
        """Crop pixels per full-image pixel."""
        return self.size / self.side

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The region as ``(x0, y0, x1, y1)`` in full-image pixel-edge coordinates."""
        return (self.x0, self.y0, self.x0 + self.side, self.y0 + self.side)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` points ``(x, y)`` from the full image to the crop."""
        origin = np.array([self.x0, self.y0])
        return (np.asarray(points, dtype=float) + 0.5 - origin) * self.scale - 0.5

    def invert(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` points ``(x, y)`` from the crop back to the full image."""
        origin = np.array([self.x0, self.y0])
        return (np.asarray(points, dtype=float) + 0.5) / self.scale + origin - 0.5


def face_crop_transform(face: Face, size: int, margin: float = DEFAULT_MARGIN) -> CropTransform:
    """The square crop around ``face``: centred on its landmark box (its detector box when it has no landmarks),
    side ``(1 + margin)`` x the box's longer side (``margin / 2`` of it added on each side), output ``size``."""
    if margin <= -1:
        raise ValueError(f"margin: must be > -1, got {margin}")
    if face.landmarks is not None:
        low, high = face.landmarks.min(axis=0) + 0.5, face.landmarks.max(axis=0) + 0.5  # centres -> edges
        x0, y0, x1, y1 = low[0], low[1], high[0], high[1]
    else:
        x0, y0, x1, y1 = face.box
    side = (1 + margin) * max(x1 - x0, y1 - y0)
    if side <= 0:
        raise ValueError(f"face: empty box {face.box}")
    return CropTransform(x0=(x0 + x1 - side) / 2, y0=(y0 + y1 - side) / 2, side=float(side), size=size)


def crop_with_transform(image: np.ndarray, transform: CropTransform) -> np.ndarray:
    """Resample ``transform``'s region of an RGB ``uint8`` image to a ``size x size`` crop (Lanczos filter).

    Parts of the region outside the image are filled by edge replication, so the face stays centred.
    """
    image = check_rgb_image(image)
    height, width = image.shape[:2]
    left, top = math.floor(transform.x0), math.floor(transform.y0)
    right, bottom = math.ceil(transform.x0 + transform.side), math.ceil(transform.y0 + transform.side)
    if right <= 0 or bottom <= 0 or left >= width or top >= height:
        raise ValueError(f"crop box {transform.box} lies outside the {width}x{height} image")
    inside = image[max(top, 0) : min(bottom, height), max(left, 0) : min(right, width)]
    padding = ((max(-top, 0), max(bottom - height, 0)), (max(-left, 0), max(right - width, 0)), (0, 0))
    region = np.pad(inside, padding, mode="edge")
    x0, y0 = transform.x0 - left, transform.y0 - top
    crop = Image.fromarray(region).resize(
        (transform.size, transform.size), RESAMPLE, box=(x0, y0, x0 + transform.side, y0 + transform.side)
    )
    return np.asarray(crop)


def crop_face(
    image: np.ndarray, face: Face, size: int, margin: float = DEFAULT_MARGIN
) -> tuple[np.ndarray, CropTransform]:
    """Square ``size x size`` crop around ``face`` (see :func:`face_crop_transform`) and its transform."""
    transform = face_crop_transform(face, size, margin)
    return crop_with_transform(image, transform), transform


def fit_to_size(image: np.ndarray, size: int) -> np.ndarray:
    """``--crop none``: an input already framed as a face crop, brought to ``size x size``.

    Model-sized inputs are returned as they are; others are cut to their centred square (so faces are not
    stretched) and resized with a Lanczos filter.
    """
    image = check_rgb_image(image)
    if image.shape[:2] == (size, size):
        return image
    return np.asarray(ImageOps.fit(Image.fromarray(image), (size, size), method=RESAMPLE))


def _covered_pixels(start: float, side: float, length: int) -> np.ndarray:
    """Indices (within ``[0, length)``) of the pixels whose centres lie in ``[start, start + side]`` (edges)."""
    first = max(math.ceil(start - 0.5), 0)
    last = min(math.floor(start + side - 0.5), length - 1)
    return np.arange(first, last + 1)


def _feather_ramp(fraction: np.ndarray, feather: float) -> np.ndarray:
    """Blend weight across a box: smoothstep from 0 at the edges to 1 at ``feather`` of the side inside them."""
    if feather == 0:
        return np.ones_like(fraction)
    ramp = np.clip(np.minimum(fraction, 1 - fraction) / feather, 0, 1)
    return ramp * ramp * (3 - 2 * ramp)


def paste_back(
    photo: np.ndarray,
    crop_frames: np.ndarray,
    attention: np.ndarray | None,
    transform: CropTransform,
    *,
    feather: float = 0.1,
) -> np.ndarray:
    """Put animated crops back into the full photo: ``(T, S, S, 3)`` uint8 frames -> ``(T, H, W, 3)`` uint8 video.

    Each frame is resampled (bicubic) onto the photo pixels inside ``transform``'s box and blended with weight
    ``(1 - attention) * border``: ``attention`` ``(T, S, S)`` in [0, 1] is the model's mask (1 = input pixel kept;
    ``None`` replaces the whole box) and ``border`` rises smoothly from 0 at the box edges to 1 at ``feather``
    (a fraction of the box side, at most 0.5; 0 = hard edges) inside them. Pixels outside the box, and the parts
    of the box outside the photo, are the photo's own.
    """
    photo = check_rgb_image(photo, "photo")
    frames = np.asarray(crop_frames)
    size = transform.size
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (size, size, 3):
        raise ValueError(f"crop_frames: expected uint8 (T, {size}, {size}, 3), got {frames.dtype} {frames.shape}")
    if attention is not None and np.shape(attention) != frames.shape[:3]:
        raise ValueError(f"attention: expected shape {frames.shape[:3]}, got {np.shape(attention)}")
    if not 0 <= feather <= 0.5:
        raise ValueError(f"feather: must be in [0, 0.5], got {feather}")

    import torch  # here, not at the top: the CPU stages that only crop never load torch
    import torch.nn.functional as F

    height, width = photo.shape[:2]
    video = np.repeat(photo[None], len(frames), axis=0)
    rows = _covered_pixels(transform.y0, transform.side, height)
    cols = _covered_pixels(transform.x0, transform.side, width)
    if rows.size == 0 or cols.size == 0 or len(frames) == 0:
        return video

    # Position of each covered pixel centre across the box, 0..1; grid_sample (align_corners=False) wants 2f - 1.
    across_x = (cols + 0.5 - transform.x0) / transform.side
    across_y = (rows + 0.5 - transform.y0) / transform.side
    grid_x, grid_y = np.meshgrid(2 * across_x - 1, 2 * across_y - 1)
    grid = torch.from_numpy(np.stack([grid_x, grid_y], axis=-1)).float().expand(len(frames), -1, -1, -1)

    layers = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    if attention is not None:
        layers = torch.cat([layers, torch.as_tensor(attention, dtype=torch.float32)[:, None]], dim=1)
    warped = F.grid_sample(layers, grid, mode="bicubic", padding_mode="border", align_corners=False)
    warped = warped.permute(0, 2, 3, 1)  # (T, rows, cols, 3 or 4)

    border = torch.from_numpy(np.outer(_feather_ramp(across_y, feather), _feather_ramp(across_x, feather))).float()
    weight = border[None, :, :, None]
    if attention is not None:
        weight = weight * (1 - warped[..., 3:].clamp(0, 1))
    target = (slice(None), slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    original = torch.from_numpy(video[target]).float()
    blended = original * (1 - weight) + warped[..., :3] * weight
    video[target] = blended.round().clamp(0, 255).to(torch.uint8).numpy()
    return video
