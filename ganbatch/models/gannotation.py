"""GANnotation networks (ESanchezLozano/GANnotation): generator conditioned on 66 landmark heatmaps."""
import torch

from ganbatch.models.networks import AttentionGenerator, PatchCritic, TrunkOptions
from ganbatch.targets.landmarks import NUM_GANNOTATION


class GANnotationGenerator(AttentionGenerator):
    """GANnotation generator (demo version): heatmaps (B, cond_channels, H, W) concatenated to the image.

    Defaults are the demo's: LeakyReLU(0.2), affine InstanceNorm without conv bias in the encoder/decoder, residual
    blocks whose convolutions have a bias and whose InstanceNorm is not affine. x is RGB in [0, 1] (as the demo feeds
    it); the output is mapped to pixels by 0.5 * (image + 1).
    """

    family = "gannotation"
    default_options = TrunkOptions(leaky_slope=0.2, block_conv_bias=True, block_norm_affine=False)

    def __init__(self, conv_dim: int = 64, repeat_num: int = 6, cond_channels: int = NUM_GANNOTATION,
                 options: TrunkOptions | None = None):
        super().__init__(conv_dim, repeat_num, cond_channels, options)

    def condition_maps(self, cond: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The heatmaps themselves, after checking they match the image."""
        expected = (x.shape[0], self.cond_channels, x.shape[2], x.shape[3])
        if tuple(cond.shape) != expected:
            raise ValueError(f"GANnotation condition must be heatmaps of shape {expected}, got {tuple(cond.shape)}")
        return cond.to(x.dtype)


class GANnotationDiscriminator(PatchCritic):
    """Conditional patch critic on image + heatmaps, as in GANnotation's training code (no auxiliary head).

    Same layers as GANimation's critic (six conv4x4/s2 + LeakyReLU(0.01), conv3x3 critic head) with the 66 heatmaps
    concatenated to the image, so the critic judges whether the face matches the requested landmarks.
    """

    def __init__(self, image_size: int = 128, conv_dim: int = 64, repeat_num: int = 6,
                 cond_channels: int = NUM_GANNOTATION):
        super().__init__(image_size, conv_dim, repeat_num, cond_channels=cond_channels, aux_outputs=0)
