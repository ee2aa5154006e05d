"""`kind: train`: GANimation or GANnotation training on Ray Train, checkpointed and resumable."""
from typing import ClassVar, Literal, Optional

from pydantic import Field, model_validator

from ganbatch.jobs.common import Execution, StrictModel, Uri

Family = Literal["ganimation", "gannotation"]
Adversarial = Literal["wgan-gp", "hinge", "lsgan"]


class NetworkSpec(StrictModel):
    """Network sizes (the published GANimation model: 128 px, 64 channels, 6 residual blocks)."""

    size: int = Field(128, ge=32, le=512, description="image size; a multiple of 64")
    conv_dim: int = Field(64, ge=4, le=256, description="generator base channels")
    res_blocks: int = Field(6, ge=1, le=12, description="generator residual blocks")
    d_conv_dim: int = Field(64, ge=4, le=256, description="discriminator base channels")

    @model_validator(mode="after")
    def _size_multiple_of_64(self):
        if self.size % 64:
            raise ValueError(f"size {self.size} is not a multiple of 64 (the critic downsamples 6 times)")
        return self


class ObjectiveSpec(StrictModel):
    """Loss weights. Defaults are the published GANimation values; GANnotation uses its own adversarial default."""

    adversarial: Optional[Adversarial] = Field(None, description="default: wgan-gp (GANimation), hinge (GANnotation)")
    lambda_gp: float = Field(10.0, ge=0, description="gradient penalty (wgan-gp)")
    lambda_au: float = Field(160.0, ge=0, description="AU regression, real (D) and fake (G)")
    lambda_cycle: float = Field(10.0, ge=0, description="cycle / self-consistency L1")
    lambda_mask: float = Field(0.1, ge=0, description="attention mean")
    lambda_tv: float = Field(1e-5, ge=0, description="attention total variation")
    lambda_pixel: float = Field(10.0, ge=0, description="GANnotation: L1 to the target frame when pairs exist")
    lambda_triple: float = Field(10.0, ge=0, description="GANnotation: triple consistency")
    critic_steps: int = Field(5, ge=1, description="discriminator steps per generator step")
    au_noise: float = Field(0.1, ge=0, description="target AUs: another image's AUs + U(-noise, noise)")


class OptimizerSpec(StrictModel):
    """Adam with a constant learning rate, then a linear decay to zero."""

    lr_g: float = Field(1e-4, gt=0)
    lr_d: float = Field(1e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    decay_start: Optional[int] = Field(None, ge=0, description="step where the linear decay starts; default: steps/2")


class AugmentSpec(StrictModel):
    """Training-time augmentation."""

    flip: bool = Field(True, description="horizontal flip (landmarks flipped with the iBUG permutation)")
    jitter: float = Field(0.05, ge=0, le=0.3, description="random translation/scale, fraction of the size")


class TrainExecution(Execution):
    """Execution settings of a training run."""

    max_failures: int = Field(0, ge=-1, description="worker-group restarts from the last checkpoint (-1: unlimited)")
    threads_per_worker: Optional[int] = Field(None, ge=1, description="torch threads per worker (default: its CPUs)")


class TrainJob(StrictModel):
    """Train a generator/discriminator pair; writes OUT/NAME/ checkpoints and OUT/NAME/model.pt."""

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
    batch_size: int = Field(4, ge=1, description="global batch size (split across workers)")
    steps: int = Field(1000, ge=1, description="generator steps to train to")
    checkpoint_every: int = Field(200, ge=1, description="steps between checkpoints")
    log_every: int = Field(20, ge=1, description="steps between log lines")
    sample_every: int = Field(200, ge=1, description="steps between sample grids")
    keep_checkpoints: int = Field(3, ge=1, description="checkpoints kept")
    seed: int = 0
    execution: TrainExecution = Field(default_factory=TrainExecution)

    @model_validator(mode="after")
    def _batch_splits_over_workers(self):
        workers = self.execution.workers or 1
        if self.batch_size % workers:
            raise ValueError(f"batch_size {self.batch_size} does not split evenly over {workers} workers")
        return self
