"""One critic step and one generator step of each family's objective, with the update mechanics they share.

GANimation (Pumarola et al.), for input I with AUs y and target AUs y':
  critic:    adv(D(I), D(G(I, y'))) + lambda_au * MSE(D_au(I), y) [+ lambda_gp * GP]
  generator: adv(D(G(I, y'))) + lambda_au * MSE(D_au(G(I, y')), y') + lambda_cycle * L1(G(G(I, y'), y), I)
             + lambda_mask * (mean A1 + mean A2) + lambda_tv * (TV(A1) + TV(A2)), A1/A2 the attention masks of the
             two generator passes; with paired targets (not in the paper) also + lambda_pixel * L1(G(I, y'), I')
             over the paired samples, I' the same-identity image whose AUs are y' (a batch mean in which the unpaired
             samples count as 0).
GANnotation (Sanchez & Valstar), for input A with landmarks a, target landmarks b (frame B when paired), third
landmarks c; the critic is conditioned on the heatmaps:
  critic:    adv(D(A | a), D(G(A, b) | b)) [+ lambda_gp * GP on the joint (image, heatmaps) input]
  generator: adv(D(G(A, b) | b)) + lambda_pixel * (L1(G(A, b), B) on pairs, L1(G(A, a), A) on the others)
             + lambda_cycle * L1(G(G(A, b), a), A) + lambda_triple * L1(G(G(A, b), c), G(A, c))
             + lambda_mask * mean M + lambda_tv * TV(M), M the attention mask of G(A, b).
adv is `losses.critic_loss` / `losses.generator_adversarial_loss` of the chosen kind, weighted by lambda_adv.
GANnotation's perceptual (VGG-16 features) and identity losses need pretrained networks that ganbatch neither
ships nor downloads, so they are not part of this objective (and have no weights to set) rather than approximated.
A generated image is fed back to the generator through `to_generator_input` (the families' input ranges differ).

`Trainer.critic_step` / `Trainer.generator_step` run a family's losses under autocast (fp16 with a GradScaler,
bf16 without), back-propagate, average the gradients over the workers, clip them when asked and step Adam.
"""
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganbatch.jobs.train import ObjectiveSpec, OptimizerSpec
from ganbatch.models.families import ModelFamily
from ganbatch.models.networks import AttentionGenerator, PatchCritic
from ganbatch.train import losses
from ganbatch.train.batches import Batch, to_generator_input
from ganbatch.train.distributed import average_gradients

LossTerms = dict[str, torch.Tensor]
_AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Networks:
    """The pair being trained and the family conventions they follow."""

    family: ModelFamily
    generator: AttentionGenerator
    critic: PatchCritic

    def as_input(self, images: torch.Tensor) -> torch.Tensor:
        """Images in the output space [-1, 1] -> generator input."""
        return to_generator_input(self.family, images)


def _weighted_total(terms: LossTerms, weights: dict[str, float]) -> torch.Tensor:
    return sum(weights[name] * value for name, value in terms.items())


def ganimation_critic_losses(nets: Networks, batch: Batch, objective: ObjectiveSpec,
                             grad_scale: float = 1.0) -> tuple[torch.Tensor, LossTerms]:
    """(total, terms) of GANimation's critic step (terms unweighted: adv, au and gp for wgan-gp)."""
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
    return _weighted_total(terms, weights), terms


def ganimation_generator_losses(nets: Networks, batch: Batch, objective: ObjectiveSpec) -> tuple[torch.Tensor,
                                                                                                  LossTerms]:
    """(total, terms) of GANimation's generator step (terms unweighted: adv, au, cycle, mask, tv, and pixel when
    the batch has paired targets)."""
    fake, _, attention = nets.generator(nets.as_input(batch.real), batch.cond_target)
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
               "mask": objective.lambda_mask, "tv": objective.lambda_tv, "pixel": objective.lambda_pixel}
    if batch.has_pair is not None:
        terms["pixel"] = losses.weighted_l1(fake, batch.target, batch.has_pair)
    return _weighted_total(terms, weights), terms


def gannotation_critic_losses(nets: Networks, batch: Batch, objective: ObjectiveSpec,
                              grad_scale: float = 1.0) -> tuple[torch.Tensor, LossTerms]:
    """(total, terms) of GANnotation's critic step (terms unweighted: adv, and gp for wgan-gp)."""
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
    return _weighted_total(terms, weights), terms


def gannotation_generator_losses(nets: Networks, batch: Batch, objective: ObjectiveSpec) -> tuple[torch.Tensor,
                                                                                                   LossTerms]:
    """(total, terms) of GANnotation's generator step (terms unweighted: adv, pixel, cycle, triple, mask, tv).

    The cycle and triple terms take one and two extra generator passes; with a weight of 0 they are not computed
    (and not reported)."""
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
    return _weighted_total(terms, weights), terms


CriticLosses = Callable[[Networks, Batch, ObjectiveSpec, float], tuple[torch.Tensor, LossTerms]]
GeneratorLosses = Callable[[Networks, Batch, ObjectiveSpec], tuple[torch.Tensor, LossTerms]]
FAMILY_LOSSES: dict[str, tuple[CriticLosses, GeneratorLosses]] = {
    "ganimation": (ganimation_critic_losses, ganimation_generator_losses),
    "gannotation": (gannotation_critic_losses, gannotation_generator_losses),
}


def linear_decay(steps: int, decay_start: int) -> Callable[[int], float]:
    """Learning-rate factor at a step: 1 until decay_start, then linear to 0 at `steps`."""
    def factor(step: int) -> float:
        if step < decay_start or steps <= decay_start:
            return 1.0
        return max(0.0, (steps - step) / (steps - decay_start))
    return factor


def make_optimizer(module: nn.Module, lr: float, settings: OptimizerSpec) -> torch.optim.Adam:
    """Adam over module's parameters with the job's betas and weight decay (resolved settings)."""
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(settings.beta1, settings.beta2),
                            weight_decay=settings.weight_decay)


class Trainer:
    """Runs critic and generator updates of one family on one worker (see the module doc)."""

    def __init__(self, nets: Networks, objective: ObjectiveSpec, optimizer: OptimizerSpec,
                 critic_optimizer: torch.optim.Optimizer, generator_optimizer: torch.optim.Optimizer,
                 precision: str = "fp32", device: torch.device | str = "cpu"):
        self.nets = nets
        self.objective = objective
        self.grad_clip = optimizer.grad_clip
        self.critic_optimizer = critic_optimizer
        self.generator_optimizer = generator_optimizer
        self.device = torch.device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision fp16 needs a CUDA device; use fp32 or bf16 on CPU")
        self.precision = precision
        self.autocast_dtype = _AUTOCAST.get(precision)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")
        self.critic_losses, self.generator_losses = FAMILY_LOSSES[nets.family.name]

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _update(self, module: nn.Module, optimizer: torch.optim.Optimizer, total: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        average_gradients(module)
        if self.grad_clip:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip)
        self.scaler.step(optimizer)
        self.scaler.update()

    def critic_step(self, batch: Batch) -> LossTerms:
        """One critic update on batch; returns the detached loss terms and their weighted total."""
        grad_scale = self.scaler.get_scale() if self.scaler.is_enabled() else 1.0
        with self._autocast():
            total, terms = self.critic_losses(self.nets, batch, self.objective, grad_scale)
        self._update(self.nets.critic, self.critic_optimizer, total)
        return {"total": total.detach(), **{name: value.detach() for name, value in terms.items()}}

    def generator_step(self, batch: Batch) -> LossTerms:
        """One generator update on batch (the critic frozen); returns the detached loss terms and their total."""
        self.nets.critic.requires_grad_(False)
        try:
            with self._autocast():
                total, terms = self.generator_losses(self.nets, batch, self.objective)
            self._update(self.nets.generator, self.generator_optimizer, total)
        finally:
            self.nets.critic.requires_grad_(True)
        return {"total": total.detach(), **{name: value.detach() for name, value in terms.items()}}
