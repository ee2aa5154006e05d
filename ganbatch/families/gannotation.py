"""The GANnotation family (Sanchez & Valstar, ESanchezLozano/GANnotation): everything ganbatch knows about it.

Conventions: face uint8 -> RGB in [0, 1] (as the published demo feeds it); targets (T, 66, 2) landmark points in the
crop's pixel coordinates -> (T, 66, S, S) Gaussian heatmaps, concatenated to the image (and to the critic's input);
output -> pixels by 0.5 * (y + 1) (the demo's output mapping).

Objective, for input A with landmarks a, target landmarks b (frame B when paired), third landmarks c; the critic is
conditioned on the heatmaps:
  critic:    adv(D(A | a), D(G(A, b) | b)) [+ lambda_gp * GP on the joint (image, heatmaps) input]
  generator: adv(D(G(A, b) | b)) + lambda_pixel * (L1(G(A, b), B) on pairs, L1(G(A, a), A) on the others)
             + lambda_cycle * L1(G(G(A, b), a), A) + lambda_triple * L1(G(G(A, b), c), G(A, c))
             + lambda_mask * mean M + lambda_tv * TV(M), M the attention mask of G(A, b).
Published (`training/`): adversarial 1, target-frame L1 100, self-consistency 100, triple consistency 100, Adam betas
(0.5, 0.9), weight decay 5e-4, gradient norm clipped at 1; its `disiters` rule gives 1 critic step per generator
step with the hinge loss (the default, the paper's) and 4 with WGAN-GP. Its released trainer has no attention mask
(mask weight 0); the mask smoothness term takes GANimation's weight. Its perceptual (VGG-16) and identity losses
need pretrained weights that ganbatch neither ships nor downloads: they are left out (and have no weights to set)
rather than approximated.

Batches: an image whose identity has other images is paired with one of them, drawn uniformly: the target landmarks
and target frame are that image's. An image without a partner gets the landmarks of a uniformly drawn image and no
target frame (has_pair 0): its pixel term becomes self-reconstruction. The third landmark set (triple consistency)
is that of another uniformly drawn image. All images of a sample share the flip.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from ganbatch.families.base import Batch, LossTerms, ModelFamily, Networks, weighted_total

if TYPE_CHECKING:
    import torch


class GANnotation(ModelFamily):
    """GANnotation: 66 landmark heatmaps (see the module doc)."""

    name = "gannotation"
    condition = "landmarks"
    target_shape = (66, 2)  # targets.landmarks.NUM_GANNOTATION points (a test checks they agree)
    input_low = 0.0
    optimizer_defaults = {"beta2": 0.9, "weight_decay": 5e-4, "grad_clip": 1.0}
    target_words = "target landmarks (66 points)"
    loss_terms = ("adv", "gp", "pixel", "cycle", "triple", "mask", "tv")
    plan_notes = ("perceptual and identity losses: not available (no pretrained VGG-16/identity weights), left out",)

    @property
    def generator_cls(self):
        from ganbatch.models.gannotation import GANnotationGenerator

        return GANnotationGenerator

    @property
    def discriminator_cls(self):
        from ganbatch.models.gannotation import GANnotationDiscriminator

        return GANnotationDiscriminator

    @property
    def condition_layout(self) -> dict:
        from ganbatch.targets.landmarks import GANNOTATION_66_INDICES

        return {"landmarks": "gannotation66", "ibug_indices": GANNOTATION_66_INDICES.tolist()}

    @property
    def training_options(self):
        """The demo's options, but blending the rescaled input: the published blend of the raw [0, 1] input cannot
        copy a pixel into the [-1, 1] output (see TrunkOptions)."""
        return dataclasses.replace(self.generator_cls.default_options, blend_rescaled_input=True)

    def encode_targets(self, targets: np.ndarray, image_size: int) -> torch.Tensor:
        import torch

        from ganbatch.targets.landmarks import landmark_heatmaps

        return torch.from_numpy(landmark_heatmaps(np.asarray(targets, dtype=np.float32), size=image_size))

    def critic_losses(self, nets: Networks, batch: Batch, objective,
                      grad_scale: float = 1.0) -> tuple[torch.Tensor, LossTerms]:
        """(total, terms) of the critic step (terms unweighted: adv, and gp for wgan-gp)."""
        import torch

        from ganbatch.models import losses

        with torch.no_grad():
            fake = nets.generator(nets.as_input(batch.real), batch.heat_target)[0]
        real_scores, _ = nets.critic(batch.real, batch.heat_real)
        fake_scores, _ = nets.critic(fake, batch.heat_target)
        terms = {"adv": losses.critic_loss(objective.adversarial, real_scores, fake_scores)}
        weights = {"adv": objective.lambda_adv, "gp": objective.lambda_gp}
        if objective.adversarial == "wgan-gp":
            mixed = losses.interpolate(torch.cat([batch.real, batch.heat_real], 1),
                                       torch.cat([fake, batch.heat_target], 1), batch.alpha)
            terms["gp"] = losses.gradient_penalty(lambda x: nets.critic(x[:, :3], x[:, 3:])[0], mixed, grad_scale)
        return weighted_total(terms, weights), terms

    def generator_losses(self, nets: Networks, batch: Batch, objective) -> tuple[torch.Tensor,
                                                                                                        LossTerms]:
        """(total, terms) of the generator step (terms unweighted: adv, pixel, cycle, triple, mask, tv).

        The cycle and triple terms take one and two extra generator passes; with a weight of 0 they are not computed
        (and not reported)."""
        import torch.nn.functional as F

        from ganbatch.models import losses

        source = nets.as_input(batch.real)
        fake, _, attention = nets.generator(source, batch.heat_target)
        fake_scores, _ = nets.critic(fake, batch.heat_target)
        pixel = losses.weighted_l1(fake, batch.target, batch.has_pair)
        unpaired = 1 - batch.has_pair
        if bool(unpaired.any()):
            reconstruction = nets.generator(source, batch.heat_real)[0]
            pixel = pixel + losses.weighted_l1(reconstruction, batch.real, unpaired)
        terms = {
            "adv": losses.generator_adversarial_loss(objective.adversarial, fake_scores),
            "pixel": pixel,
            "mask": attention.float().mean(),
            "tv": losses.total_variation(attention),
        }
        fake_as_input = nets.as_input(fake)
        if objective.lambda_cycle:
            cycled = nets.generator(fake_as_input, batch.heat_real)[0]
            terms["cycle"] = F.l1_loss(cycled.float(), batch.real)
        if objective.lambda_triple:
            third_direct = nets.generator(source, batch.heat_third)[0]
            third_via_target = nets.generator(fake_as_input, batch.heat_third)[0]
            terms["triple"] = F.l1_loss(third_via_target.float(), third_direct.float())
        weights = {"adv": objective.lambda_adv, "pixel": objective.lambda_pixel, "cycle": objective.lambda_cycle,
                   "triple": objective.lambda_triple, "mask": objective.lambda_mask, "tv": objective.lambda_tv}
        return weighted_total(terms, weights), terms

    def sample_targets(self, maker, sample: dict, rng: np.random.Generator, index: int, flip: bool,
                       jitter_draws: np.ndarray, points: np.ndarray | None) -> dict:
        """The target and third landmarks (and the paired frame) of a sample (see the module doc)."""
        partners = maker.partners[index]
        has_pair = len(partners) > 0
        target_index = int(partners[rng.integers(len(partners))]) if has_pair else int(rng.integers(len(maker.data)))
        target_image, target_points = maker.view(target_index, flip, rng.uniform(-1, 1, 2))
        _, third_points = maker.view(int(rng.integers(len(maker.data))), flip, rng.uniform(-1, 1, 2))
        sample.update(points_real=points, points_target=target_points, points_third=third_points,
                      target=target_image if has_pair else sample["real"], has_pair=float(has_pair))
        return sample

    def collate(self, maker, images, vectors, heatmaps) -> Batch:
        return Batch(real=images("real"), alpha=vectors("alpha"), heat_real=heatmaps("points_real"),
                     heat_target=heatmaps("points_target"), heat_third=heatmaps("points_third"),
                     target=images("target"), has_pair=vectors("has_pair"))

    def preview_targets(self, maker, columns: int) -> np.ndarray:
        """Landmark sets (columns, 66, 2) of images spread over the data set."""
        return maker.preview_landmarks(columns)

    def eval_targets(self, aus_frames: np.ndarray, landmarks_of) -> np.ndarray:
        """The synthetic face's 66 landmarks for each AU vector."""
        from ganbatch.targets.landmarks import to_gannotation66

        return to_gannotation66(np.stack([landmarks_of(aus) for aus in aus_frames]))


FAMILY = GANnotation()  # what the registry finds (ganbatch.families)
