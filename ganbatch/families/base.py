"""What a model family is: the contract every family module (`ganimation`, `gannotation`) fills in.

A family owns its networks, its conventions (input range, condition encoding, pixel mapping, the condition layout
recorded in checkpoints), its objective (the schema's fields and their published defaults, the loss terms of the
critic and generator steps), what a training batch holds for it and how a sample's targets are drawn, and how sample
grids and the evaluation condition it. The renderer, the trainer, the job schema and the evaluator ask the family
(`get_family(name)`) instead of testing its name.

The job schema (and with it the CLI's --help, which must not load torch or scipy) imports the families for their
objectives, so a family module imports only numpy and pydantic when loaded: torch, the networks and
`ganbatch.targets` are imported where they are used. Nothing here uses Ray or storage.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import torch

    from ganbatch.models.networks import AttentionGenerator, PatchCritic, TrunkOptions

Adversarial = Literal["wgan-gp", "hinge", "lsgan"]
LossTerms = dict[str, "torch.Tensor"]


class ObjectiveSpec(BaseModel):
    """Loss weights and the adversarial game shared by every family; a family's subclass adds its own terms and
    names the published values (`published`) that its unset (null) fields take."""

    # the strictness of jobs.common.StrictModel, spelt here: the jobs package imports this layer, not the reverse
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
    published: ClassVar[dict[str, Any]] = {}

    adversarial: Optional[Adversarial] = Field(
        None, description="adversarial loss; default: the family's published one (--dry-run shows it)")
    lambda_adv: float = Field(1.0, ge=0, description="adversarial term of the generator and the critic")
    lambda_gp: float = Field(10.0, ge=0, description="gradient penalty (wgan-gp only)")
    lambda_cycle: Optional[float] = Field(
        None, ge=0, description="cycle / self-consistency L1; default: the family's published weight (--dry-run "
                                "shows it)")
    lambda_mask: Optional[float] = Field(
        None, ge=0, description="attention mask mean; default: the family's published weight (--dry-run shows it)")
    lambda_tv: float = Field(2.5e-4, ge=0, description="attention mask smoothness (per-image total variation); "
                                                       "GANimation's 1e-5 x batch 25")
    lambda_pixel: Optional[float] = Field(
        None, ge=0, description="L1 to a same-identity image (GANnotation: the target frame, or the input without "
                                "a pair; GANimation: the partner of the paired samples); default: the family's "
                                "published weight (--dry-run shows it)")
    critic_steps: Optional[int] = Field(
        None, ge=1, description="critic steps per generator step, each on a fresh batch; default: the family's "
                                "published rule (--dry-run shows it)")

    def published_critic_steps(self) -> int:
        """The critic steps per generator step when critic_steps is unset (adversarial already resolved)."""
        raise NotImplementedError

    def sampling(self) -> dict[str, Any]:
        """The `train.batches.BatchMaker` options this objective sets (how targets are drawn)."""
        return {}

    def plan_suffix(self) -> str:
        """Words a training plan appends to the list of loss weights (empty by default)."""
        return ""

    def resolved(self) -> ObjectiveSpec:
        """The objective with the family's published values in the unset fields, critic_steps included."""
        objective = self.model_copy(update={key: value for key, value in self.published.items()
                                            if getattr(self, key) is None})
        if objective.critic_steps is None:
            objective = objective.model_copy(update={"critic_steps": objective.published_critic_steps()})
        return objective


@dataclass
class Batch:
    """A worker's shard of one global batch; fields not used by the family are None.

    real (B, 3, S, S) in [-1, 1]; alpha (B,) gradient-penalty mixing weights. GANimation: cond_real, cond_target
    (B, 17) AUs / 5, and with paired targets also target and has_pair. GANnotation: heat_real, heat_target,
    heat_third (B, 66, S, S) landmark heatmaps. Both: target (B, 3, S, S) the paired frame (the input itself where
    has_pair is 0); has_pair (B,) 0/1.
    """

    real: torch.Tensor
    alpha: torch.Tensor
    cond_real: torch.Tensor | None = None
    cond_target: torch.Tensor | None = None
    heat_real: torch.Tensor | None = None
    heat_target: torch.Tensor | None = None
    heat_third: torch.Tensor | None = None
    target: torch.Tensor | None = None
    has_pair: torch.Tensor | None = None

    def to(self, device) -> Batch:
        """The batch with every tensor moved to device."""
        return Batch(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                        for f in fields(self)})

    def __len__(self) -> int:
        return len(self.real)


@dataclass
class Networks:
    """The pair being trained and the family conventions they follow."""

    family: ModelFamily
    generator: AttentionGenerator
    critic: PatchCritic

    def as_input(self, images: torch.Tensor) -> torch.Tensor:
        """Images in the output space [-1, 1] -> generator input."""
        return self.family.to_generator_input(images)


def weighted_total(terms: LossTerms, weights: dict[str, float]) -> torch.Tensor:
    """The sum of each loss term times its weight."""
    return sum(weights[name] * value for name, value in terms.items())


class ModelFamily:
    """One model family (see the module doc); each family module defines a subclass and one instance of it.

    name: the `family:` of jobs and checkpoints; condition: "aus" or "landmarks" (what targets and training labels
    are); condition_layout: what the condition channels are, recorded in saved checkpoints; target_shape: the shape
    of one frame's target; input_low: the value a black pixel maps to in the generator input (white is always 1);
    default_image_size: the crop size the published models use, for checkpoints that do not record one;
    training_options: the generator options of the models ganbatch trains (None: the published defaults);
    generator_cls, discriminator_cls: the networks (properties in the family modules, which import them lazily);
    objective: the family's objective schema; optimizer_defaults: published Adam settings for the unset optimizer
    fields; loss_terms: the weighted terms of its objective, in the order a plan lists them; plan_notes: lines a
    training plan adds for this family.
    """

    name: ClassVar[str]
    condition: ClassVar[str]
    target_shape: ClassVar[tuple[int, ...]]
    input_low: ClassVar[float]
    default_image_size: ClassVar[int] = 128
    objective: ClassVar[type[ObjectiveSpec]]
    optimizer_defaults: ClassVar[dict[str, float]]
    loss_terms: ClassVar[tuple[str, ...]]
    plan_notes: ClassVar[tuple[str, ...]] = ()

    @property
    def generator_cls(self) -> type[AttentionGenerator]:
        raise NotImplementedError

    @property
    def discriminator_cls(self) -> type[PatchCritic]:
        raise NotImplementedError

    @property
    def condition_layout(self) -> dict:
        raise NotImplementedError

    @property
    def training_options(self) -> TrunkOptions | None:
        return None

    # conventions of the generator's input and output

    def face_to_input(self, faces: np.ndarray) -> torch.Tensor:
        """uint8 faces (H,W,3) or (N,H,W,3) -> float32 generator input (N,3,H,W) in [input_low, 1]."""
        import torch

        faces = np.asarray(faces)
        if faces.dtype != np.uint8 or faces.shape[-1] != 3 or faces.ndim not in (3, 4):
            raise ValueError(f"faces must be uint8 (H, W, 3) or (N, H, W, 3), got {faces.dtype} {faces.shape}")
        # torch.tensor copies: decoded images are often read-only arrays, which torch.from_numpy warns about
        x = torch.tensor(faces.reshape((-1,) + faces.shape[-3:])).permute(0, 3, 1, 2).float()
        return x * ((1 - self.input_low) / 255) + self.input_low

    def to_generator_input(self, images: torch.Tensor) -> torch.Tensor:
        """Images in the output space [-1, 1] -> the generator input range [input_low, 1]."""
        return (images + 1) * (0.5 * (1 - self.input_low)) + self.input_low

    def encode_targets(self, targets: np.ndarray, image_size: int) -> torch.Tensor:
        """Checked per-frame targets (T, *target_shape) -> the generator's cond."""
        raise NotImplementedError

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
        import torch

        pixels = ((images.detach().float() + 1) * 127.5).clamp(0, 255).round()
        return pixels.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    # objective and training steps

    def critic_losses(self, nets: Networks, batch: Batch, objective: ObjectiveSpec,
                      grad_scale: float = 1.0) -> tuple[torch.Tensor, LossTerms]:
        """(total, unweighted terms) of one critic step."""
        raise NotImplementedError

    def generator_losses(self, nets: Networks, batch: Batch, objective: ObjectiveSpec) -> tuple[torch.Tensor,
                                                                                                 LossTerms]:
        """(total, unweighted terms) of one generator step."""
        raise NotImplementedError

    # training batches (`train.batches.BatchMaker` draws the shared part of a sample, the family the rest)

    def sample_targets(self, maker, sample: dict, rng: np.random.Generator, index: int, flip: bool,
                       jitter_draws: np.ndarray, points: np.ndarray | None) -> dict:
        """`sample` ("real", "alpha") with the family's targets of image `index` drawn from rng."""
        raise NotImplementedError

    def collate(self, maker, images: Callable[[str], torch.Tensor], vectors: Callable[[str], torch.Tensor],
                heatmaps: Callable[[str], torch.Tensor]) -> Batch:
        """The Batch of the samples, given column makers for images, numbers and landmark heatmaps."""
        raise NotImplementedError

    # sample grids and evaluation

    def preview_targets(self, maker, columns: int) -> np.ndarray:
        """The per-column targets of a training run's sample grids."""
        raise NotImplementedError

    def column_labels(self, columns: int) -> list[str]:
        """The header of a sample grid with `columns` targets: `input`, then `target N`."""
        return ["input", *(f"target {index + 1}" for index in range(columns))]

    def eval_targets(self, aus_frames: np.ndarray, landmarks_of: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """The generator targets asking for AU vectors aus_frames (T, 17) on a synthetic identity, whose iBUG-68
        landmarks for an AU vector `landmarks_of` gives."""
        raise NotImplementedError
