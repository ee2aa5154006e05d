"""Model family registry: per family, the networks and how faces, targets and outputs are converted.

The renderer, the trainer and the evaluator go through `get_family(name)` so that the per-family conventions
(input range, condition encoding, pixel mapping) live in one place:

- GANimation: face uint8 -> RGB in [-1, 1]; targets (T, 17) OpenFace AU intensities on the 0-5 scale -> / 5.
- GANnotation: face uint8 -> RGB in [0, 1] (as the published demo feeds it); targets (T, 66, 2) landmark points in
  the crop's pixel coordinates -> (T, 66, S, S) Gaussian heatmaps.
- Both: generator image (and colour map) -> pixels by 0.5 * (y + 1), clamped and rounded to uint8. For GANimation
  this inverts its input normalisation; for GANnotation it is the demo's output mapping.
"""
import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ganbatch.models.ganimation import GANimationDiscriminator, GANimationGenerator
from ganbatch.models.gannotation import GANnotationDiscriminator, GANnotationGenerator
from ganbatch.models.networks import AttentionGenerator, PatchCritic, TrunkOptions
from ganbatch.targets.aus import AU_NAMES, AU_SCALE, NUM_AUS
from ganbatch.targets.landmarks import GANNOTATION_66_INDICES, NUM_GANNOTATION, landmark_heatmaps


def _aus_to_cond(targets: np.ndarray, image_size: int) -> torch.Tensor:
    return torch.from_numpy(np.asarray(targets, dtype=np.float32) / AU_SCALE)


def _points_to_cond(targets: np.ndarray, image_size: int) -> torch.Tensor:
    return torch.from_numpy(landmark_heatmaps(np.asarray(targets, dtype=np.float32), size=image_size))


@dataclass(frozen=True)
class ModelFamily:
    """One model family: its networks, its condition and its input/output conventions.

    condition: "aus" or "landmarks"; condition_layout: what the condition channels are (AU names or landmark
    layout), recorded in saved checkpoints; target_shape: the shape of one frame's target; input_low: the value a black
    pixel maps to in the generator input (-1 or 0; white is always 1); default_image_size: the crop size the
    published models use, for checkpoints that do not record one; training_options: the generator options of the
    models ganbatch trains (None: the family's published defaults).
    """

    name: str
    generator_cls: type[AttentionGenerator]
    discriminator_cls: type[PatchCritic]
    condition: str
    target_shape: tuple[int, ...]
    input_low: float
    encode_targets: Callable[[np.ndarray, int], torch.Tensor]
    condition_layout: dict
    default_image_size: int = 128
    training_options: TrunkOptions | None = None

    def face_to_input(self, faces: np.ndarray) -> torch.Tensor:
        """uint8 faces (H,W,3) or (N,H,W,3) -> float32 generator input (N,3,H,W) in [input_low, 1]."""
        faces = np.asarray(faces)
        if faces.dtype != np.uint8 or faces.shape[-1] != 3 or faces.ndim not in (3, 4):
            raise ValueError(f"faces must be uint8 (H, W, 3) or (N, H, W, 3), got {faces.dtype} {faces.shape}")
        # torch.tensor copies: decoded images are often read-only arrays, which torch.from_numpy warns about
        x = torch.tensor(faces.reshape((-1,) + faces.shape[-3:])).permute(0, 3, 1, 2).float()
        return x * ((1 - self.input_low) / 255) + self.input_low

    def targets_to_cond(self, targets: np.ndarray, image_size: int) -> torch.Tensor:
        """Per-frame targets (T, *target_shape) -> the generator's cond for T frames of an image_size crop."""
        targets = np.asarray(targets)
        if targets.shape[1:] != self.target_shape:
            raise ValueError(f"{self.name} targets must have shape (T, {', '.join(map(str, self.target_shape))}), "
                             f"got {targets.shape}")
        return self.encode_targets(targets, image_size)

    @staticmethod
    def to_pixels(images: torch.Tensor) -> np.ndarray:
        """Generator images or colour maps (N,3,H,W) in [-1, 1] -> uint8 (N,H,W,3) via 0.5 * (y + 1)."""
        pixels = ((images.detach().float() + 1) * 127.5).clamp(0, 255).round()
        return pixels.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


FAMILIES = {
    "ganimation": ModelFamily(
        name="ganimation",
        generator_cls=GANimationGenerator,
        discriminator_cls=GANimationDiscriminator,
        condition="aus",
        target_shape=(NUM_AUS,),
        input_low=-1.0,
        encode_targets=_aus_to_cond,
        condition_layout={"au_names": list(AU_NAMES), "au_scale": AU_SCALE},
    ),
    "gannotation": ModelFamily(
        name="gannotation",
        generator_cls=GANnotationGenerator,
        discriminator_cls=GANnotationDiscriminator,
        condition="landmarks",
        target_shape=(NUM_GANNOTATION, 2),
        input_low=0.0,
        encode_targets=_points_to_cond,
        condition_layout={"landmarks": "gannotation66", "ibug_indices": GANNOTATION_66_INDICES.tolist()},
        # the published blend of the raw [0, 1] input cannot copy a pixel into the [-1, 1] output (see TrunkOptions)
        training_options=dataclasses.replace(GANnotationGenerator.default_options, blend_rescaled_input=True),
    ),
}


def get_family(name: str) -> ModelFamily:
    """The registered family called name; ValueError listing the known names otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None
