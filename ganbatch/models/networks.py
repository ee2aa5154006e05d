"""Building blocks shared by both families: the attention generator trunk and the patch critic.

GANimation (Pumarola et al. 2018) and GANnotation (Sanchez & Valstar 2018) use the same StarGAN-style generator:
a 7x7 convolution, two stride-2 down-samplings, residual blocks, two stride-2 up-samplings, then a colour head
(tanh) and an attention head (sigmoid) whose output blends the input back in. The published variants differ only in
small details (activation slope, convolution biases, affine InstanceNorm), which `TrunkOptions` captures.
"""
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
from torch import nn

# Down- and up-sampling steps in the trunk; the input side must be divisible by 2**SAMPLING_STEPS.
SAMPLING_STEPS = 2


@dataclass(frozen=True)
class TrunkOptions:
    """Per-variant details of the generator trunk (everything else is fixed by the architecture).

    leaky_slope: negative slope of the activations (0 gives a plain ReLU).
    conv_bias / norm_affine: bias on the encoder/decoder convolutions, learnable InstanceNorm scale and shift there.
    block_conv_bias / block_norm_affine: the same for the convolutions and norms inside the residual blocks.
    The colour and attention heads never have a bias in any published variant.
    blend_rescaled_input: blend the input mapped from [0, 1] to the output range [-1, 1] (2x - 1) instead of the
    raw input, so that an attention of 1 reproduces the input pixel. Only meaningful for a family whose input is
    [0, 1] (GANnotation): the published GANnotation blends its raw [0, 1] input into a [-1, 1] output, so its copy
    path can never return the input (ganbatch keeps that for the published weights); generators ganbatch trains
    set it (`ModelFamily.training_options`).
    """

    leaky_slope: float = 0.0
    conv_bias: bool = False
    norm_affine: bool = True
    block_conv_bias: bool = False
    block_norm_affine: bool = True
    blend_rescaled_input: bool = False

    def to_dict(self) -> dict:
        """The options as a JSON-friendly dict (inverse: `TrunkOptions(**d)`)."""
        return asdict(self)

    def activation(self) -> nn.Module:
        """A fresh activation module: ReLU when leaky_slope is 0, LeakyReLU otherwise."""
        if self.leaky_slope == 0:
            return nn.ReLU(inplace=True)
        return nn.LeakyReLU(self.leaky_slope, inplace=True)


class ResidualBlock(nn.Module):
    """conv3x3 - InstanceNorm - activation - conv3x3 - InstanceNorm, added to the input."""

    def __init__(self, channels: int, options: TrunkOptions):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=options.block_conv_bias)
        self.norm1 = nn.InstanceNorm2d(channels, affine=options.block_norm_affine)
        self.act = options.activation()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=options.block_conv_bias)
        self.norm2 = nn.InstanceNorm2d(channels, affine=options.block_norm_affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + F(x)."""
        return x + self.norm2(self.conv2(self.act(self.norm1(self.conv1(x)))))


def _head(in_channels: int, out_channels: int, squash: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 7, padding=3, bias=False), squash)


class AttentionGenerator(nn.Module):
    """Encoder - residual bottleneck - decoder with colour and attention heads; subclasses define the condition.

    forward(x, cond) returns (image, color, attention) with image = attention * x + (1 - attention) * color, so an
    attention of 1 keeps the input pixel (the published code's convention). Sub-modules: `encoder` (9 layers: three
    conv/norm/activation triples), `bottleneck` (repeat_num ResidualBlocks), `decoder` (6 layers), `color_head`,
    `attention_head`; these names are the ganbatch checkpoint keys.
    """

    family: ClassVar[str]
    default_options: ClassVar[TrunkOptions]

    def __init__(self, conv_dim: int, repeat_num: int, cond_channels: int, options: TrunkOptions | None = None):
        super().__init__()
        self.conv_dim = conv_dim
        self.repeat_num = repeat_num
        self.cond_channels = cond_channels
        self.options = options or self.default_options
        opts = self.options

        encoder = [
            nn.Conv2d(3 + cond_channels, conv_dim, 7, padding=3, bias=opts.conv_bias),
            nn.InstanceNorm2d(conv_dim, affine=opts.norm_affine),
            opts.activation(),
        ]
        dim = conv_dim
        for _ in range(SAMPLING_STEPS):
            encoder += [
                nn.Conv2d(dim, dim * 2, 4, stride=2, padding=1, bias=opts.conv_bias),
                nn.InstanceNorm2d(dim * 2, affine=opts.norm_affine),
                opts.activation(),
            ]
            dim *= 2
        self.encoder = nn.Sequential(*encoder)
        self.bottleneck = nn.Sequential(*(ResidualBlock(dim, opts) for _ in range(repeat_num)))
        decoder = []
        for _ in range(SAMPLING_STEPS):
            decoder += [
                nn.ConvTranspose2d(dim, dim // 2, 4, stride=2, padding=1, bias=opts.conv_bias),
                nn.InstanceNorm2d(dim // 2, affine=opts.norm_affine),
                opts.activation(),
            ]
            dim //= 2
        self.decoder = nn.Sequential(*decoder)
        self.color_head = _head(dim, 3, nn.Tanh())
        self.attention_head = _head(dim, 1, nn.Sigmoid())

    def hparams(self) -> dict:
        """conv_dim, repeat_num and cond_channels: what is needed (with `options`) to rebuild the network."""
        return {"conv_dim": self.conv_dim, "repeat_num": self.repeat_num, "cond_channels": self.cond_channels}

    def condition_maps(self, cond: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The (B, cond_channels, H, W) maps concatenated to the image x; defined by each family."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Generate from image x (B,3,H,W) and condition cond; returns (image, color, attention)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"generator input must be (B, 3, H, W), got {tuple(x.shape)}")
        step = 2**SAMPLING_STEPS
        if x.shape[2] % step or x.shape[3] % step:
            raise ValueError(f"generator input height and width must be multiples of {step}, got {tuple(x.shape)}")
        features = self.decoder(self.bottleneck(self.encoder(torch.cat([x, self.condition_maps(cond, x)], dim=1))))
        color = self.color_head(features)
        attention = self.attention_head(features)
        kept = 2 * x - 1 if self.options.blend_rescaled_input else x
        return attention * kept + (1 - attention) * color, color, attention


class PatchCritic(nn.Module):
    """StarGAN/GANimation critic: repeat_num conv4x4/s2 + LeakyReLU(0.01) layers, then a 3x3 critic head.

    cond_channels > 0 makes it conditional (condition maps concatenated to the image); aux_outputs > 0 adds a head
    whose kernel covers the whole final feature map and regresses aux_outputs values (GANimation's AU head).
    forward(image, cond=None) returns (critic map (B, 1, S/2**repeat_num, S/2**repeat_num), aux (B, aux_outputs) or
    None).
    """

    def __init__(self, image_size: int, conv_dim: int, repeat_num: int, cond_channels: int = 0, aux_outputs: int = 0):
        super().__init__()
        if image_size % 2**repeat_num:
            raise ValueError(f"image_size {image_size} is not divisible by 2**repeat_num = {2**repeat_num}")
        self.image_size = image_size
        self.cond_channels = cond_channels
        layers = [nn.Conv2d(3 + cond_channels, conv_dim, 4, stride=2, padding=1), nn.LeakyReLU(0.01, inplace=True)]
        dim = conv_dim
        for _ in range(1, repeat_num):
            layers += [nn.Conv2d(dim, dim * 2, 4, stride=2, padding=1), nn.LeakyReLU(0.01, inplace=True)]
            dim *= 2
        self.features = nn.Sequential(*layers)
        self.critic_head = nn.Conv2d(dim, 1, 3, padding=1, bias=False)
        self.aux_head = nn.Conv2d(dim, aux_outputs, image_size // 2**repeat_num, bias=False) if aux_outputs else None

    def forward(self, image: torch.Tensor, cond: torch.Tensor | None = None):
        """Score image (B,3,S,S) (with condition maps cond when conditional); returns (critic, aux or None)."""
        if self.cond_channels:
            if cond is None:
                raise ValueError(f"this critic is conditional: pass {self.cond_channels} condition maps")
            image = torch.cat([image, cond], dim=1)
        h = self.features(image)
        aux = self.aux_head(h).flatten(1) if self.aux_head is not None else None
        return self.critic_head(h), aux
