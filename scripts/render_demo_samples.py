"""Render the bundled sample faces (`ganbatch/assets/samples/`): held-out identities of the demo model's data set.

    .venv/bin/python scripts/render_demo_samples.py out/demo_model/data ganbatch/assets/samples --count 6 --size 128

Takes the first COUNT identities (by name) listed in the data set's test_ids.csv, which the demo model never saw,
and renders each from identities.json with a neutral face (all AUs 0, what `ganbatch animate` assumes without
--source-aus) at SIZE pixels, as DEST/<identity>.png.
"""
import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from ganbatch.synth import read_identities, render_face
from ganbatch.targets.aus import NUM_AUS
from ganbatch.train.data import identity_of


def held_out_identities(data: Path) -> list[str]:
    """The identity names of the data set's test_ids.csv, sorted."""
    lines = (data / "test_ids.csv").read_text().splitlines()
    return sorted({identity_of(Path(line.strip()).stem) for line in lines if line.strip()})


def main() -> None:
    """Parse the arguments and write the sample faces."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the demo model's synthetic data set (jobs/demo_model.yaml)")
    parser.add_argument("dest", type=Path, help="folder for the PNG faces")
    parser.add_argument("--count", type=int, default=6, help="number of faces")
    parser.add_argument("--size", type=int, default=128, help="image size in pixels")
    args = parser.parse_args()
    identities = read_identities(args.data / "identities.json")
    names = held_out_identities(args.data)
    if len(names) < args.count:
        parser.error(f"{args.data / 'test_ids.csv'}: {len(names)} held-out identities, {args.count} asked for")
    args.dest.mkdir(parents=True, exist_ok=True)
    for name in names[:args.count]:
        image, _ = render_face(identities[name], np.zeros(NUM_AUS), args.size)
        Image.fromarray(image).save(args.dest / f"{name}.png", optimize=True)
        print(args.dest / f"{name}.png")


if __name__ == "__main__":
    main()
