"""Measure the synthetic face renderer's speed on one core: prints faces/s per size.

    .venv/bin/python scripts/bench_synth.py [--sizes 64 128] [--faces 2000] [--identities 16]

Each identity is rendered once before timing (its background/hair layer is cached, as in `write_dataset`, which
renders all images of an identity in a row); the timed loop then renders `--faces` faces with expressions from the
data set sampler, cycling through the identities.
"""
import argparse
import time

import numpy as np

from ganbatch.synth import render_face, sample_expression_aus, sample_identities


def faces_per_second(size, faces, identities, seed=0):
    """(warm faces/s, first-render-per-identity faces/s) at `size` for `faces` renders."""
    rng = np.random.default_rng(seed)
    people = sample_identities(identities, seed=seed + size)
    expressions = [sample_expression_aus(rng) for _ in range(faces)]
    start = time.perf_counter()
    for person in people:
        render_face(person, expressions[0], size)
    first = len(people) / (time.perf_counter() - start)
    start = time.perf_counter()
    for index, aus in enumerate(expressions):
        render_face(people[index % len(people)], aus, size)
    return faces / (time.perf_counter() - start), first


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--faces", type=int, default=2000)
    parser.add_argument("--identities", type=int, default=16)
    args = parser.parse_args()
    for size in args.sizes:
        warm, first = faces_per_second(size, args.faces, args.identities)
        print(f"{size}x{size}: {warm:.0f} faces/s ({args.faces} faces, {args.identities} identities; "
              f"first render of an identity: {first:.0f} faces/s)")


if __name__ == "__main__":
    main()
