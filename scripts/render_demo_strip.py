"""A picture strip of a model on held-out synthetic faces: per identity, the input, then for each target expression
the model's frame above the true rendering.

    .venv/bin/python scripts/render_demo_strip.py --model demo-gannotation --out docs/demo_gannotation_strip.png

Identities are the evaluation's (`ganbatch eval` seeds >= 10000, never in a training set); each starts neutral and
is asked for the targets (GANimation: their AUs; GANnotation: the landmarks of the same face showing them). Rows:
model output, then the truth, for each identity; the first column is the input (repeated in the truth row).
"""
import argparse

import numpy as np
from PIL import Image

from ganbatch.eval.benchmark import eval_identities
from ganbatch.models.locate import open_model
from ganbatch.render import render_clip
from ganbatch.synth import face_landmarks, render_face
from ganbatch.targets.aus import NUM_AUS, expression_aus
from ganbatch.targets.landmarks import to_gannotation66

DEFAULT_TARGETS = ("happy", "surprise", "anger", "disgust", "blink")


def strip(model: str, identities: int, targets: tuple[str, ...], scale: int) -> np.ndarray:
    """The strip as a uint8 (rows * S, columns * S, 3) image, upscaled `scale` times (nearest)."""
    generator, info = open_model(model)
    size = info.image_size or 128
    aus = np.stack([expression_aus(name).astype(np.float64) for name in targets])
    rows = []
    for identity in eval_identities(identities):
        face, _ = render_face(identity, np.zeros(NUM_AUS), size)
        conditions = aus if info.family == "ganimation" else to_gannotation66(
            np.stack([face_landmarks(identity, target, size) for target in aus]))
        frames = render_clip(generator, info, face, conditions).frames
        truths = [render_face(identity, target, size)[0] for target in aus]
        rows.append(np.concatenate([face, *frames], axis=1))
        rows.append(np.concatenate([face, *truths], axis=1))
    image = np.concatenate(rows, axis=0)
    return image.repeat(scale, axis=0).repeat(scale, axis=1)


def main() -> None:
    """Parse the arguments and write the strip."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo", help="a model --model takes (demo, demo-gannotation, a path)")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--identities", type=int, default=3)
    parser.add_argument("--targets", nargs="+", default=list(DEFAULT_TARGETS))
    parser.add_argument("--scale", type=int, default=2, help="nearest-neighbour upscaling of the strip")
    args = parser.parse_args()
    Image.fromarray(strip(args.model, args.identities, tuple(args.targets), args.scale)).save(args.out)


if __name__ == "__main__":
    main()
