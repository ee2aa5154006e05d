"""The AU estimator (`ganbatch.faces.au_estimator`) measured on the synthetic world, where every face's AUs are exact.

Faces are rendered by `ganbatch.synth` and run through a face detector (dlib by default), so the landmarks carry the
detector's own errors, as they would in use. The same renders feed `scripts/fit_au_estimator.py`.

- `detected_faces`: identities x sampled expressions, under varied head pose (roll, scale, position), render size
  and image quality (brightness, contrast, blur, noise, JPEG) -> detected landmarks, true AUs.
- `driving_paths`: synthetic driving videos, one identity along a smooth AU path through several expressions.
- `video_read_outs`: the driving videos' AUs as the product reads a video (held frames, smoothed over time).
- `photo_table` / `path_table`: per-AU MAE next to the mean predictor's, and per-AU correlation over time.
- `read_aus`: which AUs a set of estimates reads at all (the fit's `unread_aus` and the path table's `read_moves`).
- `landmark_following`: per face part, how the detector's points follow the renderer's own through the driving
  videos (what limits the path table: an estimator reads no more than its landmarks carry).

Identity seeds: the estimator is fitted on `sample_identities(n, FIT_SEED)` and evaluated on
`sample_identities(n, HELD_OUT_SEED)`, neither of which any other part of ganbatch uses.
"""
from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from ganbatch.faces.detect import FaceDetector, largest_face
from ganbatch.synth import ExpressionMix, render_face, sample_expression_aus
from ganbatch.targets.aus import AU_IDS, AU_NAMES, AU_SCALE, NUM_AUS
from ganbatch.targets.landmarks import IBUG_PARTS, NUM_IBUG

FIT_SEED = 24_000
HELD_OUT_SEED = 24_100
RENDER_SIZES = (112, 128, 128, 144, 160)
VIDEO_FPS = 25.0  # the synthetic driving videos' frame rate (what their smoothing over time assumes)
# The AUs whose landmarks move clearly (the goals apply to them).
MOVING_AUS = (1, 2, 4, 5, 7, 10, 12, 15, 17, 20, 23, 25, 26, 45)
PATH_MOVES = 0.5  # an AU's path moves in a video when it spans this much of the 0-5 scale
READ_MOVES = 0.05  # estimates spanning less than this over a set of faces or frames do not read the AU at all


@dataclass(frozen=True)
class DetectedFaces:
    """Rendered faces run through a detector: landmarks (N, 68, 2), NaN where no face was found; true AUs (N, 17);
    the index of each face's identity (N,); the renderer's own (true) landmarks (N, 68, 2)."""

    landmarks: np.ndarray
    aus: np.ndarray
    identity: np.ndarray
    true_landmarks: np.ndarray

    @property
    def found(self) -> np.ndarray:
        """(N,) bool: faces the detector found (with landmarks)."""
        return np.isfinite(self.landmarks).all(axis=(1, 2))


def vary_pose(identity, rng: np.random.Generator):
    """The identity with a head pose drawn wider than the synthetic data sets': roll +-15 degrees, scale 0.85-1.1,
    position +-0.06 of the image."""
    return dataclasses.replace(identity, roll_degrees=float(rng.uniform(-15, 15)), scale=float(rng.uniform(0.85, 1.1)),
                               shift_x=float(rng.uniform(-0.06, 0.06)), shift_y=float(rng.uniform(-0.05, 0.05)))


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A photo-like version of a render: lighting (gain, offset, gamma), sometimes blur and noise, JPEG at 50-95."""
    x = image.astype(np.float32) / 255
    x = np.clip(x * rng.uniform(0.7, 1.25) + rng.uniform(-0.08, 0.08), 0, 1) ** rng.uniform(0.75, 1.35)
    if rng.random() < 0.3:
        x = x + rng.normal(0, rng.uniform(0.005, 0.03), x.shape)
    picture = Image.fromarray(np.clip(x * 255, 0, 255).round().astype(np.uint8))
    if rng.random() < 0.3:
        picture = picture.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=int(rng.integers(50, 96)))
    return np.asarray(Image.open(buffer).convert("RGB"))


def detect_landmarks(image: np.ndarray, detector: FaceDetector) -> np.ndarray:
    """The largest face's 68 landmarks, or a (68, 2) array of NaN when there is none."""
    face = largest_face(detector.detect(image))
    if face is None or face.landmarks is None:
        return np.full((NUM_IBUG, 2), np.nan)
    return face.landmarks


def sample_training_aus(rng: np.random.Generator) -> np.ndarray:
    """An AU vector for fitting: 70% from the data sets' sampler, 30% with each AU present with probability 0.3 at
    U(0, 5) (combinations no prototype has, so the estimator cannot lean on the prototypes' correlations)."""
    if rng.random() < 0.7:
        return sample_expression_aus(rng)
    aus = np.where(rng.random(NUM_AUS) < 0.3, rng.uniform(0, AU_SCALE, NUM_AUS), 0.0)
    return np.round(aus, 2)


def detected_faces(identities, per_identity: int, detector: FaceDetector, seed: int, *, training: bool = False,
                   progress=None) -> DetectedFaces:
    """`per_identity` faces of each identity, AUs from `sample_training_aus` (training) or the data sets' default
    sampler, each under a new pose (`vary_pose`), render size (RENDER_SIZES) and `degrade`, through `detector`."""
    rng = np.random.default_rng(seed)
    landmarks, aus, owners, truth = [], [], [], []
    for index, identity in enumerate(identities):
        for _ in range(per_identity):
            expression = sample_training_aus(rng) if training else sample_expression_aus(rng, ExpressionMix())
            image, true_points = render_face(vary_pose(identity, rng), expression, int(rng.choice(RENDER_SIZES)))
            landmarks.append(detect_landmarks(degrade(image, rng), detector))
            aus.append(expression)
            owners.append(index)
            truth.append(true_points)
        if progress is not None:
            progress(index + 1, len(identities))
    return DetectedFaces(np.array(landmarks), np.array(aus, np.float32), np.array(owners), np.array(truth))


def au_path(rng: np.random.Generator, frames: int, keyframes: int = 5) -> np.ndarray:
    """A smooth AU path (frames, 17): neutral, then `keyframes` - 1 expressions from the data sets' sampler (redrawn
    until something moves), eased (smoothstep) from one to the next."""
    keys = [np.zeros(NUM_AUS)]
    while len(keys) < keyframes:
        aus = sample_expression_aus(rng)
        if aus.max() >= 1.0:
            keys.append(aus)
    position = np.linspace(0, keyframes - 1, frames)
    segment = np.minimum(position.astype(int), keyframes - 2)
    t = position - segment
    t = t * t * (3 - 2 * t)
    keys = np.array(keys)
    return (keys[segment] * (1 - t[:, None]) + keys[segment + 1] * t[:, None]).astype(np.float32)


def driving_paths(identities, frames: int, detector: FaceDetector, seed: int, size: int = 128) -> DetectedFaces:
    """One synthetic driving video per identity (fixed pose and quality within a video): its frames' detected
    landmarks along an `au_path`, the path as the AUs."""
    rng = np.random.default_rng(seed)
    landmarks, aus, owners, truth = [], [], [], []
    for index, identity in enumerate(identities):
        posed = vary_pose(identity, rng)
        path = au_path(rng, frames)
        quality_seed = int(rng.integers(2**31))
        for frame_aus in path:
            image, true_points = render_face(posed, frame_aus, size)
            landmarks.append(detect_landmarks(degrade(image, np.random.default_rng(quality_seed)), detector))
            truth.append(true_points)
        aus.append(path)
        owners += [index] * frames
    return DetectedFaces(np.array(landmarks), np.concatenate(aus), np.array(owners), np.array(truth))


def video_read_outs(estimator, videos: DetectedFaces, fps: float = VIDEO_FPS) -> np.ndarray:
    """(N, 17) AUs of the driving videos' frames as a video is read (`AUEstimator.read_video`, as `animate
    --driving-video` and `ganbatch aus` read one: held where no face was found, smoothed over time at `fps`); NaN
    for a video in which no face was found at all."""
    read = np.full((len(videos.aus), NUM_AUS), np.nan, np.float32)
    found = videos.found
    for video in np.unique(videos.identity):
        frames = np.flatnonzero(videos.identity == video)
        if found[frames].any():
            points = [videos.landmarks[index] if found[index] else None for index in frames]
            read[frames] = estimator.read_video(points, fps).aus
    return read


def photo_table(predicted: np.ndarray, truth: np.ndarray, mean_aus: np.ndarray) -> dict:
    """Per-AU MAE of `predicted` (N, 17) against `truth`, next to the mean predictor's (always `mean_aus`) and the
    zero predictor's (always 0: most AUs are absent from most faces, so 0 is the median, the best constant for MAE)."""
    estimator = np.abs(predicted - truth).mean(axis=0)
    baseline = np.abs(mean_aus[None] - truth).mean(axis=0)
    zero = np.abs(truth).mean(axis=0)
    return {"faces": len(truth), "au_names": list(AU_NAMES), "mae": estimator.tolist(),
            "mean_predictor_mae": baseline.tolist(), "zero_predictor_mae": zero.tolist(),
            "mean_mae": float(estimator.mean()), "mean_predictor_mean_mae": float(baseline.mean()),
            "zero_predictor_mean_mae": float(zero.mean()), "ratio": (estimator / np.maximum(baseline, 1e-9)).tolist()}


def read_aus(predicted: np.ndarray) -> np.ndarray:
    """(17,) bool: the AUs that estimates `predicted` (N, 17) read at all, i.e. that span READ_MOVES or more."""
    return np.ptp(predicted, axis=0) >= READ_MOVES


def centred_per_video(values: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """`values` (N, ...) as float64 with each video's mean (over its frames, `videos` (N,)) removed."""
    out = values.astype(np.float64)  # a copy
    for video in np.unique(videos):
        out[videos == video] -= out[videos == video].mean(axis=0)
    return out


def path_table(predicted: np.ndarray, truth: np.ndarray, videos: np.ndarray) -> dict:
    """Per-AU Pearson correlation over time between `predicted` and `truth` (N, 17), frames of all videos pooled
    after removing each video's mean (so a per-video offset, e.g. the identity's resting shape, does not count).

    Also per AU: in how many videos the true path moves (by PATH_MOVES or more), and whether the read-out moves at all
    (by READ_MOVES or more): one that stays at a value, e.g. always 0, does not read the AU, whatever its correlation.
    """
    p, t = centred_per_video(predicted, videos), centred_per_video(truth, videos)
    correlation = (p * t).sum(axis=0) / np.maximum(np.sqrt((p ** 2).sum(axis=0) * (t ** 2).sum(axis=0)), 1e-12)
    moving_videos = sum((np.ptp(truth[videos == video], axis=0) >= PATH_MOVES).astype(int) for video in
                        np.unique(videos))
    return {"frames": len(truth), "videos": int(len(np.unique(videos))), "au_names": list(AU_NAMES),
            "correlation": correlation.tolist(), "moving_videos": np.asarray(moving_videos).tolist(),
            "read_moves": read_aus(predicted).tolist()}


def landmark_following(videos: DetectedFaces) -> dict:
    """Per iBUG part (IBUG_PARTS): Pearson correlation and slope (least squares through 0) of the detector's point
    positions against the renderer's, x and y pooled, over the found frames of all `videos`, each video's mean
    removed (a video holds one pose, so what is left is what the expression moves). A slope of 1 and a correlation
    of 1 mean the detector follows that part exactly; a negative one, that it moves the other way."""
    found = videos.found
    detected = centred_per_video(videos.landmarks[found], videos.identity[found])
    true = centred_per_video(videos.true_landmarks[found], videos.identity[found])
    following = {}
    for part, (start, stop) in IBUG_PARTS.items():
        a, b = detected[:, start:stop].ravel(), true[:, start:stop].ravel()
        spread = np.sqrt((a ** 2).sum() * (b ** 2).sum())
        following[part] = {"correlation": float((a * b).sum() / spread) if spread > 0 else float("nan"),
                           "slope": float((a * b).sum() / max((b ** 2).sum(), 1e-12))}
    return following


def format_tables(photos: dict, paths: dict | None = None) -> str:
    """The per-AU table printed by scripts/eval_au_estimator.py (and copied into docs/au_estimator.md)."""
    lines = ["| AU | MAE | mean predictor | ratio | zero predictor | path correlation (videos it moves in) |",
             "|---|---|---|---|---|---|"]
    for index, name in enumerate(AU_NAMES):
        moving = "" if AU_IDS[index] in MOVING_AUS else " (shading)"
        correlation = "-"
        if paths:
            never = "" if paths["read_moves"][index] else ", never read"
            correlation = f"{paths['correlation'][index]:.3f} ({paths['moving_videos'][index]}{never})"
        lines.append(f"| {name}{moving} | {photos['mae'][index]:.3f} | {photos['mean_predictor_mae'][index]:.3f} | "
                     f"{photos['ratio'][index]:.2f} | {photos['zero_predictor_mae'][index]:.3f} | {correlation} |")
    correlation = f"{np.mean(paths['correlation']):.3f}" if paths else "-"
    lines.append(f"| mean | {photos['mean_mae']:.3f} | {photos['mean_predictor_mean_mae']:.3f} | "
                 f"{photos['mean_mae'] / photos['mean_predictor_mean_mae']:.2f} | "
                 f"{photos['zero_predictor_mean_mae']:.3f} | {correlation} |")
    return "\n".join(lines)
