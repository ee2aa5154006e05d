"""Networks of both families, their registry, and checkpoint loading/saving (pure torch, no Ray)."""
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
from ganbatch.models.families import FAMILIES, ModelFamily, get_family
from ganbatch.models.ganimation import GANimationDiscriminator, GANimationGenerator
from ganbatch.models.gannotation import GANnotationDiscriminator, GANnotationGenerator
from ganbatch.models.networks import AttentionGenerator, PatchCritic, TrunkOptions

__all__ = [
    "AttentionGenerator",
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointIntegrityError",
    "FAMILIES",
    "GANimationDiscriminator",
    "GANimationGenerator",
    "GANnotationDiscriminator",
    "GANnotationGenerator",
    "GeneratorInfo",
    "LAYOUTS",
    "ModelFamily",
    "PatchCritic",
    "TrunkOptions",
    "UntrustedCheckpointError",
    "describe_generator",
    "get_family",
    "load_generator",
    "save_generator",
]
