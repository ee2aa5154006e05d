"""The quality gate every reduced-precision candidate of `auto` must pass, measured against fp32 on a short
expression path of synthetic faces.

The path: GATE_FACES synthetic identities (a seed apart from data sets, eval and calibration), each eased from
neutral to an expression over GATE_FRAMES frames, as the renderer would feed the generator. Two figures per
candidate, against the fp32 reference's frames:
- image PSNR over the whole path (>= 40 dB for bf16/fp16, >= 35 dB for int8; fp32 engines must agree within
  FP32_MAX_ABS instead);
- temporal smoothness: the fraction of frame-to-frame steps that go the path's way (`monotone_steps`), which must
  not fall below the reference's own by more than MAX_SMOOTHNESS_DROP. Single-frame PSNR cannot see a video that
  jitters: quantisation noise of a few grey levels leaves PSNR high but turns the small steps of an eased path
  back and forth. The readouts are the mean colour of GRID x GRID patches of each frame (those that the reference
  moves by at least MIN_MOVEMENT over the path): the same "steps that go the intended way" figure as `ganbatch
  eval`'s monotone steps, read from image regions instead of the AU regressor, so that the gate needs no other
  model.

  A step counts as going back only when it goes back by more than half a grey level of the 8-bit video
  (HALF_GREY_LEVEL), what the output can show. Most steps of a short eased path are smaller than that (median
  0.3-0.5 grey levels in the patch means), and the signs of such steps are noise that the video rounds away:
  fp32 itself reverses 8-14% of them. Counted by sign alone, int8 failed on every model; counted at the video's
  resolution, the gate still refuses NNCF's default int8 (the bundled demo: 0.927 against fp32's 0.963; the
  full-size generator widened from it: 0.931 against 0.997) and passes ganbatch's int8 export (0.965 and 0.997),
  whose `ganbatch eval` monotone steps on the demo stay within 0.013 of fp32's (docs/performance.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ganbatch.families import get_family
from ganbatch.models.checkpoint import GeneratorInfo
from ganbatch.synth import face_landmarks, render_face, sample_identities
from ganbatch.targets import EASINGS, NUM_AUS, expression_aus

GATE_SEED = 30_000
GATE_FACES = 2
GATE_FRAMES = 8
GATE_EXPRESSIONS = ("happy", "surprise")
MIN_PSNR_DB = {"bf16": 40.0, "fp16": 40.0, "int8": 35.0}
FP32_MAX_ABS = 1e-3
MAX_SMOOTHNESS_DROP = 0.02
GRID = 8
MIN_MOVEMENT = 0.02  # in the generator's [-1, 1] range: one percent of the pixel range
HALF_GREY_LEVEL = 1 / 255  # in the generator's [-1, 1] range (a grey level of the 8-bit video is 2 / 255)
# Raised when the gate's verdicts change (2: steps back counted beyond half a grey level), so that decisions made
# by an earlier gate are made again.
GATE_VERSION = 2


def gate_inputs(info: GeneratorInfo, *, faces: int = GATE_FACES, frames: int = GATE_FRAMES,
                seed: int = GATE_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """The gate's path as one batch (x, cond) of faces x frames rows: each face from neutral to an expression."""
    family = get_family(info.family)
    size = info.image_size or family.default_image_size
    weights = EASINGS["ease-in-out"](np.linspace(0.0, 1.0, frames))[:, None]
    xs, conds = [], []
    for index, identity in enumerate(sample_identities(faces, seed=seed)):
        neutral = np.zeros(NUM_AUS, np.float32)
        path = (weights * expression_aus(GATE_EXPRESSIONS[index % len(GATE_EXPRESSIONS)])[None]).astype(np.float32)
        targets = family.eval_targets(path, lambda aus, identity=identity: face_landmarks(identity, aus, size))
        face = render_face(identity, neutral, size)[0]
        xs.append(family.face_to_input(face).expand(frames, -1, -1, -1))
        conds.append(family.targets_to_cond(targets, size))
    return torch.cat(xs), torch.cat(conds)


def psnr_db(image: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR of generator images in [-1, 1] (peak-to-peak 2) against reference."""
    mse = float(((image.float() - reference.float()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


def _readouts(images: torch.Tensor, faces: int) -> np.ndarray:
    """(faces, frames, GRID*GRID*3) mean colours of each frame's patches."""
    pooled = torch.nn.functional.adaptive_avg_pool2d(images.float(), GRID)
    return pooled.reshape(faces, len(images) // faces, -1).numpy()


def monotone_steps(images: torch.Tensor, reference: torch.Tensor, faces: int = GATE_FACES) -> float | None:
    """Fraction of the frame-to-frame steps of images' patch readouts that go the way the reference's path goes, or
    go back by at most HALF_GREY_LEVEL (over the patches the reference moves by >= MIN_MOVEMENT); None when no
    patch moves."""
    readouts, truth = _readouts(images, faces), _readouts(reference, faces)
    movement = truth[:, -1] - truth[:, 0]
    moving = np.abs(movement) >= MIN_MOVEMENT
    if not moving.any():
        return None
    steps = np.diff(readouts, axis=1) * np.sign(movement)[:, None, :]
    return float(np.mean(steps[np.broadcast_to(moving[:, None, :], steps.shape)] >= -HALF_GREY_LEVEL))


@dataclass
class GateFigures:
    """A candidate's agreement with the fp32 reference on the gate path: PSNR (dB), max absolute difference, and
    monotone steps of the candidate and of the reference itself."""

    psnr_db: float
    max_abs: float
    smoothness: float | None
    reference_smoothness: float | None

    def failures(self, precision: str) -> list[str]:
        """Why a candidate of this precision fails the gate (empty when it passes)."""
        if precision == "fp32":
            return [] if self.max_abs <= FP32_MAX_ABS else [f"max |diff| {self.max_abs:.2g} > {FP32_MAX_ABS:g}"]
        problems = []
        if self.psnr_db < MIN_PSNR_DB[precision]:
            problems.append(f"PSNR {self.psnr_db:.1f} dB < {MIN_PSNR_DB[precision]:g}")
        if self.smoothness is not None and self.reference_smoothness is not None \
                and self.smoothness < self.reference_smoothness - MAX_SMOOTHNESS_DROP:
            problems.append(f"monotone steps {self.smoothness:.3f} < fp32's {self.reference_smoothness:.3f} - "
                            f"{MAX_SMOOTHNESS_DROP:g}")
        return problems

    def describe(self) -> str:
        """e.g. `41.2 dB, steps 0.97 (fp32 0.98)`."""
        psnr = "identical" if math.isinf(self.psnr_db) else f"{self.psnr_db:.1f} dB"
        if self.smoothness is None or self.reference_smoothness is None:
            return psnr
        return f"{psnr}, steps {self.smoothness:.3f} (fp32 {self.reference_smoothness:.3f})"

    def to_dict(self) -> dict:
        """JSON-ready figures (infinite PSNR as None)."""
        return {"psnr_db": None if math.isinf(self.psnr_db) else round(self.psnr_db, 3),
                "max_abs": round(self.max_abs, 6), "smoothness": self.smoothness,
                "reference_smoothness": self.reference_smoothness}


def gate_figures(images: torch.Tensor, reference: torch.Tensor, faces: int = GATE_FACES) -> GateFigures:
    """The gate's figures of a candidate's path images against the fp32 reference's."""
    return GateFigures(psnr_db(images, reference), float((images - reference).abs().max()),
                       monotone_steps(images, reference, faces), monotone_steps(reference, reference, faces))
