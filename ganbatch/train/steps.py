"""The update mechanics every family's objective shares: `Trainer.critic_step` / `Trainer.generator_step` run the
family's losses (`ModelFamily.critic_losses` / `generator_losses`) under autocast (fp16 with a GradScaler, bf16
without), back-propagate, average the gradients over the workers, clip them when asked and step Adam.
"""
import contextlib
from collections.abc import Callable

import torch
from torch import nn

from ganbatch.jobs.train import OptimizerSpec
from ganbatch.families import Batch, Networks
from ganbatch.jobs.objectives import ObjectiveSpec
from ganbatch.families.base import LossTerms
from ganbatch.train.distributed import average_gradients

_AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}


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
            total, terms = self.nets.family.critic_losses(self.nets, batch, self.objective, grad_scale)
        self._update(self.nets.critic, self.critic_optimizer, total)
        return {"total": total.detach(), **{name: value.detach() for name, value in terms.items()}}

    def generator_step(self, batch: Batch) -> LossTerms:
        """One generator update on batch (the critic frozen); returns the detached loss terms and their total."""
        self.nets.critic.requires_grad_(False)
        try:
            with self._autocast():
                total, terms = self.nets.family.generator_losses(self.nets, batch, self.objective)
            self._update(self.nets.generator, self.generator_optimizer, total)
        finally:
            self.nets.critic.requires_grad_(True)
        return {"total": total.detach(), **{name: value.detach() for name, value in terms.items()}}
