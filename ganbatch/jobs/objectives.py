"""The train job's objective, one schema per model family: loss weights, the adversarial game, the critic/generator
step ratio, and the published values that unset (null) fields take. The family modules (`ganbatch.families`) compute
the losses these weights weigh; they read an objective by its field names and import no pydantic.

Adding a family: its objective here (a subclass with a `family` Literal of its name); OBJECTIVES finds it.
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

from pydantic import Field, model_validator

from ganbatch.jobs.common import StrictModel

Adversarial = Literal["wgan-gp", "hinge", "lsgan"]


class ObjectiveSpec(StrictModel):
    """Loss weights and the adversarial game shared by every family; a family's subclass adds its own terms and
    names the published values (`published`) that its unset (null) fields take."""

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


class GANimationObjective(ObjectiveSpec):
    """GANimation's objective (see `ganbatch.families.ganimation`); published: wgan-gp, 5 critic steps, cycle 10, mask 0.1, no
    pixel term."""

    published: ClassVar[dict[str, Any]] = {"adversarial": "wgan-gp", "lambda_cycle": 10.0, "lambda_mask": 0.1,
                                           "lambda_pixel": 0.0}

    family: Literal["ganimation"] = Field("ganimation", exclude=True, description="set from the job's family")
    lambda_au: float = Field(160.0, ge=0, description="GANimation: AU regression MSE, real (critic) and fake "
                                                      "(generator); the original's 4000 / batch 25")
    au_noise: float = Field(0.1, ge=0, description="GANimation target AUs: another image's AUs / 5 + "
                                                   "U(-au_noise, au_noise)")
    lambda_colour: float = Field(0.0, ge=0, description="GANimation with paired targets (not in the paper): L1 "
                                                       "between the colour map and the partner image over the "
                                                       "pixels that the expression changes (they differ from the "
                                                       "input by more than 6 of 255 levels)")
    lambda_mask_changed: float = Field(0.0, ge=0, description="GANimation with paired targets (not in the "
                                                             "paper): attention mean over the pixels that the "
                                                             "expression changes, so that the colour map is used "
                                                             "there")
    paired_fraction: float = Field(0.5, ge=0, le=1, description="GANimation with lambda_pixel > 0: fraction of "
                                                                "the samples that take a same-identity partner's "
                                                                "AUs (no noise) as target and its image as the "
                                                                "pixel target; the rest keep random targets")

    @model_validator(mode="after")
    def _region_terms_need_pairs(self) -> GANimationObjective:
        region_terms = [name for name in ("lambda_colour", "lambda_mask_changed") if getattr(self, name) > 0]
        if region_terms and not (self.lambda_pixel and self.paired_fraction > 0):
            verb = "needs" if len(region_terms) == 1 else "need"
            raise ValueError(f"{' and '.join(region_terms)} {verb} paired targets: set lambda_pixel > 0 and "
                             "paired_fraction > 0")
        return self

    def published_critic_steps(self) -> int:
        return 5

    def resolved(self) -> GANimationObjective:
        """Published values in the unset fields; paired_fraction is 0 without a pixel term (no sample is paired)."""
        objective = super().resolved()
        if objective.lambda_pixel == 0:
            objective = objective.model_copy(update={"paired_fraction": 0.0})
        return objective

    def sampling(self) -> dict[str, Any]:
        return {"au_noise": self.au_noise, "paired_fraction": self.paired_fraction}

    def plan_suffix(self) -> str:
        return f" on a paired fraction {self.paired_fraction:g} of the samples" if self.paired_fraction > 0 else ""


class GANnotationObjective(ObjectiveSpec):
    """GANnotation's objective (see `ganbatch.families.gannotation`); published: hinge, 1 critic step (4 with wgan-gp), pixel 100,
    cycle 100, triple 100, no mask term."""

    published: ClassVar[dict[str, Any]] = {"adversarial": "hinge", "lambda_cycle": 100.0, "lambda_mask": 0.0,
                                           "lambda_pixel": 100.0}

    family: Literal["gannotation"] = Field("gannotation", exclude=True, description="set from the job's family")
    lambda_triple: float = Field(100.0, ge=0, description="GANnotation: triple consistency L1")

    def published_critic_steps(self) -> int:
        return 4 if self.adversarial == "wgan-gp" else 1


# family name -> its objective schema: every subclass above, by the `family` tag it carries
OBJECTIVES: dict[str, type[ObjectiveSpec]] = {
    objective.model_fields["family"].default: objective for objective in ObjectiveSpec.__subclasses__()
}
