"""A face followed through a video: per-frame read-outs (landmarks, AUs) made whole where a frame had no face, and
smoothed over time."""
from __future__ import annotations

from typing import Optional

import numpy as np

# The time scale (a Gaussian's sigma) over which a video's per-frame AU read-outs are averaged: 2 frames at 25 fps.
# Blinks (AU45, 100-400 ms) keep their shape; on the synthetic driving videos it raised the path correlation of the
# moving AUs from 0.38-0.94 to 0.51-0.96 (docs/au_estimator.md), as the detector's frame-to-frame jitter averages out.
SMOOTHING_SECONDS = 0.08


def hold_missing(values: list[Optional[np.ndarray]]) -> tuple[np.ndarray, int]:
    """`values` stacked, each None replaced by the nearest earlier value (the first one, at the start), and the
    number replaced."""
    first = next(value for value in values if value is not None)
    filled, held = [], 0
    for value in values:
        held += value is None
        filled.append(value if value is not None else (filled[-1] if filled else first))
    return np.stack(filled), held


def smooth_over_time(values: np.ndarray, fps: float, seconds: float = SMOOTHING_SECONDS) -> np.ndarray:
    """One video's (T, ...) per-frame values averaged over time by a Gaussian of sigma `seconds` (the ends extended
    by their own values); unchanged when that is under half a frame."""
    sigma = seconds * fps
    if sigma < 0.5 or len(values) < 2:
        return values
    from scipy.ndimage import gaussian_filter1d  # scipy.ndimage only where a video is read

    return gaussian_filter1d(np.asarray(values, np.float32), sigma, axis=0, mode="nearest")
