"""Loss terms of both objectives, as pure functions of tensors (no networks, no optimisers).

Every term is a mean over the batch, so that the gradient of a batch split evenly over workers, averaged across
them, equals the gradient of the whole batch on one worker. Weights are applied by the caller (`steps`).
Adversarial losses take critic scores of any shape (a patch critic's (B, 1, h, w) map) and average them.
Every term is computed in float32 from inputs of any precision (bf16 under autocast), so sums and means over
thousands of values keep their accuracy.
"""
from collections.abc import Callable

import torch
import torch.nn.functional as F

ADVERSARIAL_LOSSES = ("wgan-gp", "hinge", "lsgan")


def _check_kind(kind: str) -> None:
    if kind not in ADVERSARIAL_LOSSES:
        raise ValueError(f"unknown adversarial loss {kind!r}; known: {', '.join(ADVERSARIAL_LOSSES)}")


def critic_loss(kind: str, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The critic's adversarial loss on real and fake scores.

    wgan-gp: E[D(fake)] - E[D(real)] (Gulrajani et al.; the penalty is `gradient_penalty`);
    hinge: E[max(0, 1 - D(real))] + E[max(0, 1 + D(fake))] (Lim & Ye; as in GANnotation's trainer);
    lsgan: (E[(D(real) - 1)^2] + E[D(fake)^2]) / 2 (Mao et al., labels 0 and 1).
    """
    _check_kind(kind)
    real_scores, fake_scores = real_scores.float(), fake_scores.float()
    if kind == "wgan-gp":
        return fake_scores.mean() - real_scores.mean()
    if kind == "hinge":
        return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
    return 0.5 * ((real_scores - 1).pow(2).mean() + fake_scores.pow(2).mean())


def generator_adversarial_loss(kind: str, fake_scores: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial loss: -E[D(fake)] for wgan-gp and hinge, E[(D(fake) - 1)^2] / 2 for lsgan."""
    _check_kind(kind)
    fake_scores = fake_scores.float()
    if kind == "lsgan":
        return 0.5 * (fake_scores - 1).pow(2).mean()
    return -fake_scores.mean()


def interpolate(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """alpha * real + (1 - alpha) * fake per sample (alpha (B,) in [0, 1]), detached, requiring gradients."""
    alpha = alpha.to(real.dtype).view(-1, *([1] * (real.dim() - 1)))
    return (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor,
                     grad_scale: float = 1.0) -> torch.Tensor:
    """E[(||grad_x critic(x)|| - 1)^2] over the samples x of points (B, ...), which must require gradients.

    The critic's output is summed over its patches (each sample's gradient is that of its summed scores, as in
    GANimation), and the gradient graph is kept so that the penalty can be back-propagated (double backward).
    grad_scale is a GradScaler's current scale under fp16: the scores are multiplied by it before differentiating
    and the gradients divided by it afterwards, which keeps small fp16 gradients from underflowing.
    """
    scores = critic(points)
    (gradients,) = torch.autograd.grad(scores.float().sum() * grad_scale, points, create_graph=True)
    norms = (gradients.float() / grad_scale).flatten(1).norm(2, dim=1)
    return (norms - 1).pow(2).mean()


def total_variation(mask: torch.Tensor) -> torch.Tensor:
    """Per-image sum of |differences| between vertically and horizontally adjacent values of mask (B, C, H, W),
    averaged over the batch (GANimation's attention smoothness, per image)."""
    mask = mask.float()
    vertical = (mask[:, :, 1:, :] - mask[:, :, :-1, :]).abs().flatten(1).sum(1)
    horizontal = (mask[:, :, :, 1:] - mask[:, :, :, :-1]).abs().flatten(1).sum(1)
    return (vertical + horizontal).mean()


def weighted_l1(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of weights[b] * mean |prediction[b] - target[b]|: an L1 that counts only some samples
    (weights 0/1) while keeping the batch mean's normalisation."""
    per_sample = (prediction.float() - target.float()).abs().flatten(1).mean(1)
    return (weights.to(per_sample.dtype) * per_sample).mean()


def changed_pixels(target: torch.Tensor, reference: torch.Tensor, threshold: float) -> torch.Tensor:
    """(B, 1, H, W) 1 where target (B, C, H, W) differs from reference by more than threshold (mean over channels),
    else 0: e.g. the regions an expression moves between two aligned images."""
    return ((target.float() - reference.float()).abs().mean(1, keepdim=True) > threshold).float()


def region_mean(values: torch.Tensor, region: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of weights[b] * the mean of values[b] (B, C, H, W) over the pixels where region[b]
    (B, 1, H, W) is 1; a sample with an empty region counts 0. A loss confined to a region is then not diluted by
    the rest of the image."""
    total = (values.float() * region).flatten(1).sum(1)
    per_sample = total / (region.flatten(1).sum(1) * values.shape[1]).clamp(min=1)
    return (weights.to(per_sample.dtype) * per_sample).mean()
