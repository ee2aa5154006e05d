"""Image and sequence metrics of the evaluation (pure numpy/scipy/scikit-image, no models).

- Fidelity: `psnr` and `ssim` of uint8 RGB images against a reference (data range 255).
- Expression regions: `expression_mask` marks the parts of the face an expression may change, so that
  `masked_abs_error` over the rest measures how well identity and background are kept.
- Smoothness of a clip: `monotone_fraction` and `time_correlation` of per-frame AU readouts, and
  `max_over_mean_change` of the frames themselves.
- Sharpness: `sharpness_ratio`, the high-frequency energy (mean squared Laplacian of the grey image) of an image
  over that of the true target, so that a blurred output scores below 1 even where its PSNR is good.
- Geometry: `landmark_error`, the mean landmark distance over the inter-ocular distance.
"""
import warnings

import numpy as np
from scipy import ndimage, stats
from scipy.spatial import ConvexHull
from skimage.draw import polygon
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ganbatch.targets.landmarks import IBUG_PARTS, NUM_IBUG

# Identical images have an infinite PSNR; it is reported as this value so that means stay finite.
PSNR_CAP = 100.0


def _part(name):
    return list(range(*IBUG_PARTS[name]))


# The expression region is the union, over the source and the target landmarks, of two hulls: the upper face
# (brows, nose bridge, eyes) and the lower face (nose base, lips, and jaw points 2-14 around cheeks and chin),
# dilated by MASK_DILATION times the inter-ocular distance. The dilation reaches the shading that has no landmarks
# (forehead lines above the brows, cheek bulges, nasolabial folds, dimples): over the 8 preset expressions, 8 random
# AU pairs and a full AU12 on 10 identities, at most 0.7% (64 px) and none (128 px) of the pixels the ground truth
# changes (by more than 10 of 255 in a channel) lie outside it, while it covers about half of the image.
MASK_GROUPS = (
    _part("right_brow") + _part("left_brow") + _part("nose_bridge") + _part("right_eye") + _part("left_eye"),
    _part("nose_base") + _part("outer_lips") + _part("inner_lips") + list(range(2, 15)),
)
MASK_DILATION = 0.4


def _check_pair(reference, image):
    reference, image = np.asarray(reference), np.asarray(image)
    if reference.shape != image.shape:
        raise ValueError(f"images differ in shape: {reference.shape} vs {image.shape}")
    if reference.dtype != np.uint8 or image.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {reference.dtype} and {image.dtype}")
    return reference, image


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of uint8 `image` against `reference`; PSNR_CAP when they are identical."""
    reference, image = _check_pair(reference, image)
    if np.array_equal(reference, image):
        return PSNR_CAP
    return min(float(peak_signal_noise_ratio(reference, image, data_range=255)), PSNR_CAP)


def ssim(reference: np.ndarray, image: np.ndarray) -> float:
    """Structural similarity (scikit-image, 7x7 windows, per colour channel averaged) of uint8 RGB images."""
    reference, image = _check_pair(reference, image)
    return float(structural_similarity(reference, image, channel_axis=-1, data_range=255))


def interocular_distance(landmarks68: np.ndarray) -> float:
    """Distance between the centres of the two eyes (iBUG points 36-41 and 42-47), in pixels."""
    points = np.asarray(landmarks68, dtype=np.float64)
    return float(np.linalg.norm(points[_part("right_eye")].mean(0) - points[_part("left_eye")].mean(0)))


def expression_mask(landmark_sets, size: int, dilation: float = MASK_DILATION) -> np.ndarray:
    """Boolean (size, size) mask of the expression region of faces posed by each of `landmark_sets` (68 iBUG
    points in pixels, e.g. a pair's source and target): the union of the MASK_GROUPS hulls, dilated by a disk of
    `dilation` times the first set's inter-ocular distance."""
    mask = np.zeros((size, size), bool)
    for landmarks in landmark_sets:
        points = np.asarray(landmarks, dtype=np.float64)
        if points.shape != (NUM_IBUG, 2):
            raise ValueError(f"landmarks: expected shape ({NUM_IBUG}, 2), got {points.shape}")
        for group in MASK_GROUPS:
            hull = points[group][ConvexHull(points[group]).vertices]
            rows, cols = polygon(hull[:, 1], hull[:, 0], (size, size))
            mask[rows, cols] = True
    radius = int(round(dilation * interocular_distance(landmark_sets[0])))
    if radius < 1:
        return mask
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    return ndimage.binary_dilation(mask, structure=x * x + y * y <= radius * radius)


def masked_abs_error(reference: np.ndarray, image: np.ndarray, where: np.ndarray) -> float:
    """Mean absolute difference (0-255 scale, over pixels and channels) of two uint8 images where `where` is True."""
    reference, image = _check_pair(reference, image)
    where = np.asarray(where, bool)
    if where.shape != reference.shape[:2]:
        raise ValueError(f"mask shape {where.shape} does not match the images' {reference.shape[:2]}")
    if not where.any():
        raise ValueError("mask selects no pixels")
    return float(np.abs(reference[where].astype(np.int16) - image[where]).mean())


def laplacian_energy(image: np.ndarray, where: np.ndarray | None = None) -> float:
    """Mean squared Laplacian (4-neighbour, of the grey image in 0-255 units) of a uint8 RGB image, over the
    pixels where `where` (H, W) is True (all pixels by default): its high-frequency energy."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    grey = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    energy = ndimage.laplace(grey, mode="nearest") ** 2
    if where is None:
        return float(energy.mean())
    where = np.asarray(where, bool)
    if where.shape != grey.shape or not where.any():
        raise ValueError(f"mask must be a non-empty (H, W) = {grey.shape} boolean array, got {where.shape}")
    return float(energy[where].mean())


def sharpness_ratio(reference: np.ndarray, image: np.ndarray, where: np.ndarray | None = None) -> float:
    """`laplacian_energy` of image over that of reference (same region): 1 as sharp as the reference, below 1
    blurrier, above 1 noisier or with sharper edges. A flat reference (no energy) counts 1 if image is flat too."""
    reference, image = _check_pair(reference, image)
    ref_energy, energy = laplacian_energy(reference, where), laplacian_energy(image, where)
    if ref_energy == 0:
        return 1.0 if energy == 0 else float("inf")
    return energy / ref_energy


def landmark_error(points: np.ndarray, reference: np.ndarray) -> float:
    """Mean Euclidean distance between two sets of 68 iBUG landmarks (pixels), over the reference's inter-ocular
    distance (the usual normalised mean error)."""
    points, reference = np.asarray(points, np.float64), np.asarray(reference, np.float64)
    if points.shape != (NUM_IBUG, 2) or reference.shape != (NUM_IBUG, 2):
        raise ValueError(f"landmarks: expected two ({NUM_IBUG}, 2) arrays, got {points.shape} and {reference.shape}")
    return float(np.linalg.norm(points - reference, axis=1).mean() / interocular_distance(reference))


def _oriented(readouts, directions):
    """Readouts (T, K) times the sign each column is meant to move in (K,), so that all should increase."""
    readouts = np.asarray(readouts, dtype=np.float64)
    directions = np.sign(np.asarray(directions, dtype=np.float64))
    if readouts.ndim != 2 or readouts.shape[0] < 2 or directions.shape != readouts.shape[1:]:
        raise ValueError(f"expected readouts (T >= 2, K) and directions (K,), got {readouts.shape} and "
                         f"{directions.shape}")
    if not np.all(directions):
        raise ValueError("directions must be non-zero (+1 increasing, -1 decreasing)")
    return readouts * directions


def monotone_fraction(readouts: np.ndarray, directions: np.ndarray) -> float:
    """Fraction of the frame-to-frame steps of readouts (T, K) that go the intended way (direction (K,) = +-1) or
    stay level, over all K columns."""
    steps = np.diff(_oriented(readouts, directions), axis=0)
    return float(np.mean(steps >= 0))


def time_correlation(readouts: np.ndarray, directions: np.ndarray) -> float:
    """Mean over the K columns of the Spearman correlation between frame index and the oriented readout; a
    constant column counts as 0 (it does not follow the path)."""
    oriented = _oriented(readouts, directions)
    time = np.arange(len(oriented))
    correlations = []
    for column in oriented.T:
        if np.ptp(column) == 0:
            correlations.append(0.0)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            correlations.append(float(stats.spearmanr(time, column).statistic))
    return float(np.mean(correlations))


def max_over_mean_change(frames: np.ndarray) -> float:
    """Largest frame-to-frame change of a clip (T, H, W, 3) over its mean change (mean absolute pixel difference):
    1 for evenly spaced frames, large for a clip that jumps; 1 for a clip that does not change at all."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or len(frames) < 2:
        raise ValueError(f"frames must be (T >= 2, H, W, C), got {frames.shape}")
    changes = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    mean = changes.mean()
    return float(changes.max() / mean) if mean > 0 else 1.0
