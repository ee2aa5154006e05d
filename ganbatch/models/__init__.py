"""Networks of both families and checkpoint loading/saving (pure torch, no Ray); the families: `ganbatch.families`."""
from ganbatch.models.checkpoint import (
    LAYOUTS,
    CheckpointError,
    CheckpointFormatError,
    CheckpointIntegrityError,
    GeneratorInfo,
    UntrustedCheckpointError,
    describe_generator,
    load_generator,
    save_generator,
)
from ganbatch.models.ganimation import GANimationDiscriminator, GANimationGenerator
from ganbatch.models.gannotation import GANnotationDiscriminator, GANnotationGenerator
from ganbatch.models.networks import AttentionGenerator, PatchCritic, TrunkOptions

__all__ = [
    "AttentionGenerator",
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointIntegrityError",
    "GANimationDiscriminator",
    "GANimationGenerator",
    "GANnotationDiscriminator",
    "GANnotationGenerator",
    "GeneratorInfo",
    "LAYOUTS",
    "PatchCritic",
    "TrunkOptions",
    "UntrustedCheckpointError",
    "describe_generator",
    "load_generator",
    "save_generator",
]
