"""Representative generator inputs: synthetic faces (or a folder of face crops) with expression targets.

Post-training int8 quantisation calibrates activation ranges on these batches, the `auto` runtime probes candidate
engines on one, and the parity tests compare engines on them. Inputs are exactly what the renderer feeds a
generator: `family.face_to_input(face)` and `family.targets_to_cond(targets, size)`.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ganbatch.io.images import IMAGE_SUFFIXES
from ganbatch.models.checkpoint import GeneratorInfo
from ganbatch.families import ModelFamily, get_family
from ganbatch.synth import face_landmarks, render_face, sample_expression_aus, sample_identities

CALIBRATION_SEED = 20_000  # apart from the data-set (< 10000) and eval (10000 + seed) identities
# Synthetic calibration: 4 batches of 4 faces. 16 faces calibrate int8 as well as 32 did (the gate's figures on the
# full-size generator: 53.6 vs 53.8 dB widened demo, 42.7 vs 42.8 dB random, the same monotone steps), and NNCF
# runs the model over each of them: 32 cost a cold `auto` run 1.8 s more (docs/performance.md).
SYNTH_BATCHES = 4
SYNTH_BATCH_SIZE = 4


def model_size(info: GeneratorInfo) -> int:
    """The crop side the model takes: recorded in its config, else its family's default."""
    return info.image_size or get_family(info.family).default_image_size


def _targets(family: ModelFamily, identity, aus: np.ndarray, size: int) -> np.ndarray:
    """One frame's targets asking for AU vector aus on a synthetic identity, in the family's condition."""
    return family.eval_targets(aus[None], lambda frame: face_landmarks(identity, frame, size))


def synthetic_batches(info: GeneratorInfo, *, batches: int = SYNTH_BATCHES, batch_size: int = SYNTH_BATCH_SIZE,
                      seed: int = CALIBRATION_SEED, size: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`batches` (x, cond) pairs of batch_size synthetic faces, each animated towards another sampled expression
    (GANimation: its AUs; GANnotation: the identity's landmarks showing it); deterministic for a seed."""
    family = get_family(info.family)
    size = size or model_size(info)
    rng = np.random.default_rng(seed)
    identities = sample_identities(batches * batch_size, seed=seed)
    pairs = []
    for start in range(0, len(identities), batch_size):
        faces, conds = [], []
        for identity in identities[start:start + batch_size]:
            faces.append(render_face(identity, sample_expression_aus(rng), size)[0])
            conds.append(family.targets_to_cond(_targets(family, identity, sample_expression_aus(rng), size),
                                                size))
        pairs.append((family.face_to_input(np.stack(faces)), torch.cat(conds)))
    return pairs


def _read_crop(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        return np.asarray(ImageOps.fit(image, (size, size), Image.Resampling.BICUBIC))


def folder_batches(info: GeneratorInfo, folder, *, batch_size: int = 4, limit: int = 64,
                   seed: int = CALIBRATION_SEED) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(x, cond) batches from the face crops in folder (at most limit images, centre-cropped and resized to the
    model's size), with synthetic expression targets; ValueError when the folder holds no image."""
    family = get_family(info.family)
    size = model_size(info)
    paths = sorted(path for path in Path(folder).iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not paths:
        raise ValueError(f"calibration folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    rng = np.random.default_rng(seed)
    identities = sample_identities(len(paths), seed=seed)  # only their expressions' landmarks are used
    pairs = []
    for start in range(0, len(paths), batch_size):
        chunk = range(start, min(start + batch_size, len(paths)))
        faces = np.stack([_read_crop(paths[i], size) for i in chunk])
        cond = torch.cat([family.targets_to_cond(_targets(family, identities[i], sample_expression_aus(rng),
                                                          size), size) for i in chunk])
        pairs.append((family.face_to_input(faces), cond))
    return pairs


def calibration_batches(info: GeneratorInfo, calibration: str = "synth", **options) -> list[tuple[torch.Tensor,
                                                                                                   torch.Tensor]]:
    """Calibration inputs for int8 export: "synth" (synthetic faces, the default) or a local folder of face
    crops."""
    if calibration == "synth":
        return synthetic_batches(info, **options)
    return folder_batches(info, calibration, **options)


def iterate_numpy(batches) -> Iterator[dict[str, np.ndarray]]:
    """The batches as the exported graphs' named inputs {"x": ..., "cond": ...} (float32, contiguous)."""
    for x, cond in batches:
        yield {"x": np.ascontiguousarray(x.numpy(), np.float32), "cond": np.ascontiguousarray(cond.numpy(),
                                                                                              np.float32)}
