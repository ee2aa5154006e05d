"""`kind: train`: GANimation or GANnotation training on Ray Train, checkpointed and resumable.

Loss weights, the adversarial loss, the critic/generator step ratio and the Adam settings default to the published
values of the chosen family; a field left unset (null) takes that family's value (`resolved_objective`,
`resolved_optimizer`):

- GANimation (albertpumarola/GANimation, `options/train_options.py`, trained with `--batch_size 25`): WGAN-GP
  (lambda_D_gp 10), 5 critic steps per generator step, AU regression lambda_D_cond 4000 on an MSE that the original
  divides once more by the batch size (4000 / 25 = 160 per mean squared error), cycle 10, attention mean 0.1,
  attention smoothness 1e-5 on a sum over the whole batch (1e-5 x 25 = 2.5e-4 per image), Adam lr 1e-4, betas
  (0.5, 0.999). Here every term is a mean over the batch, so the weights keep their meaning at any batch size and
  worker count. An option beyond the paper, off by default (lambda_pixel 0): paired supervision for data sets that
  hold several images per identity with the same pose (e.g. `ganbatch synth`): a `paired_fraction` of the samples
  take a same-identity partner's exact AUs as target, and lambda_pixel weighs the L1 between the generated frame and
  that partner image; the other samples keep the published random targets.
- GANnotation (ESanchezLozano/GANnotation `training/`): adversarial 1, target-frame L1 100, self-consistency 100,
  triple consistency 100, Adam betas (0.5, 0.9), weight decay 5e-4, gradient norm clipped at 1; its `disiters`
  rule gives 1 critic step per generator step with the hinge loss and 4 with WGAN-GP. The hinge loss is the default
  (the paper's). Its released trainer has no attention mask; the mask smoothness term takes GANimation's weight.
  Its perceptual (VGG-16) and identity losses need pretrained weights that are not available here: they are left
  out, not approximated.
"""
from typing import ClassVar, Literal, Optional

from pydantic import Field, model_validator

from ganbatch.jobs.common import Execution, StrictModel, Uri

Family = Literal["ganimation", "gannotation"]
MAX_BATCH = 4096  # global batch size
MAX_STEPS = 10_000_000  # generator steps (and the step intervals)
Adversarial = Literal["wgan-gp", "hinge", "lsgan"]
CRITIC_MAX_LAYERS = 6  # the published critic's stride-2 convolutions (GANimation/StarGAN at 128 px)


class NetworkSpec(StrictModel):
    """Network sizes (the published GANimation model: 128 px, 64 channels, 6 residual blocks; its critic 64
    channels, 6 stride-2 layers). The critic follows the generator's width and the image size unless set, so that a
    small generator does not train against the full-size critic (44.8 M parameters)."""

    size: int = Field(128, ge=64, le=512, description="image size; a multiple of 64")
    conv_dim: int = Field(64, ge=4, le=256, description="generator base channels")
    res_blocks: int = Field(6, ge=1, le=12, description="generator residual blocks")
    d_conv_dim: Optional[int] = Field(None, ge=4, le=256, description="critic base channels; default: conv_dim "
                                                                      "(the published 64 with the published "
                                                                      "conv_dim)")
    d_layers: Optional[int] = Field(None, ge=1, le=6, description="critic stride-2 convolutions; default: down to a "
                                                                  "2x2 map, at most 6 (6 at 128 px as published, "
                                                                  "5 at 64 px)")

    @model_validator(mode="after")
    def _size_multiple_of_64(self):
        if self.size % 64:
            raise ValueError(f"size {self.size} is not a multiple of 64 (the critic downsamples 6 times)")
        return self

    def critic_width(self) -> int:
        """The critic's base channels: d_conv_dim, else the generator's conv_dim."""
        return self.d_conv_dim if self.d_conv_dim is not None else self.conv_dim

    def critic_layers(self) -> int:
        """The critic's stride-2 convolutions: d_layers, else as many as halve the size down to a 2x2 map, at most
        CRITIC_MAX_LAYERS (the published critic's 6: a 2x2 map at 128 px)."""
        if self.d_layers is not None:
            return self.d_layers
        layers = 0
        while layers < CRITIC_MAX_LAYERS and self.size % 2 ** (layers + 1) == 0 and self.size >> (layers + 1) >= 2:
            layers += 1
        return layers

    def resolved(self) -> "NetworkSpec":
        """The spec with the critic's width and depth filled in: what fixes the networks' shapes."""
        return self.model_copy(update={"d_conv_dim": self.critic_width(), "d_layers": self.critic_layers()})


class ObjectiveSpec(StrictModel):
    """Loss weights and the adversarial game; unset (null) fields take the family's published value."""

    adversarial: Optional[Adversarial] = Field(None, description="adversarial loss; default: wgan-gp (GANimation), "
                                                                 "hinge (GANnotation)")
    lambda_adv: float = Field(1.0, ge=0, description="adversarial term of the generator and the critic")
    lambda_gp: float = Field(10.0, ge=0, description="gradient penalty (wgan-gp only)")
    lambda_au: float = Field(160.0, ge=0, description="GANimation: AU regression MSE, real (critic) and fake "
                                                      "(generator); the original's 4000 / batch 25")
    lambda_cycle: Optional[float] = Field(None, ge=0, description="cycle / self-consistency L1; default: 10 "
                                                                  "(GANimation), 100 (GANnotation)")
    lambda_mask: Optional[float] = Field(None, ge=0, description="attention mask mean; default: 0.1 (GANimation), "
                                                                 "0 (GANnotation)")
    lambda_tv: float = Field(2.5e-4, ge=0, description="attention mask smoothness (per-image total variation); "
                                                       "the original's 1e-5 x batch 25")
    lambda_pixel: Optional[float] = Field(None, ge=0, description="L1 to a same-identity image; GANnotation: the "
                                                                  "target frame (pairs) or the input (no pair); "
                                                                  "GANimation: the partner of the paired samples; "
                                                                  "default: 100 (GANnotation), 0 (GANimation)")
    lambda_triple: float = Field(100.0, ge=0, description="GANnotation: triple consistency L1")
    critic_steps: Optional[int] = Field(None, ge=1, description="critic steps per generator step, each on a fresh "
                                                                "batch; default: 5 (GANimation), 1 with hinge/lsgan "
                                                                "or 4 with wgan-gp (GANnotation)")
    au_noise: float = Field(0.1, ge=0, description="GANimation target AUs: another image's AUs / 5 + "
                                                   "U(-au_noise, au_noise)")
    paired_fraction: float = Field(0.5, ge=0, le=1, description="GANimation with lambda_pixel > 0: fraction of "
                                                                "the samples that take a same-identity partner's "
                                                                "AUs (no noise) as target and its image as the "
                                                                "pixel target; the rest keep random targets")


class OptimizerSpec(StrictModel):
    """Adam with a constant learning rate, then a linear decay to zero at the last step."""

    lr_g: float = Field(1e-4, gt=0, description="generator learning rate")
    lr_d: float = Field(1e-4, gt=0, description="critic learning rate")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam beta1")
    beta2: Optional[float] = Field(None, ge=0, lt=1, description="Adam beta2; default: 0.999 (GANimation), "
                                                                 "0.9 (GANnotation)")
    weight_decay: Optional[float] = Field(None, ge=0, description="Adam weight decay; default: 0 (GANimation), "
                                                                  "5e-4 (GANnotation)")
    grad_clip: Optional[float] = Field(None, ge=0, description="clip each network's gradient norm to this "
                                                               "(0: off); default: off (GANimation), 1 (GANnotation)")
    decay_start: Optional[int] = Field(None, ge=0, description="step where the linear decay starts; default: 2/3 of "
                                                               "steps (the original's 20 constant + 10 decay epochs)")


class AugmentSpec(StrictModel):
    """Training-time augmentation."""

    flip: bool = Field(True, description="random horizontal flip (landmarks mirrored with the iBUG permutation, "
                                         "AUs unchanged)")
    jitter: float = Field(0.05, ge=0, le=0.3, description="random shift and scale, as a fraction of the size")


class TrainExecution(Execution):
    """Execution settings of a training run."""

    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto", description="autocast precision; auto: bf16 where the device computes it natively (CPUs with "
                            "AVX512_BF16 or AMX, CUDA GPUs with bf16), else fp32")

    max_failures: int = Field(0, ge=-1, description="worker-group restarts from the last checkpoint (-1: unlimited)")
    threads_per_worker: Optional[int] = Field(None, ge=1, description="torch threads per worker (default: its CPUs)")
    fail_at_step: Optional[int] = Field(None, ge=1, description="fault injection for tests: the last worker raises "
                                                                "on reaching this step in an attempt that did not "
                                                                "start from a checkpoint")


# Per-family values of the fields above that default to null.
FAMILY_OBJECTIVE = {
    "ganimation": {"adversarial": "wgan-gp", "lambda_cycle": 10.0, "lambda_mask": 0.1, "lambda_pixel": 0.0},
    "gannotation": {"adversarial": "hinge", "lambda_cycle": 100.0, "lambda_mask": 0.0, "lambda_pixel": 100.0},
}
FAMILY_OPTIMIZER = {
    "ganimation": {"beta2": 0.999, "weight_decay": 0.0, "grad_clip": 0.0},
    "gannotation": {"beta2": 0.9, "weight_decay": 5e-4, "grad_clip": 1.0},
}


class TrainJob(StrictModel):
    """Train a generator/critic pair; writes OUT/NAME/ checkpoints and OUT/NAME/model.pt."""

    kind: Literal["train"] = "train"
    # keys of run_train's result.outputs, which later pipeline steps can refer to as ${steps.NAME.KEY}
    OUTPUTS: ClassVar[tuple[str, ...]] = ("model", "run")
    family: Family
    data: Uri = Field(description="data set folder or s3:// prefix")
    out: Uri = Field(description="storage for runs (folder or s3:// prefix)")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="run name; re-running the same name resumes")
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    augment: AugmentSpec = Field(default_factory=AugmentSpec)
    batch_size: int = Field(4, ge=1, le=MAX_BATCH, description="global batch size (split evenly across workers)")
    steps: int = Field(1000, ge=1, le=MAX_STEPS, description="generator steps to train to")
    checkpoint_every: int = Field(200, ge=1, le=MAX_STEPS, description="steps between checkpoints")
    log_every: int = Field(20, ge=1, le=MAX_STEPS, description="steps between log lines")
    sample_every: int = Field(200, ge=1, le=MAX_STEPS, description="steps between sample grids")
    keep_checkpoints: int = Field(3, ge=1, le=1000, description="checkpoints kept")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seeds the initial weights and every random draw (data order, augmentation, "
                                     "targets)")
    execution: TrainExecution = Field(default_factory=TrainExecution)

    @model_validator(mode="after")
    def _batch_splits_over_workers(self):
        workers = self.execution.workers or 1
        if self.batch_size % workers:
            raise ValueError(f"batch_size {self.batch_size} does not split evenly over {workers} workers")
        return self

    def resolved_objective(self) -> ObjectiveSpec:
        """The objective with the family's published values in the unset fields; paired_fraction is 0 unless a
        GANimation objective has a pixel term (no sample is paired then)."""
        objective = self.objective.model_copy(update={
            key: value for key, value in FAMILY_OBJECTIVE[self.family].items() if getattr(self.objective, key) is None
        })
        if objective.critic_steps is None:
            steps = 5 if self.family == "ganimation" else (4 if objective.adversarial == "wgan-gp" else 1)
            objective = objective.model_copy(update={"critic_steps": steps})
        if self.family != "ganimation" or objective.lambda_pixel == 0:
            objective = objective.model_copy(update={"paired_fraction": 0.0})
        return objective

    def resolved_optimizer(self) -> OptimizerSpec:
        """The optimizer settings with the family's published values in the unset fields, decay_start included."""
        optimizer = self.optimizer.model_copy(update={
            key: value for key, value in FAMILY_OPTIMIZER[self.family].items() if getattr(self.optimizer, key) is None
        })
        if optimizer.decay_start is None:
            optimizer = optimizer.model_copy(update={"decay_start": (2 * self.steps) // 3})
        return optimizer
