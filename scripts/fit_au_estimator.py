"""Fit the AU estimator (ganbatch/faces/au_estimator.py) on synthetic faces run through dlib, reproducibly.

    PYTHONPATH=. python scripts/fit_au_estimator.py [--out ganbatch/assets/au_estimator.pt] [--cache /tmp/au_fit.npz]

Faces: `--identities` identities of `sample_identities(n, FIT_SEED)` x `--per-identity` expressions, each under a new
pose, size and image quality (ganbatch.eval.au_estimator.detected_faces, seed 0), through dlib's detector and 68-point
predictor. With `--cache`, the detected landmarks are kept in (or read from) that .npz, so a re-fit skips rendering.
Fit (seeds fixed, torch on one thread; about 10-20 minutes for the defaults: 3-9 rendering and detecting, 3-6
fitting each read-out):

1. reference shape: generalised Procrustes (5 rounds) over the anchor points, made left-right symmetric;
2. training shapes: the detected landmarks and, for the same faces, the renderer's true landmarks with Gaussian noise
   (`--noise` x the face's size): dlib follows the synthetic mouth, jaw and lids but not the synthetic brows (its
   brow points sit on the eyelid crease drawn below them and move against them, docs/au_estimator.md), while it
   follows real brows; the true landmarks teach the estimator what brows mean. Features standardised; the set
   doubled with the mirrored faces;
3. the photo read-out: MLP 136 -> hidden -> hidden -> 17 (ReLU), AdamW on the L1 loss of AU / 5, full batches,
   cosine learning rate;
4. the video read-out: the same network and schedule, on the L1 loss with each AU's presence (a target above 0.1)
   weighed up by ((1 - p) / p) ** `--video-power`, p the share of faces showing that AU. Plain L1 settles on 0, the
   median, for an AU it cannot tell on one face, which is the least error for a photo's level but leaves a video's
   changes of that AU unread; the power (0.5) was chosen among 0.25, 0.35, 0.5 and 1 on 80 driving videos of the
   fit identities (`driving_paths(sample_identities(80, FIT_SEED), 48, dlib, seed=7)`), never on the held-out ones;
5. the confidence's principal components (PCA of the features) and its distance percentiles.

The asset's config also names the AUs the photo read-out does not read (`unread_aus`: its estimates of them on the
held-out faces span less than READ_MOVES, `read_aus`), which `ganbatch aus` reports.

The held-out accuracy (`--held-out` identities of HELD_OUT_SEED) is stored in the asset's config and printed.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ganbatch.eval.au_estimator import (
    FIT_SEED, HELD_OUT_SEED, DetectedFaces, detected_faces, format_tables, photo_table, read_aus)
from ganbatch.faces import get_detector
from ganbatch.faces.au_estimator import (
    ANCHOR_POINTS, READOUT_PREFIXES, SHIPPED_ESTIMATOR, AUEstimator, align_landmarks, mirror_landmarks,
    save_au_estimator, shape_features)
from ganbatch.synth import sample_identities
from ganbatch.targets.aus import AU_NAMES, AU_SCALE, NUM_AUS

PCA_COMPONENTS = 24


def faces(count: int, per_identity: int, seed: int, cache: Path | None, training: bool) -> DetectedFaces:
    """Detected synthetic faces, from the cache file when it holds the same request."""
    key = np.array([count, per_identity, seed, int(training)])
    if cache is not None and cache.is_file():
        stored = np.load(cache)
        if np.array_equal(stored["key"], key):
            return DetectedFaces(stored["landmarks"], stored["aus"], stored["identity"], stored["true_landmarks"])
    started = time.time()
    result = detected_faces(sample_identities(count, seed), per_identity, get_detector("dlib"), seed=0,
                            training=training,
                            progress=lambda done, total: print(f"\r  {done}/{total} identities", end="", flush=True))
    print(f"\r  {len(result.aus)} faces rendered and detected in {time.time() - started:.0f} s")
    if cache is not None:
        np.savez(cache, key=key, landmarks=result.landmarks, aus=result.aus, identity=result.identity,
                 true_landmarks=result.true_landmarks)
    return result


def reference_shape(points: np.ndarray) -> np.ndarray:
    """Generalised Procrustes mean of (N, 68, 2) landmarks, symmetric, its anchors centred with unit RMS radius."""
    def normalised(shape):
        shape = (shape + mirror_landmarks(shape[None])[0]) / 2
        anchors = shape[list(ANCHOR_POINTS)]
        shape = shape - anchors.mean(axis=0)
        return shape / np.sqrt((shape[list(ANCHOR_POINTS)] ** 2).sum(axis=1).mean())

    reference = normalised(points[0])
    for _ in range(5):
        reference = normalised(align_landmarks(points, reference).mean(axis=0))
    return reference


def with_true_landmarks(train: DetectedFaces, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(landmarks, AUs) to fit on: the detected faces, and the same faces' true landmarks with Gaussian noise
    (`noise` x the face's size, the RMS radius of its anchor points)."""
    rng = np.random.default_rng(seed)
    true = train.true_landmarks.astype(np.float64)
    anchors = true[:, list(ANCHOR_POINTS)]
    size = np.sqrt(((anchors - anchors.mean(axis=1, keepdims=True)) ** 2).sum(axis=2).mean(axis=1))
    jittered = true + rng.normal(0, 1, true.shape) * (noise * size)[:, None, None]
    found = train.found
    return np.concatenate([train.landmarks[found], jittered]), np.concatenate([train.aus[found], train.aus])


def fit_network(x: torch.Tensor, y: torch.Tensor, hidden: int, steps: int, seed: int, squared: bool,
                positive_power: float = 0.0) -> torch.nn.Sequential:
    """An MLP fitted on standardised features `x` to AU / AU_SCALE `y` (L2 if `squared`, else L1); with
    `positive_power` > 0, each AU's targets above 0.1 weigh ((1 - p) / p) ** positive_power, p their share."""
    torch.manual_seed(seed)
    positive = (y > 0.1 / AU_SCALE).float()
    share = positive.mean(dim=0).clamp(min=1e-3)
    weight = 1 + positive * (((1 - share) / share) ** positive_power - 1)
    network = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                                  torch.nn.ReLU(), torch.nn.Linear(hidden, NUM_AUS))
    optimizer = torch.optim.AdamW(network.parameters(), lr=3e-3, weight_decay=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for step in range(steps):
        error = network(x) - y
        loss = (weight * (error ** 2 if squared else error.abs())).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 500 == 0 or step == steps - 1:
            print(f"  step {step}: loss {loss.item():.4f}")
    return network


def fit(train: DetectedFaces, hidden: int, steps: int, seed: int, noise: float, squared: bool,
        video_power: float) -> AUEstimator:
    """An estimator fitted on the detected training faces and their jittered true landmarks (see the module doc)."""
    torch.set_num_threads(1)
    points, aus = with_true_landmarks(train, noise, seed)
    reference = reference_shape(train.landmarks[train.found])
    features = np.concatenate([shape_features(points, reference), shape_features(mirror_landmarks(points), reference)])
    targets = np.concatenate([aus, aus]) / AU_SCALE
    mean, std = features.mean(axis=0), features.std(axis=0) + 1e-6
    x = torch.from_numpy((features - mean) / std).float()
    y = torch.from_numpy(targets).float()

    centred = features[: len(points)] - mean
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    scale = singular[:PCA_COMPONENTS] / np.sqrt(len(centred))
    params = {"reference": reference, "feature_mean": mean, "feature_std": std,
              "pca_components": components[:PCA_COMPONENTS], "pca_scale": scale}
    for readout, network in (("photo", fit_network(x, y, hidden, steps, seed, squared)),
                             ("video", fit_network(x, y, hidden, steps, seed, False, video_power))):
        print(f"  {readout} read-out fitted")
        for index, layer in enumerate(module for module in network if isinstance(module, torch.nn.Linear)):
            params[f"{READOUT_PREFIXES[readout]}{index}.weight"] = layer.weight.detach().numpy()
            params[f"{READOUT_PREFIXES[readout]}{index}.bias"] = layer.bias.detach().numpy()
    params["distance_typical"] = np.array(1.0)
    params["distance_limit"] = np.array(2.0)
    estimator = AUEstimator(params)
    distance = estimator.shape_distance(points)
    estimator.params["distance_typical"] = np.array(np.percentile(distance, 90))
    estimator.params["distance_limit"] = np.array(2 * np.percentile(distance, 99))
    return estimator


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=SHIPPED_ESTIMATOR)
    parser.add_argument("--identities", type=int, default=450)
    parser.add_argument("--per-identity", type=int, default=10)
    parser.add_argument("--held-out", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loss", choices=("l1", "l2"), default="l1",
                        help="l2 is smoother (no dead zone near 0) but its MAE is 1.6x l1's")
    parser.add_argument("--noise", type=float, default=0.02, help="noise on the true landmarks, x the face's size")
    parser.add_argument("--video-power", type=float, default=0.5,
                        help="the video read-out's weight on an AU's presence: ((1 - share) / share) ** this")
    parser.add_argument("--cache", type=Path, default=None, help="an .npz keeping the detected training faces")
    args = parser.parse_args(argv)

    print(f"fit faces: {args.identities} identities x {args.per_identity}")
    train = faces(args.identities, args.per_identity, FIT_SEED, args.cache, training=True)
    print(f"held-out faces: {args.held_out} identities x 10")
    held_out_cache = None if args.cache is None else args.cache.with_name(args.cache.stem + "_held_out.npz")
    held_out = faces(args.held_out, 10, HELD_OUT_SEED, held_out_cache, training=False)
    print(f"detected: fit {train.found.mean():.1%}, held-out {held_out.found.mean():.1%}")

    estimator = fit(train, args.hidden, args.steps, args.seed, args.noise, args.loss == "l2", args.video_power)
    found = held_out.found
    predicted = estimator.predict(held_out.landmarks[found])
    table = photo_table(predicted, held_out.aus[found], train.aus[train.found].mean(axis=0))
    unread = [name for name, read in zip(AU_NAMES, read_aus(predicted)) if not read]
    truth = photo_table(estimator.predict(held_out.true_landmarks), held_out.aus, train.aus[train.found].mean(axis=0))
    print(f"on the true landmarks: mean MAE {truth['mean_mae']:.3f}")
    print(format_tables(table))
    video = photo_table(estimator.predict(held_out.landmarks[found], readout="video"), held_out.aus[found],
                        train.aus[train.found].mean(axis=0))
    print(f"the video read-out on the held-out photos: mean MAE {video['mean_mae']:.3f}")
    estimator.config = {
        "hidden": args.hidden, "steps": args.steps, "loss": args.loss, "seed": args.seed, "noise": args.noise,
        "detector": "dlib",
        "fit_faces": {"identities": args.identities, "per_identity": args.per_identity, "identity_seed": FIT_SEED,
                      "detected": int(train.found.sum())},
        "held_out": {"identities": args.held_out, "identity_seed": HELD_OUT_SEED, "mean_mae": table["mean_mae"],
                     "zero_predictor_mean_mae": table["zero_predictor_mean_mae"],
                     "true_landmarks_mean_mae": truth["mean_mae"],
                     "mean_predictor_mean_mae": table["mean_predictor_mean_mae"],
                     "mae": dict(zip(table["au_names"], np.round(table["mae"], 4).tolist()))},
        "mean_aus": train.aus[train.found].mean(axis=0).round(4).tolist(),
        "unread_aus": unread,
        "video_readout": {"positive_power": args.video_power, "held_out_mean_mae": video["mean_mae"]},
    }
    save_au_estimator(estimator, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
    print(json.dumps(estimator.config["held_out"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
