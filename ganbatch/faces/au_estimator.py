"""AU estimator: 17 OpenFace AU intensities (0-5) read off a face's 68 landmarks, without OpenFace.

Method (fitted by `scripts/fit_au_estimator.py` on synthetic faces run through the dlib detector, see
docs/au_estimator.md):

1. Pose normalisation: the 68 points are mapped onto a mean shape by the 2-D similarity (translation, scale,
   in-plane rotation) that best fits the points an expression barely moves (jaw top, nose bridge, eye corners), so
   the features do not depend on where the face is, how large it is or how it is rolled.
2. Features: the aligned points, less the mean shape (136 numbers), standardised.
3. A small MLP (ReLU) maps the features to the AUs; the face and its mirror image are both read and averaged (the
   AUs are bilateral), and the result is clipped to 0-5. There are two such read-outs, as OpenFace has static and
   dynamic models: the photo read-out, fitted for each face's level (L1: it says 0 for an AU it cannot tell, so a
   photo's rarer AUs read 0), and the video read-out, fitted to follow an expression as it changes (L1 with the rarer
   AUs' presence weighed up, so that every AU moves with the face), which reads videos.
4. Confidence: how typical the aligned shape is of the faces the estimator was fitted on (its Mahalanobis distance
   in the fit's principal components): 1 inside the fit's 90th percentile, falling linearly to 0 at twice its 99th.
5. In a video (`AUEstimator.read_video`, with the video read-out), frames without a face hold the previous frame's
   AUs and the per-frame read-outs are smoothed over time (`ganbatch.faces.tracks`): the detector's landmarks jitter
   from frame to frame much faster than a face moves.

The asset `ganbatch/assets/au_estimator.pt` is `{"format": "ganbatch-au-estimator", "version": 1, "config": <JSON>,
"state_dict": {name: tensor}}`, read with `torch.load(weights_only=True)`; inference is plain NumPy.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ganbatch.faces.detect import FaceDetector, largest_face
from ganbatch.faces.tracks import hold_missing, smooth_over_time
from ganbatch.io.assets import load_versioned
from ganbatch.targets.aus import AU_NAMES, AU_SCALE, NUM_AUS
from ganbatch.targets.landmarks import IBUG_FLIP, NUM_IBUG

FORMAT = "ganbatch-au-estimator"
VERSION = 1
SHIPPED_ESTIMATOR = Path(__file__).resolve().parents[1] / "assets" / "au_estimator.pt"
# Points the similarity alignment fits: jaw top (0, 1, 15, 16), nose bridge (27-30) and eye corners (36, 39, 42,
# 45); the synthetic AUs move none of them more than a trace, and real expressions move them little.
ANCHOR_POINTS = (0, 1, 15, 16, 27, 28, 29, 30, 36, 39, 42, 45)
# The read-outs' MLP layers in the asset's state_dict: "<prefix><i>.weight" and ".bias". A file without the video
# read-out (older ones) reads videos with the photo read-out.
READOUT_PREFIXES = {"photo": "layer", "video": "video_layer"}


@dataclass(frozen=True)
class VideoAUs:
    """A video's per-frame AUs (T, 17), smoothed over time; each frame's confidence (T,) (0 where it had no face),
    whether it had a face (T,), and how many frames held an earlier frame's AUs."""

    aus: np.ndarray
    confidence: np.ndarray
    found: np.ndarray
    held: int


class AUEstimatorError(Exception):
    """An AU estimator file that is missing or cannot be read."""


@dataclass(frozen=True)
class AUEstimate:
    """One face's AUs: intensities float32 (17,) 0-5 (zeros when no face), confidence 0-1, and why it failed."""

    aus: np.ndarray
    confidence: float
    success: bool
    reason: str | None = None


def align_landmarks(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Landmarks (N, 68, 2) mapped onto `reference` (68, 2) by the similarity transform that best fits the anchor
    points (least squares; written with complex numbers, where a similarity is z -> a z + b)."""
    z = points[..., 0] + 1j * points[..., 1]
    target = reference[:, 0] + 1j * reference[:, 1]
    anchors = list(ANCHOR_POINTS)
    source = z[:, anchors] - z[:, anchors].mean(axis=1, keepdims=True)
    goal = target[anchors] - target[anchors].mean()
    scale_rotation = (np.conj(source) * goal).sum(axis=1) / np.maximum((np.abs(source) ** 2).sum(axis=1), 1e-12)
    aligned = scale_rotation[:, None] * (z - z[:, anchors].mean(axis=1, keepdims=True)) + target[anchors].mean()
    return np.stack([aligned.real, aligned.imag], axis=-1)


def mirror_landmarks(points: np.ndarray) -> np.ndarray:
    """Landmarks (N, 68, 2) of the horizontally mirrored faces (x negated, left/right points swapped)."""
    mirrored = points[:, IBUG_FLIP].copy()
    mirrored[..., 0] *= -1
    return mirrored


def shape_features(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Features (N, 136): the aligned landmarks less the reference shape."""
    return (align_landmarks(points, reference) - reference).reshape(len(points), -1)


def check_landmarks(points) -> np.ndarray:
    """`points` as float64 (N, 68, 2) (one (68, 2) face is taken as N=1); ValueError when not finite 68-point sets."""
    array = np.asarray(points, dtype=np.float64)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != (NUM_IBUG, 2) or not np.isfinite(array).all():
        raise ValueError(f"landmarks: expected finite (N, {NUM_IBUG}, 2) iBUG points, got {array.shape}")
    return array


class AUEstimator:
    """Landmarks -> AUs with the fitted parameters `params` (NumPy arrays named as in the asset's state_dict).

    params: reference (68, 2) mean shape; feature_mean, feature_std (136,); for each read-out (READOUT_PREFIXES:
    layer{i}, video_layer{i}) .weight (out, in) and .bias of its MLP's layers (ReLU between them; the last gives
    AU / AU_SCALE); pca_components (K, 136) and pca_scale (K,) for the confidence's distance, with distance_typical /
    distance_limit (its 90th percentile on the fit's faces and the distance where confidence reaches 0).
    """

    def __init__(self, params: dict[str, np.ndarray], config: dict | None = None):
        self.params = {name: np.asarray(value, dtype=np.float64) for name, value in params.items()}
        self.config = dict(config or {})
        modules = {name.split(".")[0] for name in self.params}
        self.readouts = {  # read-out -> its layers' names, in order
            readout: sorted((name for name in modules if re.fullmatch(rf"{prefix}\d+", name)),
                            key=lambda name: int(name[len(prefix):]))
            for readout, prefix in READOUT_PREFIXES.items()}
        if not self.readouts["video"]:
            self.readouts["video"] = self.readouts["photo"]

    @property
    def unread_aus(self) -> tuple[str, ...]:
        """AU names (`AU_NAMES` spelling) the photo read-out does not read: its estimates of them on the fit's
        held-out faces stayed at one value (0), whatever the face. Empty for a file that does not say."""
        return tuple(self.config.get("unread_aus", ()))

    def _read(self, features: np.ndarray, readout: str) -> np.ndarray:
        x = (features - self.params["feature_mean"]) / self.params["feature_std"]
        layers = self.readouts[readout]
        for position, layer in enumerate(layers):
            x = x @ self.params[f"{layer}.weight"].T + self.params[f"{layer}.bias"]
            if position < len(layers) - 1:
                x = np.maximum(x, 0.0)
        return x * AU_SCALE

    def predict(self, landmarks, clip: bool = True, readout: str = "photo") -> np.ndarray:
        """AU intensities float32 (N, 17), 0-5, of landmark sets (N, 68, 2) (or one (68, 2) set -> (1, 17)), by the
        photo read-out or (readout="video") the video read-out.

        clip=False keeps the network's raw read-out, which goes below 0 (and above 5): a face's expression changes
        (differences between two of its frames) are then seen down to the bottom of the scale.
        """
        points = check_landmarks(landmarks)
        reference = self.params["reference"]
        both = (self._read(shape_features(points, reference), readout)
                + self._read(shape_features(mirror_landmarks(points), reference), readout))
        return (np.clip(both / 2, 0.0, AU_SCALE) if clip else both / 2).astype(np.float32)

    def read_video(self, points: list[Optional[np.ndarray]], fps: float, *, clip: bool = True) -> VideoAUs:
        """A video's AUs from its frames' (68, 2) landmarks (None: no face in that frame; at least one face): each
        face read as `predict` reads it with the video read-out, frames without a face holding the nearest earlier
        frame's AUs, the whole smoothed over time (`smooth_over_time`)."""
        found = np.array([face is not None for face in points])
        faces = np.stack([face for face in points if face is not None])
        read = iter(self.predict(faces, clip=clip, readout="video"))
        aus, held = hold_missing([next(read) if face is not None else None for face in points])
        confidence = np.zeros(len(points), np.float32)
        confidence[found] = self.confidence(faces)
        return VideoAUs(smooth_over_time(aus, fps), confidence, found, held)

    def confidence(self, landmarks) -> np.ndarray:
        """Confidence float32 (N,) 0-1 that landmark sets look like the faces the estimator was fitted on."""
        distance = self.shape_distance(landmarks)
        typical, limit = float(self.params["distance_typical"]), float(self.params["distance_limit"])
        return np.clip((limit - distance) / (limit - typical), 0.0, 1.0).astype(np.float32)

    def shape_distance(self, landmarks) -> np.ndarray:
        """Mahalanobis distance (N,), per component (RMS), of aligned shapes in the fit's principal components."""
        features = shape_features(check_landmarks(landmarks), self.params["reference"]) - self.params["feature_mean"]
        scores = features @ self.params["pca_components"].T / self.params["pca_scale"]
        return np.sqrt((scores ** 2).mean(axis=1))

    def estimate_image(self, image: np.ndarray, detector: FaceDetector) -> AUEstimate:
        """The AUs of the largest face `detector` finds in an RGB uint8 image; success False with a reason when there
        is no face or the backend gives no landmarks."""
        face = largest_face(detector.detect(image))
        if face is None:
            return AUEstimate(np.zeros(NUM_AUS, np.float32), 0.0, False,
                              f"no face found (face backend {detector.name})")
        if face.landmarks is None:
            return AUEstimate(np.zeros(NUM_AUS, np.float32), 0.0, False,
                              f"face backend {detector.name} finds no landmarks; use dlib or face-alignment")
        return AUEstimate(self.predict(face.landmarks)[0], float(self.confidence(face.landmarks)[0]), True)


def save_au_estimator(estimator: AUEstimator, path) -> None:
    """Write `estimator` to `path` in the format of the module docstring."""
    import torch  # writing only (the fit script); reading goes through io.assets

    from ganbatch.io.atomic import atomic_local_path

    content = {
        "format": FORMAT,
        "version": VERSION,
        "config": json.dumps({**estimator.config, "au_names": list(AU_NAMES), "anchor_points": list(ANCHOR_POINTS)}),
        "state_dict": {name: torch.from_numpy(np.asarray(value, np.float32)) for name, value in
                       estimator.params.items()},
    }
    with atomic_local_path(Path(path)) as tmp:
        torch.save(content, tmp)


def load_au_estimator(path=None) -> AUEstimator:
    """The estimator saved at `path` (default: the shipped one, loaded once per process).

    Raises AUEstimatorError naming the file when it is missing or not in this format.
    """
    if path is None:
        return _shipped_estimator()
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _shipped_estimator() -> AUEstimator:
    return _load(SHIPPED_ESTIMATOR)


def _load(path: Path) -> AUEstimator:
    state_dict, config = load_versioned(path, format=FORMAT, version=VERSION, what="AU estimator",
                                        error=AUEstimatorError)
    if config.get("au_names") != list(AU_NAMES) or config.get("anchor_points") != list(ANCHOR_POINTS):
        raise AUEstimatorError(f"{path}: AU order or anchor points differ from this version of ganbatch")
    return AUEstimator({name: tensor.numpy() for name, tensor in state_dict.items()}, config)
