"""GANimation networks (albertpumarola/GANimation): generator conditioned on a vector of 17 AU intensities."""
import torch

from ganbatch.models.networks import AttentionGenerator, PatchCritic, TrunkOptions
from ganbatch.targets.aus import NUM_AUS


class GANimationGenerator(AttentionGenerator):
    """GANimation generator: the AU vector (B, cond_channels), intensities / 5, is tiled over the image.

    Defaults are the published ones: ReLU, no convolution biases, affine InstanceNorm. x is RGB in [-1, 1].
    """

    family = "ganimation"
    default_options = TrunkOptions()

    def __init__(self, conv_dim: int = 64, repeat_num: int = 6, cond_channels: int = NUM_AUS,
                 options: TrunkOptions | None = None):
        super().__init__(conv_dim, repeat_num, cond_channels, options)

    def condition_maps(self, cond: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Tile the (B, C) AU vector into constant (B, C, H, W) maps."""
        if cond.dim() != 2 or cond.shape[1] != self.cond_channels:
            raise ValueError(f"GANimation condition must be (B, {self.cond_channels}) AU values, "
                             f"got {tuple(cond.shape)}")
        return cond[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3]).to(x.dtype)


class GANimationDiscriminator(PatchCritic):
    """GANimation critic: unconditional patch critic plus a head regressing the image's AUs (cond is ignored)."""

    def __init__(self, image_size: int = 128, conv_dim: int = 64, repeat_num: int = 6, cond_channels: int = NUM_AUS):
        super().__init__(image_size, conv_dim, repeat_num, cond_channels=0, aux_outputs=cond_channels)
