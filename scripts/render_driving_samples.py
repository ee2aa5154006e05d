"""Render the GANnotation demo's driving inputs (`ganbatch/assets/driving/`) from the synthetic world.

    .venv/bin/python scripts/render_driving_samples.py out/demo_gannotation/data ganbatch/assets/driving

A held-out identity of the demo data set (the first one after the bundled sample faces, so the driver is none of the
faces it drives) goes neutral -> happy -> surprise -> neutral, one second per change at 25 frames/s, eased in and
out. Writes:
- DEST/landmarks.txt: the path's 68 iBUG points per frame in the pixel frame of the demo model's 64 px crop, what
  `--landmarks` takes (absolute positions: the animated face takes the driver's geometry);
- DEST/driver.mp4: the same face rendered at 128 px, what `--driving-video` takes (its landmarks are found with the
  dlib backend, and their motion relative to the first frame moves each animated face's own landmarks).
"""
import argparse
from pathlib import Path

import numpy as np
from render_demo_samples import held_out_identities

from ganbatch.io.video import encode_video
from ganbatch.synth import face_landmarks, read_identities, render_face
from ganbatch.targets.aus import NUM_AUS, expression_aus
from ganbatch.targets.landmarks import write_landmarks
from ganbatch.targets.schedule import Keyframe, Schedule

FPS = 25
PATH = ("neutral", "happy", "surprise", "neutral")  # one second per change
SAMPLE_FACES = 6  # scripts/render_demo_samples.py's default count


def path_aus() -> np.ndarray:
    """The AU vectors (T, 17) of the path: one eased keyframe per second (a `ganbatch.targets` schedule)."""
    keyframes = [Keyframe(value=np.zeros(NUM_AUS) if name == "neutral" else expression_aus(name), at=float(second),
                          easing="ease-in-out") for second, name in enumerate(PATH)]
    return Schedule(keyframes=keyframes, fps=FPS).targets()


def main() -> None:
    """Parse the arguments and write the landmark file and the driving video."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the GANnotation demo model's data set (jobs/demo_gannotation.yaml)")
    parser.add_argument("dest", type=Path, help="folder for landmarks.txt and driver.mp4")
    parser.add_argument("--crop-size", type=int, default=64, help="the model's crop size (landmark coordinates)")
    parser.add_argument("--video-size", type=int, default=128, help="the driving video's size in pixels")
    args = parser.parse_args()
    names = held_out_identities(args.data)
    if len(names) <= SAMPLE_FACES:
        parser.error(f"{args.data / 'test_ids.csv'}: {len(names)} held-out identities, need {SAMPLE_FACES + 1}")
    identity = read_identities(args.data / "identities.json")[names[SAMPLE_FACES]]
    aus = path_aus()
    args.dest.mkdir(parents=True, exist_ok=True)
    write_landmarks(args.dest / "landmarks.txt", np.stack([face_landmarks(identity, a, args.crop_size) for a in aus]))
    video = np.stack([render_face(identity, a, args.video_size)[0] for a in aus])
    encode_video(video, args.dest / "driver.mp4", fps=FPS, format="mp4", crf=18)
    print(f"{args.dest / 'landmarks.txt'}, {args.dest / 'driver.mp4'}: {len(aus)} frames of {names[SAMPLE_FACES]}")


if __name__ == "__main__":
    main()
