"""The GANimation family (Pumarola et al., albertpumarola/GANimation): everything ganbatch knows about it.

Conventions: face uint8 -> RGB in [-1, 1]; targets (T, 17) OpenFace AU intensities on the 0-5 scale -> / 5 (the
generator tiles the vector over the image); output -> pixels by 0.5 * (y + 1), which inverts the input mapping.

Objective, for input I with AUs y and target AUs y' (published values: `options/train_options.py`, trained with
`--batch_size 25`):
  critic:    adv(D(I), D(G(I, y'))) + lambda_au * MSE(D_au(I), y) [+ lambda_gp * GP]
  generator: adv(D(G(I, y'))) + lambda_au * MSE(D_au(G(I, y')), y') + lambda_cycle * L1(G(G(I, y'), y), I)
             + lambda_mask * (mean A1 + mean A2) + lambda_tv * (TV(A1) + TV(A2)), A1/A2 the attention masks of the
             two generator passes; with paired targets (not in the paper) also + lambda_pixel * L1(G(I, y'), I')
             over the paired samples, I' the same-identity image whose AUs are y' (a batch mean in which the unpaired
             samples count as 0). Two more paired terms, each a mean over the pixels R where I' differs from I
             (also off by default): + lambda_colour * L1(C, I') on R, C the colour map of the first pass (it trains
             the colour branch where the attention keeps the input, which otherwise gets no gradient there), and
             + lambda_mask_changed * mean A1 on R (the colour map is used where the expression changes).
WGAN-GP (lambda_D_gp 10), 5 critic steps per generator step, AU regression lambda_D_cond 4000 on an MSE that the
original divides once more by the batch size (4000 / 25 = 160 per mean squared error), cycle 10, attention mean 0.1,
attention smoothness 1e-5 on a sum over the whole batch (1e-5 x 25 = 2.5e-4 per image), Adam lr 1e-4, betas
(0.5, 0.999). Here every term is a mean over the batch, so the weights keep their meaning at any batch size and
worker count. An option beyond the paper, off by default (lambda_pixel 0): paired supervision for data sets that hold
several images per identity with the same pose (e.g. `ganbatch synth`): a `paired_fraction` of the samples take a
same-identity partner's exact AUs as target, and lambda_pixel weighs the L1 between the generated frame and that
partner image; the other samples keep the published random targets.

Batches: the target is the AUs of a uniformly drawn image / 5, plus U(-au_noise, au_noise) per AU (as the original).
With paired targets, after those draws a sample whose image has same-identity partners is paired with probability
paired_fraction: a partner drawn uniformly gives the target, its exact AUs / 5 without noise, and the target frame,
viewed with the sample's own flip and jitter so that the two images stay aligned. Other samples keep the random
target, with the input as target frame and has_pair 0.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ganbatch.families.base import Batch, LossTerms, ModelFamily, Networks, weighted_total

if TYPE_CHECKING:
    import torch

CHANGED_LEVEL = 6 / 127.5
"""The region of lambda_colour and lambda_mask_changed: the pixels where the paired target differs from the input
by more than 6 of 255 levels (images in [-1, 1]; a threshold, so that the region is the same for faint and strong
changes)."""
PREVIEW_EXPRESSIONS = ("happy", "sad", "surprise", "anger", "disgust", "blink")


class GANimation(ModelFamily):
    """GANimation: 17 AU intensities (see the module doc)."""

    name = "ganimation"
    condition = "aus"
    target_shape = (17,)  # targets.aus.NUM_AUS (a test checks they agree; see the base module on imports)
    input_low = -1.0
    optimizer_defaults = {"beta2": 0.999, "weight_decay": 0.0, "grad_clip": 0.0}
    target_words = "target AUs"
    loss_terms = ("adv", "gp", "au", "cycle", "mask", "tv", "pixel", "colour", "mask_changed")

    @property
    def generator_cls(self):
        from ganbatch.models.ganimation import GANimationGenerator

        return GANimationGenerator

    @property
    def discriminator_cls(self):
        from ganbatch.models.ganimation import GANimationDiscriminator

        return GANimationDiscriminator

    @property
    def condition_layout(self) -> dict:
        from ganbatch.targets.aus import AU_NAMES, AU_SCALE

        return {"au_names": list(AU_NAMES), "au_scale": AU_SCALE}

    def encode_targets(self, targets: np.ndarray, image_size: int) -> torch.Tensor:
        import torch

        from ganbatch.targets.aus import AU_SCALE

        return torch.from_numpy(np.asarray(targets, dtype=np.float32) / AU_SCALE)

    def critic_losses(self, nets: Networks, batch: Batch, objective,
                      grad_scale: float = 1.0) -> tuple[torch.Tensor, LossTerms]:
        """(total, terms) of the critic step (terms unweighted: adv, au and gp for wgan-gp)."""
        import torch
        import torch.nn.functional as F

        from ganbatch.models import losses

        with torch.no_grad():
            fake = nets.generator(nets.as_input(batch.real), batch.cond_target)[0]
        real_scores, real_aus = nets.critic(batch.real)
        fake_scores, _ = nets.critic(fake)
        terms = {"adv": losses.critic_loss(objective.adversarial, real_scores, fake_scores),
                 "au": F.mse_loss(real_aus.float(), batch.cond_real)}
        weights = {"adv": objective.lambda_adv, "au": objective.lambda_au, "gp": objective.lambda_gp}
        if objective.adversarial == "wgan-gp":
            mixed = losses.interpolate(batch.real, fake, batch.alpha)
            terms["gp"] = losses.gradient_penalty(lambda x: nets.critic(x)[0], mixed, grad_scale)
        return weighted_total(terms, weights), terms

    def generator_losses(self, nets: Networks, batch: Batch, objective) -> tuple[torch.Tensor,
                                                                                                       LossTerms]:
        """(total, terms) of the generator step (terms unweighted: adv, au, cycle, mask, tv, and pixel when the
        batch has paired targets, with colour and mask_changed where their weights are not 0)."""
        import torch.nn.functional as F

        from ganbatch.models import losses

        fake, colour, attention = nets.generator(nets.as_input(batch.real), batch.cond_target)
        fake_scores, fake_aus = nets.critic(fake)
        cycled, _, cycle_attention = nets.generator(nets.as_input(fake), batch.cond_real)
        terms = {
            "adv": losses.generator_adversarial_loss(objective.adversarial, fake_scores),
            "au": F.mse_loss(fake_aus.float(), batch.cond_target),
            "cycle": F.l1_loss(cycled.float(), batch.real),
            "mask": attention.float().mean() + cycle_attention.float().mean(),
            "tv": losses.total_variation(attention) + losses.total_variation(cycle_attention),
        }
        weights = {"adv": objective.lambda_adv, "au": objective.lambda_au, "cycle": objective.lambda_cycle,
                   "mask": objective.lambda_mask, "tv": objective.lambda_tv, "pixel": objective.lambda_pixel,
                   "colour": objective.lambda_colour, "mask_changed": objective.lambda_mask_changed}
        if batch.has_pair is not None:
            terms["pixel"] = losses.weighted_l1(fake, batch.target, batch.has_pair)
            if objective.lambda_colour > 0 or objective.lambda_mask_changed > 0:
                changed = losses.changed_pixels(batch.target, batch.real, CHANGED_LEVEL)
                if objective.lambda_colour > 0:
                    terms["colour"] = losses.region_mean((colour.float() - batch.target).abs(), changed,
                                                         batch.has_pair)
                if objective.lambda_mask_changed > 0:
                    terms["mask_changed"] = losses.region_mean(attention, changed, batch.has_pair)
        return weighted_total(terms, weights), terms

    def sample_targets(self, maker, sample: dict, rng: np.random.Generator, index: int, flip: bool,
                       jitter_draws: np.ndarray, points: np.ndarray | None) -> dict:
        """The AU targets (and the paired frame) of a sample (see the module doc)."""
        from ganbatch.targets.aus import AU_SCALE

        aus = maker.data.aus
        partners = maker.partners[index]
        other = int(rng.integers(len(maker.data)))
        noise = rng.uniform(-maker.au_noise, maker.au_noise, aus.shape[1])
        sample["cond_real"] = aus[index] / AU_SCALE
        sample["cond_target"] = aus[other] / AU_SCALE + noise
        if maker.paired_fraction > 0:
            paired = len(partners) > 0 and bool(rng.random() < maker.paired_fraction)
            sample.update(target=sample["real"], has_pair=float(paired))
            if paired:
                partner = int(partners[rng.integers(len(partners))])
                sample.update(cond_target=aus[partner] / AU_SCALE,
                              target=maker.view(partner, flip, jitter_draws)[0])
        return sample

    def collate(self, maker, images, vectors, heatmaps) -> Batch:
        paired = maker.paired_fraction > 0
        return Batch(real=images("real"), alpha=vectors("alpha"), cond_real=vectors("cond_real"),
                     cond_target=vectors("cond_target"), target=images("target") if paired else None,
                     has_pair=vectors("has_pair") if paired else None)

    def preview_targets(self, maker, columns: int) -> np.ndarray:
        """AU vectors (columns, 17) of PREVIEW_EXPRESSIONS at full intensity."""
        from ganbatch.targets.aus import expression_aus

        return np.stack([expression_aus(name) for name in PREVIEW_EXPRESSIONS[:columns]])

    def column_labels(self, columns: int) -> list[str]:
        """`input` then the preview expressions' names (when the grid shows them all)."""
        if columns == len(PREVIEW_EXPRESSIONS):
            return ["input", *PREVIEW_EXPRESSIONS]
        return super().column_labels(columns)

    def eval_targets(self, aus_frames: np.ndarray, landmarks_of) -> np.ndarray:
        """The AU vectors themselves."""
        return aus_frames


FAMILY = GANimation()  # what the registry finds (ganbatch.families)
