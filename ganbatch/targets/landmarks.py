"""Facial landmark targets: the 68-point iBUG layout, GANnotation's 66-point subset, files, crops and heatmaps.

Points are float32 arrays of shape (N, 2) or (T, N, 2) holding (x, y) pixel coordinates. The crop and heatmap
functions reproduce GANnotation's `utils.crop` and `utils.draw_gaussian` (ESanchezLozano/GANnotation), whose
coordinate conventions the trained generator expects.
"""
import io
import os
from dataclasses import dataclass
from typing import Union

import numpy as np
from PIL import Image

from ganbatch.targets.files import Source, read_source, source_name

NUM_IBUG = 68
# Index ranges (0-based, end exclusive) of the iBUG 68-point parts.
IBUG_PARTS = {
    "jaw": (0, 17),
    "right_brow": (17, 22),
    "left_brow": (22, 27),
    "nose_bridge": (27, 31),
    "nose_base": (31, 36),
    "right_eye": (36, 42),
    "left_eye": (42, 48),
    "outer_lips": (48, 60),
    "inner_lips": (60, 68),
}
# GANnotation drops the two inner-mouth corners (60 and 64) of the iBUG layout.
GANNOTATION_66_INDICES = np.array([i for i in range(NUM_IBUG) if i not in (60, 64)])
NUM_GANNOTATION = len(GANNOTATION_66_INDICES)
# Point i of a horizontally mirrored face is point IBUG_FLIP[i] of the original.
IBUG_FLIP = np.array(
    list(range(16, -1, -1))
    + list(range(26, 16, -1))
    + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46]
    + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48]
    + [59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60]
    + [67, 66, 65]
)
# The same mirror permutation in the 66-point layout (IBUG_FLIP swaps the dropped points 60 and 64 with each other).
GANNOTATION_FLIP = np.searchsorted(GANNOTATION_66_INDICES, IBUG_FLIP[GANNOTATION_66_INDICES])

# GANnotation's heatmap kernel: `_gaussian(size=7)` with its default sigma 0.25 relative to the size, i.e. a 7x7
# unnormalised Gaussian of standard deviation 1.75 px that peaks at 1 in its centre cell.
HEATMAP_KERNEL_SIZE = 7
HEATMAP_KERNEL_STD = 0.25 * HEATMAP_KERNEL_SIZE
# GANnotation's crop margin: `tight` percent of the mean landmark extent, at least 8 px for faces under 20 px.
GANNOTATION_TIGHT = 16

_NPY_MAGIC = b"\x93NUMPY"


class LandmarkError(ValueError):
    """Landmarks of the wrong shape or an unreadable landmark file."""


def _check_layout(points: np.ndarray, where: str) -> np.ndarray:
    if points.ndim != 3 or points.shape[1] not in (NUM_IBUG, NUM_GANNOTATION) or points.shape[2] != 2:
        raise LandmarkError(
            f"{where}: expected (N, 2) or (T, N, 2) points with N = {NUM_IBUG} or {NUM_GANNOTATION}, got {points.shape}"
        )
    if not np.all(np.isfinite(points)):
        raise LandmarkError(f"{where}: landmarks contain NaN or infinite values")
    return points.astype(np.float32)


def read_landmarks(source: Source) -> np.ndarray:
    """Read landmarks as float32 (T, N, 2), N = 68 or 66.

    Text files (.txt/.csv) hold one frame per row, `x1 y1 x2 y2 ...`, separated by whitespace or commas (as
    GANnotation's demo files do); N follows from the column count. `.npy` files hold (N, 2) or (T, N, 2).
    """
    where = source_name(source)
    data = read_source(source)
    if isinstance(data, bytes) and data.startswith(_NPY_MAGIC):
        try:
            points = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as error:
            raise LandmarkError(f"{where}: unreadable .npy file ({error})") from None
        return _check_layout(points.reshape((1,) + points.shape) if points.ndim == 2 else points, where)

    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        table = np.loadtxt(io.StringIO(text.replace(",", " ")), dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise LandmarkError(f"{where}: expected rows of numbers x1 y1 x2 y2 ... ({error})") from None
    if table.size == 0:
        raise LandmarkError(f"{where}: no landmarks in the file")
    if table.shape[1] not in (2 * NUM_IBUG, 2 * NUM_GANNOTATION):
        raise LandmarkError(
            f"{where}: {table.shape[1]} numbers per row; expected {2 * NUM_IBUG} (68 points) "
            f"or {2 * NUM_GANNOTATION} (66 points) as x1 y1 x2 y2 ..."
        )
    return _check_layout(table.reshape(len(table), -1, 2), where)


def write_landmarks(path: Union[str, os.PathLike], points) -> None:
    """Write (N, 2) or (T, N, 2) landmarks: `.npy` as float32 (T, N, 2), otherwise as text, one frame per row."""
    frames = as_frames(points, "write_landmarks")
    if os.fspath(path).endswith(".npy"):
        np.save(path, frames)
    else:
        np.savetxt(path, frames.reshape(len(frames), -1), fmt="%.4f")


def as_frames(points, what: str = "landmarks") -> np.ndarray:
    """`points` of shape (N, 2) or (T, N, 2) as float32 (T, N, 2) in a 68- or 66-point layout."""
    array = np.asarray(points, dtype=np.float32)
    return _check_layout(array[None] if array.ndim == 2 else array, what)


def to_gannotation66(points) -> np.ndarray:
    """The 66 GANnotation points of (..., 68, 2) iBUG landmarks; (..., 66, 2) input is returned as a copy."""
    array = np.asarray(points, dtype=np.float32)
    if array.ndim < 2 or array.shape[-1] != 2 or array.shape[-2] not in (NUM_IBUG, NUM_GANNOTATION):
        raise LandmarkError(f"to_gannotation66: expected (..., 68, 2) landmarks, got {array.shape}")
    if array.shape[-2] == NUM_GANNOTATION:
        return array.copy()
    return array[..., GANNOTATION_66_INDICES, :]


def flip_landmarks(points, width: float) -> np.ndarray:
    """Landmarks of the horizontally mirrored image of the given width: x -> width - x, left/right parts swapped.

    Works for (..., 68, 2) and (..., 66, 2). The mirror axis follows GANnotation's `flip_ImAndPts` (width - x).
    """
    array = np.asarray(points, dtype=np.float32)
    if array.ndim < 2 or array.shape[-1] != 2 or array.shape[-2] not in (NUM_IBUG, NUM_GANNOTATION):
        raise LandmarkError(f"flip_landmarks: expected (..., 68, 2) or (..., 66, 2) landmarks, got {array.shape}")
    permutation = IBUG_FLIP if array.shape[-2] == NUM_IBUG else GANNOTATION_FLIP
    flipped = array[..., permutation, :].copy()
    flipped[..., 0] = width - flipped[..., 0]
    return flipped


@dataclass(frozen=True)
class BoxCrop:
    """An axis-aligned crop-and-resize: image box (left, top, right, bottom) -> an image of `size` (width, height).

    crop coordinates = (image coordinates - (left, top)) * (scale_x, scale_y), per axis.
    """

    box: tuple[int, int, int, int]
    size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """(scale_x, scale_y): crop pixels per image pixel along each axis."""
        left, top, right, bottom = self.box
        return self.size[0] / (right - left), self.size[1] / (bottom - top)

    @property
    def offset(self) -> tuple[float, float]:
        """(left, top): the image position of the crop's origin."""
        return float(self.box[0]), float(self.box[1])

    def apply(self, points) -> np.ndarray:
        """Image coordinates (..., 2) -> crop coordinates."""
        return ((np.asarray(points, dtype=np.float64) - self.offset) * self.scale).astype(np.float32)

    def invert(self, points) -> np.ndarray:
        """Crop coordinates (..., 2) -> image coordinates."""
        return (np.asarray(points, dtype=np.float64) / self.scale + self.offset).astype(np.float32)


def gannotation_crop_box(points, image_width: int, image_height: int, tight: int = GANNOTATION_TIGHT):
    """GANnotation's crop box (left, top, right, bottom) around (N, 2) landmarks; right and bottom are exclusive.

    The margin is `tight` percent of the mean of the landmarks' width and height (8 px when that mean is under
    20 px); the box is the rounded landmark extent grown by the margin, clamped to the image, whose last row and
    column it never includes (as in the original).
    """
    array = np.asarray(points, dtype=np.float64)
    low, high = array.min(axis=0), array.max(axis=0)
    extent = 0.5 * float(np.sum(high - low))
    margin = 8 if extent < 20 else int(tight * extent / 100)
    left, top = np.maximum(np.round(low) - margin, 0).astype(int)
    right = int(min(np.round(high[0]) + margin, image_width - 1))
    bottom = int(min(np.round(high[1]) + margin, image_height - 1))
    if right <= left or bottom <= top:
        raise LandmarkError(f"landmarks span no area inside the {image_width}x{image_height} image")
    return int(left), int(top), right, bottom


def gannotation_crop(image, points, size: int = 128):
    """Crop `image` (H, W, C) or (H, W) around its face landmarks and resize it to size x size, as GANnotation does.

    Returns the uint8 crop, the points (same shape as given, (N, 2) or (T, N, 2)) in crop coordinates and the
    BoxCrop; for (T, N, 2) points the box comes from the first frame. Resizing is bilinear (PIL; GANnotation
    used OpenCV, whose bilinear resize does not antialias when shrinking, so pixel values can differ slightly).
    """
    pixels = np.asarray(image)
    if pixels.ndim not in (2, 3):
        raise LandmarkError(f"gannotation_crop: expected an (H, W) or (H, W, C) image, got shape {pixels.shape}")
    array = np.asarray(points, dtype=np.float32)
    reference = array if array.ndim == 2 else array.reshape(-1, *array.shape[-2:])[0]
    height, width = pixels.shape[:2]
    transform = BoxCrop(gannotation_crop_box(reference, width, height), (size, size))
    left, top, right, bottom = transform.box
    region = Image.fromarray(np.ascontiguousarray(pixels[top:bottom, left:right]).astype(np.uint8))
    crop = np.asarray(region.resize((size, size), Image.Resampling.BILINEAR))
    return crop, transform.apply(array), transform


def _gannotation_kernel() -> np.ndarray:
    """GANnotation's `_gaussian(7)`: exp(-((j - 3)^2 + (i - 3)^2) / (2 * 1.75^2)), evaluated in float64, as float32."""
    offsets = np.arange(HEATMAP_KERNEL_SIZE) - (HEATMAP_KERNEL_SIZE - 1) / 2
    exponent = (offsets[None, :] / HEATMAP_KERNEL_STD) ** 2 / 2 + (offsets[:, None] / HEATMAP_KERNEL_STD) ** 2 / 2
    return np.exp(-exponent).astype(np.float32)


_KERNEL = _gannotation_kernel()


def _kernel_placement(upper_left: np.ndarray, size: int):
    """Along one axis, per point and kernel offset k = 0..6: the image index, the kernel index and whether drawn.

    Follows `draw_gaussian`'s 1-based window arithmetic: the window covers 1-based pixels max(1, ul) ..
    min(ul + 6, size), and the kernel is read from index max(1, -ul) - 1 on, which shifts it by one or more cells
    when the window is cut at the low border (a quirk of the original, kept so that the heatmaps match).
    """
    k = np.arange(HEATMAP_KERNEL_SIZE)
    first = np.maximum(1, upper_left)
    length = np.minimum(upper_left + HEATMAP_KERNEL_SIZE - 1, size) - first + 1
    image_index = first[:, None] - 1 + k
    kernel_index = np.maximum(1, -upper_left)[:, None] - 1 + k
    return image_index, kernel_index, k < length[:, None]


def landmark_heatmaps(points, size: int = 128) -> np.ndarray:
    """One heatmap per landmark, float32 (T, N, size, size), for points (N, 2) or (T, N, 2) in crop pixels.

    Reproduces GANnotation's `generate_maps` / `draw_gaussian` with sigma 1: each point is rounded to 2 decimals,
    a 7x7 unnormalised Gaussian (peak 1) is placed with its centre at 0-based pixel floor(p) - 1 (the original's
    1-based offsets), cut at the image border with the original's kernel offsets, and nothing is drawn for a point
    whose window lies wholly outside. Each landmark has its own map, so the original's clip to 1 never applies.
    """
    array = np.asarray(points, dtype=np.float64)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[-1] != 2:
        raise LandmarkError(f"landmark_heatmaps: expected (N, 2) or (T, N, 2) points, got {array.shape}")
    frames, count = array.shape[:2]
    upper_left = np.floor(np.round(array.reshape(-1, 2), 2) - 3).astype(np.int64)  # (P, 2): x, y
    inside = np.all((upper_left <= size) & (upper_left + HEATMAP_KERNEL_SIZE - 1 >= 1), axis=1)
    point = np.flatnonzero(inside)
    cols, kernel_cols, col_drawn = _kernel_placement(upper_left[point, 0], size)
    rows, kernel_rows, row_drawn = _kernel_placement(upper_left[point, 1], size)
    # every drawn (point, kernel row, kernel column) triple; each point has its own map, so no writes collide
    p, i, j = np.nonzero(row_drawn[:, :, None] & col_drawn[:, None, :])
    maps = np.zeros((len(upper_left), size, size), dtype=np.float32)
    maps[point[p], rows[p, i], cols[p, j]] = _KERNEL[kernel_rows[p, i], kernel_cols[p, j]]
    return maps.reshape(frames, count, size, size)
