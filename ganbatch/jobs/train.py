"""`kind: train`: GANimation or GANnotation training on Ray Train, checkpointed and resumable.

The objective is the chosen family's (`ganbatch.jobs.objectives`: a union discriminated by `family`, so a setting of another
family's objective is an error); loss weights, the adversarial loss, the critic/generator step ratio and the Adam
settings default to the family's published values: a field left unset (null) takes that family's value
(`resolved_objective`, `resolved_optimizer`).
"""
import json
from typing import Annotated, ClassVar, Literal, Optional, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ganbatch.families import FAMILIES
from ganbatch.choices import PRECISIONS
from ganbatch.jobs.common import Execution, StrictModel, Uri
from ganbatch.jobs.objectives import OBJECTIVES, ObjectiveSpec

Family = Literal[tuple(FAMILIES)]
# the `family` of each member is set from the job's family (`TrainJob._family_objective`)
Objective = Annotated[Union[tuple(OBJECTIVES[name] for name in FAMILIES)], Field(discriminator="family")]
MAX_BATCH = 4096  # global batch size
MAX_STEPS = 10_000_000  # generator steps (and the step intervals)
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
    jitter: float = Field(0.05, ge=0, le=0.3, description="random shift by whole pixels (never resampled, so "
                                                          "never blurred), at most this fraction of the size")


class TrainExecution(Execution):
    """Execution settings of a training run."""

    precision: Literal[("auto", *PRECISIONS)] = Field(
        "auto", description="autocast precision; auto: bf16 where the device computes it natively (CPUs with "
                            "AVX512_BF16 or AMX, CUDA GPUs with bf16), else fp32")

    max_failures: int = Field(0, ge=-1, description="worker-group restarts from the last checkpoint (-1: unlimited)")
    threads_per_worker: Optional[int] = Field(None, ge=1, description="torch threads per worker (default: its CPUs)")
    fail_at_step: Optional[int] = Field(None, ge=1, description="fault injection for tests: the last worker raises "
                                                                "on reaching this step in an attempt that did not "
                                                                "start from a checkpoint")


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
    init: Optional[str] = Field(None, description="start the generator from this model ('demo', a checkpoint path or "
                                                  "s3:// URI) instead of random weights: fine-tuning; it must have "
                                                  "the job's family and network; the critic starts fresh; a run "
                                                  "that resumes from its own checkpoint ignores it")
    objective: Objective = Field(default_factory=dict, validate_default=True,
                                 description="the family's loss weights and adversarial game")
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

    @field_validator("objective", mode="before")
    @classmethod
    def _family_objective(cls, value, info: ValidationInfo):
        """Tag the objective with the job's family; one line naming them for another family's settings."""
        family = info.data.get("family")
        if family is None:  # the family itself is wrong: that is the one error to report
            return next(iter(OBJECTIVES.values())).model_construct()
        if isinstance(value, ObjectiveSpec):
            if value.family != family:
                raise ValueError(f"a {value.family} objective on a {family} job")
            return value
        if not isinstance(value, dict):
            return value
        own = OBJECTIVES[family].model_fields
        foreign = {key: other for key in value if key not in own for other, objective in OBJECTIVES.items()
                   if key in objective.model_fields}
        if foreign:
            names = ", ".join(foreign)
            owners = " and ".join(dict.fromkeys(foreign.values()))
            raise ValueError(f"{names}: {owners} setting{'s' if len(foreign) > 1 else ''}, not used by a {family} "
                             f"job")
        return {**value, "family": family}

    @classmethod
    def from_saved_json(cls, text: str) -> "TrainJob":
        """The job of a run's job.json. Runs saved before the objective was per family hold the settings of every
        family's objective (another family's were ignored): those are dropped."""
        data = json.loads(text)
        family = data.get("family") if isinstance(data, dict) else None
        if family in OBJECTIVES and isinstance(data.get("objective"), dict):
            own = OBJECTIVES[family].model_fields
            other = {name for each, objective in OBJECTIVES.items() if each != family
                     for name in objective.model_fields}
            data = {**data, "objective": {key: value for key, value in data["objective"].items()
                                          if key in own or key not in other}}
        return cls.model_validate(data)

    def resolved_objective(self) -> ObjectiveSpec:
        """The objective with the family's published values in the unset fields (see the family's objective)."""
        return self.objective.resolved()

    def resolved_optimizer(self) -> OptimizerSpec:
        """The optimizer settings with the family's published values in the unset fields, decay_start included."""
        optimizer = self.optimizer.model_copy(update={
            key: value for key, value in FAMILIES[self.family].optimizer_defaults.items()
            if getattr(self.optimizer, key) is None
        })
        if optimizer.decay_start is None:
            optimizer = optimizer.model_copy(update={"decay_start": (2 * self.steps) // 3})
        return optimizer
