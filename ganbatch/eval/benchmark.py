"""The evaluation benchmark: which faces and expression pairs are evaluated, running a generator on them, and the
numbers that come out.

Identities: `eval_identities(n, seed)` = `sample_identities(n, EVAL_SEED_OFFSET + seed)` with EVAL_SEED_OFFSET =
10_000, so evaluation faces never coincide with a data set written with a seed below 10_000 (`ganbatch synth`
defaults to 0) nor with the AU regressor's training and validation identities (seeds 5000 and 5001).

Pairs, per identity, at the model's image size:
- neutral -> each named expression of `ganbatch.targets.aus.EXPRESSIONS` at full strength (8 pairs);
- `random_pairs` pairs (source, target) drawn by the data sets' `sample_expression_aus`, redrawn until some AU
  differs by at least MOVING_AU_MIN (so the two faces always differ);
- one interpolated clip for smoothness: neutral -> the preset `PRESET_TARGETS[i % 8]` for identity i, in
  `path_frames` evenly spaced AU vectors (both ends included).

For each pair the generator animates `render_face(identity, source)` towards the target (GANimation: the target
AUs; GANnotation: the target's 66 landmarks) and the frame is compared with `render_face(identity, target)`, next to
the "copy the input" baseline that returns the source face unchanged:
- psnr, ssim: fidelity to the ground-truth target face;
- au_mae: mean absolute error (0-5) between the AU regressor's reading of the frame and the target AUs, over all 17
  AUs; au_mae_moving: the same over the AUs that differ between source and target by at least MOVING_AU_MIN;
- outside_mae: mean absolute pixel error (0-255) outside `metrics.expression_mask` of the source and target
  landmarks, i.e. how well hair, background, ears and clothes are kept;
- sharpness: `metrics.sharpness_ratio` of the frame to the true target inside that expression mask (where the
  model draws): 1 as sharp as the truth, below 1 blurred;
- landmark_error: the geometry of the face the frame shows, read back through the synthetic world: the AU
  regressor's reading of the frame drives `face_landmarks` of the (known) identity, and the 68 points are
  compared with the target face's (`metrics.landmark_error`, over the inter-ocular distance). It is the landmark
  error a GANnotation model is judged by, and it needs no landmark detector; `landmark_error_truth` is the floor
  the regressor's own error leaves (the same read-back on the true target).
Smoothness of the interpolated clip, over the AUs that move by at least MOVING_AU_MIN: the fraction of monotone
steps and the Spearman correlation with time of the regressor's per-frame readings, and the largest frame-to-frame
change over the mean one; the same numbers for the ground-truth renders of the path are the reference.
"""
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ganbatch.eval import metrics
from ganbatch.eval.au_regressor import AURegressor, load_au_regressor, predict_aus
from ganbatch.eval.report import write_report
from ganbatch.models.checkpoint import GeneratorInfo
from ganbatch.families import get_family
from ganbatch.runtimes import Runtime, open_runtime
from ganbatch.models.networks import AttentionGenerator
from ganbatch.render import render_clip
from ganbatch.synth import face_landmarks, render_face, sample_expression_aus, sample_identities
from ganbatch.targets.aus import AU_NAMES, AU_SCALE, EXPRESSIONS, NUM_AUS, expression_aus

EVAL_SEED_OFFSET = 10_000
PRESET_TARGETS = tuple(name for name in EXPRESSIONS if name != "neutral")
RANDOM_PAIR_NAME = "random"
MOVING_AU_MIN = 1.0
DEFAULT_IDENTITIES = 8
DEFAULT_RANDOM_PAIRS = 4
DEFAULT_PATH_FRAMES = 16
PAIR_METRICS = ("psnr", "psnr_copy", "ssim", "ssim_copy", "au_mae", "au_mae_copy", "au_mae_moving",
                "au_mae_moving_copy", "outside_mae", "outside_mae_copy", "sharpness", "sharpness_copy",
                "landmark_error", "landmark_error_copy")
SMOOTHNESS_METRICS = ("monotone_fraction", "time_correlation", "max_over_mean_change")


@dataclass(frozen=True)
class ExpressionPair:
    """One evaluated transfer: `source` and `target` AU vectors (17,); `name` is the target preset or "random"."""

    name: str
    source: np.ndarray
    target: np.ndarray


def eval_identities(count: int, seed: int = 0):
    """The `count` evaluation identities of `seed` (see the module docstring for the seed rule)."""
    if count < 1:
        raise ValueError(f"identities: expected at least 1, got {count}")
    if seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed}")
    return sample_identities(count, EVAL_SEED_OFFSET + seed)


def expression_pairs(rng: np.random.Generator, random_pairs: int = DEFAULT_RANDOM_PAIRS) -> list[ExpressionPair]:
    """The presets (neutral -> each named expression) followed by `random_pairs` random pairs drawn from `rng`."""
    neutral = np.zeros(NUM_AUS)
    pairs = [ExpressionPair(name, neutral, expression_aus(name).astype(np.float64)) for name in PRESET_TARGETS]
    while len(pairs) < len(PRESET_TARGETS) + random_pairs:
        source, target = sample_expression_aus(rng), sample_expression_aus(rng)
        if np.abs(target - source).max() >= MOVING_AU_MIN:
            pairs.append(ExpressionPair(RANDOM_PAIR_NAME, source, target))
    return pairs


def interpolation_path(source: np.ndarray, target: np.ndarray, frames: int) -> np.ndarray:
    """`frames` AU vectors (frames, 17) evenly spaced from `source` to `target`, both included."""
    if frames < 2:
        raise ValueError(f"path_frames: expected at least 2, got {frames}")
    weights = np.linspace(0.0, 1.0, frames)[:, None]
    return (1 - weights) * source + weights * target


def _conditions(family_name: str, identity, aus_frames: np.ndarray, size: int) -> np.ndarray:
    """The generator targets that ask for `aus_frames` (T, 17) on `identity` (`ModelFamily.eval_targets`: the AUs,
    or the synthetic faces' landmarks)."""
    return get_family(family_name).eval_targets(aus_frames, lambda aus: face_landmarks(identity, aus, size))


def _mean(values) -> float:
    return round(float(np.mean(values)), 4)


def _path_smoothness(readouts, frames, source, target) -> dict:
    moving = np.abs(target - source) >= MOVING_AU_MIN
    directions = np.sign(target - source)[moving]
    return {
        "monotone_fraction": metrics.monotone_fraction(readouts[:, moving], directions),
        "time_correlation": metrics.time_correlation(readouts[:, moving], directions),
        "max_over_mean_change": metrics.max_over_mean_change(frames),
    }


def _generate(identity, pairs, path, generator, info, size, chunk_size, device):
    """The generator's frame for each pair (P, S, S, 3) and its clip along `path` from the neutral face.

    Pairs that share a source face go through `render_clip` together; the path joins the neutral-source pairs.
    """
    groups = defaultdict(list)
    for pair_index, pair in enumerate(pairs):
        groups[pair.source.tobytes()].append(pair_index)
    generated = [None] * len(pairs)
    path_clip = None
    for members in groups.values():
        source = pairs[members[0]].source
        aus_frames = np.stack([pairs[i].target for i in members])
        with_path = not source.any()
        if with_path:
            aus_frames = np.concatenate([aus_frames, path])
        face, _ = render_face(identity, source, size)
        clip = render_clip(generator, info, face, _conditions(info.family, identity, aus_frames, size),
                           chunk_size=chunk_size, device=device).frames
        for offset, pair_index in enumerate(members):
            generated[pair_index] = clip[offset]
        if with_path:
            path_clip = clip[len(members):]
    return np.stack(generated), path_clip


def _read_back_landmarks(identity, aus: np.ndarray, size: int) -> np.ndarray:
    """The 68 landmarks of `identity` showing the AUs a regressor read off a face (clipped to the 0-5 scale)."""
    return face_landmarks(identity, np.clip(aus, 0, AU_SCALE), size)


def _pair_metrics(pair, frame, source, truth, readings, size, identity) -> dict:
    """One pair's metrics. `source` and `truth` are (image, landmarks) renders of its two expressions; `readings`
    the regressor's AUs for (frame, source image, truth image). `au_mae*_truth` is the regressor's own error;
    `au_error*` are the per-AU errors (17,) of model and copy baseline."""
    (source_image, source_points), (truth_image, truth_points) = source, truth
    outside = ~metrics.expression_mask([source_points, truth_points], size)
    moving = np.abs(pair.target - pair.source) >= MOVING_AU_MIN
    error, copy_error, truth_error = (np.abs(reading - pair.target) for reading in readings)
    return {
        "name": pair.name,
        "psnr": metrics.psnr(truth_image, frame),
        "psnr_copy": metrics.psnr(truth_image, source_image),
        "ssim": metrics.ssim(truth_image, frame),
        "ssim_copy": metrics.ssim(truth_image, source_image),
        "au_mae": float(error.mean()),
        "au_mae_copy": float(copy_error.mean()),
        "au_mae_moving": float(error[moving].mean()),
        "au_mae_moving_copy": float(copy_error[moving].mean()),
        "outside_mae": metrics.masked_abs_error(truth_image, frame, outside),
        "outside_mae_copy": metrics.masked_abs_error(truth_image, source_image, outside),
        "au_mae_truth": float(truth_error.mean()),
        "au_mae_moving_truth": float(truth_error[moving].mean()),
        "au_error": error,
        "au_error_copy": copy_error,
        "sharpness": metrics.sharpness_ratio(truth_image, frame, ~outside),
        "sharpness_copy": metrics.sharpness_ratio(truth_image, source_image, ~outside),
        **{key: metrics.landmark_error(_read_back_landmarks(identity, reading, size), truth_points)
           for key, reading in zip(("landmark_error", "landmark_error_copy", "landmark_error_truth"), readings)},
    }


def _evaluate_identity(index, identity, pairs, generator, info, size, regressor, path_frames, chunk_size, device):
    """Per-pair metric dicts and the smoothness of the model's and the ground truth's clip, for identity `index`."""
    path = interpolation_path(np.zeros(NUM_AUS), expression_aus(PRESET_TARGETS[index % len(PRESET_TARGETS)]),
                              path_frames)
    generated, path_clip = _generate(identity, pairs, path, generator, info, size, chunk_size, device)
    sources = [render_face(identity, pair.source, size) for pair in pairs]
    truths = [render_face(identity, pair.target, size) for pair in pairs]
    path_truth = np.stack([render_face(identity, aus, size)[0] for aus in path])
    # one regressor pass over everything it reads for this identity
    readable = np.concatenate([generated, np.stack([image for image, _ in sources]),
                               np.stack([image for image, _ in truths]), path_clip, path_truth])
    readings = np.split(predict_aus(readable, regressor), np.cumsum([len(pairs)] * 3 + [path_frames]))
    read_generated, read_sources, read_truths, read_path, read_path_truth = readings

    rows = [_pair_metrics(pair, generated[i], sources[i], truths[i],
                          (read_generated[i], read_sources[i], read_truths[i]), size, identity)
            for i, pair in enumerate(pairs)]
    smoothness = {"model": _path_smoothness(read_path, path_clip, path[0], path[-1]),
                  "ground_truth": _path_smoothness(read_path_truth, path_truth, path[0], path[-1])}
    return rows, smoothness


def evaluate_generator(generator: AttentionGenerator | Runtime, info: GeneratorInfo, identities: int = DEFAULT_IDENTITIES,
                       seed: int = 0, *, random_pairs: int = DEFAULT_RANDOM_PAIRS,
                       path_frames: int = DEFAULT_PATH_FRAMES, chunk_size: int = 16, device="cpu",
                       regressor: AURegressor | None = None, model_name: str = "") -> dict:
    """Evaluate an in-memory generator on the benchmark of the module docstring; returns the report dict.

    Top-level keys: the pair metrics (PAIR_METRICS, means over all pairs), `per_expression` (the same per target
    preset and for the random pairs), `per_au` (mean AU error of model and copy baseline per AU), `smoothness`
    (model and ground truth), `au_regressor` (its validation accuracy and its error on this run's ground truth),
    `model` and `settings`. `regressor` defaults to the shipped AU regressor.
    """
    if random_pairs < 0:
        raise ValueError(f"random_pairs: expected a non-negative count, got {random_pairs}")
    started = time.time()
    regressor = load_au_regressor() if regressor is None else regressor
    family = get_family(info.family)
    size = info.image_size or family.default_image_size
    faces = eval_identities(identities, seed)
    rng = np.random.default_rng(EVAL_SEED_OFFSET + seed)

    rows, smoothness = [], []
    for index, identity in enumerate(faces):
        identity_rows, identity_smoothness = _evaluate_identity(
            index, identity, expression_pairs(rng, random_pairs), generator, info, size, regressor, path_frames,
            chunk_size, device)
        rows += identity_rows
        smoothness.append(identity_smoothness)

    model_errors = np.mean([row["au_error"] for row in rows], axis=0)
    copy_errors = np.mean([row["au_error_copy"] for row in rows], axis=0)
    groups = defaultdict(list)
    for row in rows:
        groups[row["name"]].append(row)
    return {
        **{key: _mean([row[key] for row in rows]) for key in PAIR_METRICS},
        "per_expression": {name: {**{key: _mean([row[key] for row in members]) for key in PAIR_METRICS},
                                  "pairs": len(members)} for name, members in groups.items()},
        "per_au": {name: {"model": round(float(model), 4), "copy": round(float(copy), 4)}
                   for name, model, copy in zip(AU_NAMES, model_errors, copy_errors)},
        "smoothness": {source: {key: _mean([entry[source][key] for entry in smoothness])
                                for key in SMOOTHNESS_METRICS} for source in ("model", "ground_truth")},
        "au_regressor": {
            "mae_on_eval_ground_truth": _mean([row["au_mae_truth"] for row in rows]),
            "mae_moving_on_eval_ground_truth": _mean([row["au_mae_moving_truth"] for row in rows]),
            "landmark_error_on_eval_ground_truth": _mean([row["landmark_error_truth"] for row in rows]),
            "validation": regressor.info.get("accuracy", {}),
        },
        "model": {"name": model_name or info.source or "in-memory generator", "family": info.family,
                  "variant": info.variant, "condition": family.condition, "image_size": size,
                  "hparams": dict(info.hparams)},
        "settings": {
            "identities": identities, "seed": seed, "identity_seed": EVAL_SEED_OFFSET + seed,
            "presets": list(PRESET_TARGETS), "random_pairs": random_pairs, "pairs": len(rows),
            "path_frames": path_frames, "moving_au_min": MOVING_AU_MIN, "mask_dilation": metrics.MASK_DILATION,
            "chunk_size": chunk_size, "device": str(device), "seconds": round(time.time() - started, 1),
        },
    }


def evaluate_model(model: str | Runtime, identities: int = DEFAULT_IDENTITIES, seed: int = 0, out: str | None = None,
                   *, trust_pickle: bool = False, runtime: str = "auto", precision: str = "fp32", **options) -> dict:
    """Evaluate a model (`evaluate_generator` options) and write the report as JSON to `out` (a path or s3:// URI)
    when given; returns the report, whose settings name the runtime.

    model: a Runtime already open (the eval job's, whose report pictures then come from the same engine; give
    `model_name`), or what `--model` takes (`demo`, a checkpoint or exported model, a path or s3://), opened here on
    `runtime` at `precision` (see `open_runtime`)."""
    if isinstance(model, Runtime):
        engine = model
    else:
        engine = open_runtime(model, runtime=runtime, device=options.get("device", "cpu"), precision=precision,
                              trust_pickle=trust_pickle, batch_size=options.get("chunk_size", 16))
        options.setdefault("model_name", model)
    report = evaluate_generator(engine, engine.info, identities, seed, **options)
    report["settings"]["runtime"] = engine.describe()
    if out:
        write_report(report, out)
    return report
