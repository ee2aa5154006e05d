"""Measure the AU estimator: held-out synthetic photos and driving videos through dlib, real faces, speed.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python scripts/eval_au_estimator.py [--estimator FILE] [--json OUT.json]

- photos: `--identities` held-out identities (HELD_OUT_SEED) x 10 faces (pose, size and quality varied): per-AU MAE
  next to the mean predictor's (the fit faces' mean AUs, stored in the estimator's config);
- driving videos: `--videos` held-out identities (HELD_OUT_SEED + 1) along a smooth AU path of `--frames` frames,
  read as a video is read (held frames, smoothed over time at 25 fps): per-AU correlation over time with the true
  path, and per face part how dlib's points follow the renderer's own through those videos (what the AUs are read
  from);
- real faces: the OpenFace-labelled faces of ../shared/fixtures/ganimation_sample_dataset when present;
- expression transfer: `--transfers` driving videos of held-out identity A along a smooth AU path, each driving
  held-out identity B with the demo GANimation model as `animate --driving-video` does (A's estimated AUs relative to
  its first frame, over B's own, neutral): per-AU correlation of the frames' AUs (eval's image regressor) with the
  path, next to the same for the frames the model makes from the true path; PSNR against B's true render along the
  path next to copying B's photo and to the model given the true path (the ceiling the estimator's errors are
  measured against);
- speed: landmarks -> AUs on one thread (one face per call, and batches of 1000), and dlib detection of a 128 px
  face, for comparison. The machine may be shared: the timings are rough.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ganbatch.eval.au_estimator import (
    HELD_OUT_SEED, VIDEO_FPS, detect_landmarks, detected_faces, driving_paths, format_tables, landmark_following,
    path_table, photo_table, video_read_outs)
from ganbatch.faces import get_detector
from ganbatch.faces.au_estimator import load_au_estimator
from ganbatch.io.images import decode_image
from ganbatch.synth import render_face, sample_identities
from ganbatch.targets.aus import AU_NAMES, read_aus_pkl

SHARED_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "ganimation_sample_dataset"


def real_faces(estimator, detector, mean_aus):
    """Per-face and per-AU errors against OpenFace on the shared sample data set, or None when it is absent."""
    if not SHARED_SAMPLE.is_dir():
        return None
    labels = read_aus_pkl((SHARED_SAMPLE / "aus_openface.pkl").read_bytes())
    predicted, truth, names = [], [], []
    for name, aus in sorted(labels.items()):
        image = decode_image((SHARED_SAMPLE / "imgs" / f"{name}.jpg").read_bytes(), name)
        estimate = estimator.estimate_image(image, detector)
        if estimate.success:
            predicted.append(estimate.aus)
            truth.append(aus)
            names.append(name)
    table = photo_table(np.array(predicted), np.array(truth, np.float32), mean_aus)
    return {**table, "names": names, "zero_predictor_mean_mae": float(np.abs(np.array(truth)).mean())}


def transfer(estimator, detector, videos: int, frames: int) -> dict:
    """The expression-transfer measurement of the module doc."""
    from ganbatch.render import PreparedClip, render_clips
    from ganbatch.eval import predict_aus
    from ganbatch.eval.au_estimator import au_path
    from ganbatch.eval.metrics import psnr
    from ganbatch.runtimes import open_runtime

    runtime = open_runtime("demo", runtime="torch")
    size = runtime.info.image_size
    rng = np.random.default_rng(2)
    people = sample_identities(2 * videos, HELD_OUT_SEED + 2)
    paths, read, read_true_path, model_psnr, copy_psnr, true_path_psnr = [], [], [], [], [], []
    for driver, source in zip(people[::2], people[1::2]):
        path = au_path(rng, frames)
        points = [detect_landmarks(render_face(driver, aus, 128)[0], detector) for aus in path]
        driving = estimator.read_video([face if np.isfinite(face).all() else None for face in points], VIDEO_FPS,
                                       clip=False).aus  # as animate reads a driving video
        targets = np.clip(driving - driving[:1], 0, 5)  # B's own AUs are 0 (neutral)
        face, _ = render_face(source, np.zeros(17), size)
        clip, oracle = render_clips(runtime, [PreparedClip(face, targets), PreparedClip(face, path)], batch_size=16)
        truth = [render_face(source, aus, size)[0] for aus in path]
        model_psnr += [psnr(true, made) for true, made in zip(truth, clip.frames)]
        true_path_psnr += [psnr(true, made) for true, made in zip(truth, oracle.frames)]
        copy_psnr += [psnr(true, face) for true in truth]
        paths.append(path)
        read.append(predict_aus(clip.frames))
        read_true_path.append(predict_aus(oracle.frames))
    videos_of_frames = np.repeat(np.arange(videos), frames)
    table = path_table(np.concatenate(read), np.concatenate(paths), videos_of_frames)
    ceiling = path_table(np.concatenate(read_true_path), np.concatenate(paths), videos_of_frames)
    return {**table, "true_path_correlation": ceiling["correlation"], "psnr": float(np.mean(model_psnr)),
            "copy_psnr": float(np.mean(copy_psnr)), "true_path_psnr": float(np.mean(true_path_psnr))}


def speed(estimator, points):
    """Faces per second of landmarks -> AUs (one face per call; batches of 1000) and seconds per dlib detection."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    for face in points[:500]:
        estimator.predict(face)
    single = 500 / (time.perf_counter() - started)
    batch = np.concatenate([points] * (1000 // len(points) + 1))[:1000]
    started = time.perf_counter()
    for _ in range(5):
        estimator.predict(batch)
    batched = 5000 / (time.perf_counter() - started)
    detector = get_detector("dlib")
    image, _ = render_face(sample_identities(1, HELD_OUT_SEED)[0], np.zeros(17), 128)
    detect_landmarks(image, detector)
    started = time.perf_counter()
    for _ in range(20):
        detect_landmarks(image, detector)
    return {"faces_per_second_single": single, "faces_per_second_batched": batched,
            "dlib_seconds_per_128px_image": (time.perf_counter() - started) / 20}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--estimator", type=Path, default=None)
    parser.add_argument("--identities", type=int, default=60)
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--transfers", type=int, default=12)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    estimator = load_au_estimator(args.estimator)
    mean_aus = np.array(estimator.config["mean_aus"], np.float32)
    detector = get_detector("dlib")
    photos = detected_faces(sample_identities(args.identities, HELD_OUT_SEED), 10, detector, seed=0)
    found = photos.found
    photo = photo_table(estimator.predict(photos.landmarks[found]), photos.aus[found], mean_aus)
    photo["detected"] = float(found.mean())
    videos = driving_paths(sample_identities(args.videos, HELD_OUT_SEED + 1), args.frames, detector, seed=1)
    seen = videos.found
    path = path_table(video_read_outs(estimator, videos)[seen], videos.aus[seen], videos.identity[seen])
    path["detected"] = float(seen.mean())
    print(f"held-out photos: {photo['faces']} faces of {args.identities} identities ({photo['detected']:.1%} "
          f"detected); driving videos: {args.videos} x {args.frames} frames ({path['detected']:.1%} detected)")
    print(format_tables(photo, path))
    following = landmark_following(videos)
    print("dlib's points against the renderer's over the driving videos (correlation, slope): " + ", ".join(
        f"{part} {value['correlation']:.2f}, {value['slope']:.2f}" for part, value in following.items()))
    real = real_faces(estimator, detector, mean_aus)
    if real is not None:
        print(f"\nreal faces ({len(real['names'])} OpenFace-labelled): MAE {real['mean_mae']:.3f}, mean predictor "
              f"{real['mean_predictor_mean_mae']:.3f}, all-zero predictor {real['zero_predictor_mean_mae']:.3f}")
        print("  per AU (estimator / mean predictor): " + ", ".join(
            f"{name} {mae:.2f}/{base:.2f}" for name, mae, base in
            zip(AU_NAMES, real["mae"], real["mean_predictor_mae"])))
    moved = transfer(estimator, detector, args.transfers, args.frames)
    print(f"\nexpression transfer (demo model, {args.transfers} pairs x {args.frames} frames): PSNR "
          f"{moved['psnr']:.2f} dB vs copy {moved['copy_psnr']:.2f} dB, true path {moved['true_path_psnr']:.2f} dB; "
          "AU correlation with the path "
          "(eval's regressor on the frames; in brackets, on the frames the model makes from the true path): " +
          ", ".join(f"{name} {value:.2f} ({ceiling:.2f})" for name, value, ceiling in
                    zip(AU_NAMES, moved["correlation"], moved["true_path_correlation"])))
    timing = speed(estimator, photos.landmarks[found])
    print(f"\nspeed (one thread, shared machine: rough): landmarks -> AUs {timing['faces_per_second_single']:.0f} "
          f"faces/s one at a time, {timing['faces_per_second_batched']:.0f} faces/s in batches of 1000; dlib "
          f"detection {1000 * timing['dlib_seconds_per_128px_image']:.1f} ms per 128 px image")
    if args.json:
        args.json.write_text(json.dumps({"photos": photo, "driving_videos": path, "landmark_following": following,
                                         "transfer": moved, "real_faces": real,
                                         "speed": timing, "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS")},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
