"""Networks of both families and the family registry: architecture, composition, conditioning, shapes."""
import numpy as np
import pytest
import torch
from torch import nn

from ganbatch.families import get_family
from ganbatch.jobs.train import NetworkSpec
from ganbatch.models import (
    GANimationDiscriminator,
    GANimationGenerator,
    GANnotationDiscriminator,
    GANnotationGenerator,
)
from ganbatch.targets.landmarks import landmark_heatmaps

SIZE = 32


def randomize_norms(module: nn.Module) -> nn.Module:
    """Give affine InstanceNorms non-trivial scales and shifts so that they matter in comparisons."""
    torch.manual_seed(1)
    for layer in module.modules():
        if isinstance(layer, nn.InstanceNorm2d) and layer.affine:
            nn.init.uniform_(layer.weight, 0.5, 1.5)
            nn.init.uniform_(layer.bias, -0.5, 0.5)
    return module


class Ones(nn.Module):
    """Stands in for the attention head: attention 1 everywhere."""

    def forward(self, features):
        return torch.ones_like(features[:, :1])


def conv_layers(module: nn.Module):
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def test_ganimation_generator_layers_follow_the_published_architecture():
    g = GANimationGenerator(conv_dim=8, repeat_num=2)
    assert [type(m) for m in g.encoder] == [nn.Conv2d, nn.InstanceNorm2d, nn.ReLU] * 3
    assert [type(m) for m in g.decoder] == [nn.ConvTranspose2d, nn.InstanceNorm2d, nn.ReLU] * 2
    first, down1, down2 = g.encoder[0], g.encoder[3], g.encoder[6]
    assert (first.in_channels, first.out_channels, first.kernel_size) == (3 + 17, 8, (7, 7))
    assert [(c.out_channels, c.kernel_size, c.stride) for c in (down1, down2)] == [(16, (4, 4), (2, 2)),
                                                                                   (32, (4, 4), (2, 2))]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in (g.decoder[0], g.decoder[3])] == [
        (16, (4, 4), (2, 2)), (8, (4, 4), (2, 2))]
    assert len(g.bottleneck) == 2 and g.bottleneck[0].conv1.kernel_size == (3, 3)
    assert all(conv.bias is None for conv in conv_layers(g))
    assert all(norm.affine for norm in g.modules() if isinstance(norm, nn.InstanceNorm2d))
    assert (g.color_head[0].out_channels, g.color_head[0].kernel_size, type(g.color_head[1])) == (3, (7, 7), nn.Tanh)
    assert (g.attention_head[0].out_channels, type(g.attention_head[1])) == (1, nn.Sigmoid)


def test_gannotation_generator_layers_follow_the_demo_architecture():
    g = GANnotationGenerator(conv_dim=8, repeat_num=1)
    assert g.encoder[0].in_channels == 3 + 66
    activations = [m for m in g.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    assert activations and all(isinstance(a, nn.LeakyReLU) and a.negative_slope == 0.2 for a in activations)
    block = g.bottleneck[0]
    assert block.conv1.bias is not None and block.conv2.bias is not None
    assert not block.norm1.affine and not block.norm2.affine
    assert all(m.bias is None for m in (g.encoder[0], g.encoder[3], g.decoder[0], g.color_head[0]))
    assert g.encoder[1].affine and g.decoder[1].affine


def test_ganimation_forward_is_attention_blend_of_input_and_colour_with_tiled_aus():
    torch.manual_seed(0)
    g = randomize_norms(GANimationGenerator(conv_dim=8, repeat_num=1)).eval()
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    aus = torch.rand(2, 17)
    image, color, attention = g(x, aus)

    tiled = aus.view(2, 17, 1, 1) * torch.ones(1, 1, SIZE, SIZE)
    features = g.decoder(g.bottleneck(g.encoder(torch.cat([x, tiled], dim=1))))
    expected_color, expected_attention = g.color_head(features), g.attention_head(features)
    torch.testing.assert_close(color, expected_color)
    torch.testing.assert_close(attention, expected_attention)
    torch.testing.assert_close(image, expected_attention * x + (1 - expected_attention) * expected_color)
    assert image.shape == x.shape and attention.shape == (2, 1, SIZE, SIZE)
    assert not torch.allclose(g(x, torch.zeros(2, 17))[0], image)  # the AUs condition the output


def test_attention_of_one_keeps_the_input_pixel():
    g = GANimationGenerator(conv_dim=8, repeat_num=1)
    g.attention_head = Ones()
    x = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    torch.testing.assert_close(g(x, torch.rand(1, 17))[0], x)


def test_gannotation_forward_blends_with_heatmap_condition():
    torch.manual_seed(0)
    g = randomize_norms(GANnotationGenerator(conv_dim=8, repeat_num=1)).eval()
    x = torch.rand(2, 3, SIZE, SIZE)
    maps = torch.rand(2, 66, SIZE, SIZE)
    image, color, attention = g(x, maps)
    torch.testing.assert_close(image, attention * x + (1 - attention) * color)
    assert not torch.allclose(g(x, torch.zeros_like(maps))[0], image)
    with pytest.raises(ValueError, match="heatmaps"):
        g(x, torch.rand(2, 66, SIZE // 2, SIZE // 2))


def test_generator_rejects_bad_condition_and_sizes():
    g = GANimationGenerator(conv_dim=4, repeat_num=1)
    with pytest.raises(ValueError, match="17"):
        g(torch.zeros(1, 3, SIZE, SIZE), torch.zeros(1, 5))
    with pytest.raises(ValueError, match="multiples of 4"):
        g(torch.zeros(1, 3, 30, 30), torch.zeros(1, 17))


def test_hyper_parameters_are_constructor_arguments():
    g = GANimationGenerator(conv_dim=4, repeat_num=3, cond_channels=5)
    assert g.hparams() == {"conv_dim": 4, "repeat_num": 3, "cond_channels": 5}
    assert g.encoder[0].in_channels == 8 and len(g.bottleneck) == 3
    assert g(torch.zeros(1, 3, 16, 16), torch.zeros(1, 5))[0].shape == (1, 3, 16, 16)


@pytest.mark.parametrize("size", [64, 128])
def test_ganimation_discriminator_shapes(size):
    d = GANimationDiscriminator(image_size=size, conv_dim=4, repeat_num=6)
    assert len([m for m in d.features if isinstance(m, nn.Conv2d)]) == 6
    assert d.aux_head.kernel_size == (size // 64, size // 64)
    critic, aus = d(torch.rand(3, 3, size, size))
    assert critic.shape == (3, 1, size // 64, size // 64)
    assert aus.shape == (3, 17)


@pytest.mark.parametrize("size", [64, 128])
def test_gannotation_discriminator_is_conditional_patch_critic(size):
    d = GANnotationDiscriminator(image_size=size, conv_dim=4, repeat_num=6)
    image, maps = torch.rand(2, 3, size, size), torch.rand(2, 66, size, size)
    critic, aux = d(image, maps)
    assert critic.shape == (2, 1, size // 64, size // 64) and aux is None
    assert not torch.allclose(d(image, torch.zeros_like(maps))[0], critic)
    with pytest.raises(ValueError, match="conditional"):
        d(image)


def test_discriminator_rejects_image_size_not_divisible():
    with pytest.raises(ValueError, match="divisible"):
        GANimationDiscriminator(image_size=100, conv_dim=4, repeat_num=6)


def test_family_input_ranges():
    face = np.array([[[0, 255, 51]]], dtype=np.uint8)
    ganimation = get_family("ganimation").face_to_input(face)
    gannotation = get_family("gannotation").face_to_input(face)
    assert ganimation.shape == (1, 3, 1, 1)
    torch.testing.assert_close(ganimation.flatten(), torch.tensor([-1.0, 1.0, 51 / 127.5 - 1]))
    torch.testing.assert_close(gannotation.flatten(), torch.tensor([0.0, 1.0, 0.2]))


def test_family_output_mapping():
    image = torch.tensor([-1.0, 1.0, 0.0, 2.0]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    pixels = get_family("ganimation").to_pixels(image)
    assert pixels.dtype == np.uint8 and pixels.shape == (1, 2, 2, 3)
    assert pixels[0, :, :, 0].tolist() == [[0, 255], [128, 255]]  # 0.5 * (y + 1), rounded, clamped


def test_family_targets_to_cond():
    aus = np.array([[0.0] * 16 + [5.0], [2.5] * 17])
    cond = get_family("ganimation").targets_to_cond(aus, SIZE)
    torch.testing.assert_close(cond, torch.tensor(aus / 5, dtype=torch.float32))
    points = np.random.default_rng(0).uniform(4, SIZE - 4, size=(2, 66, 2)).astype(np.float32)
    maps = get_family("gannotation").targets_to_cond(points, SIZE)
    np.testing.assert_array_equal(maps.numpy(), landmark_heatmaps(points, size=SIZE))
    with pytest.raises(ValueError, match=r"\(T, 17\)"):
        get_family("ganimation").targets_to_cond(np.zeros((2, 16)), SIZE)
    with pytest.raises(ValueError, match=r"\(T, 66, 2\)"):
        get_family("gannotation").targets_to_cond(np.zeros((2, 68, 2)), SIZE)


def test_registry_lists_networks_and_rejects_unknown_family():
    assert get_family("ganimation").generator_cls is GANimationGenerator
    assert get_family("gannotation").discriminator_cls is GANnotationDiscriminator
    assert get_family("gannotation").condition == "landmarks"
    with pytest.raises(ValueError, match="ganimation, gannotation"):
        get_family("stargan")


# ---------------------------------------------------------------------------------------------------------------
# The critic's size options (jobs.train.NetworkSpec) and the critics they build


def critic_of(network: dict, family: str = "ganimation"):
    spec = NetworkSpec(**network)
    return get_family(family).discriminator_cls(image_size=spec.size, conv_dim=spec.critic_width(),
                                                repeat_num=spec.critic_layers())


def strided_convs(critic):
    return [(m.in_channels, m.out_channels) for m in critic.features if isinstance(m, nn.Conv2d)]


def test_default_critic_is_the_published_ganimation_discriminator():
    """GANimation's published Discriminator (128 px, conv_dim 64, repeat_num 6): six 4x4/2 convolutions of
    64..2048 channels, a 3x3 critic head and a 2x2 AU head: 44.86 M parameters."""
    critic = critic_of({})
    assert strided_convs(critic) == [(3, 64), (64, 128), (128, 256), (256, 512), (512, 1024), (1024, 2048)]
    assert all(m.kernel_size == (4, 4) and m.stride == (2, 2) for m in critic.features if isinstance(m, nn.Conv2d))
    assert critic.critic_head.kernel_size == (3, 3) and critic.aux_head.kernel_size == (2, 2)
    convs = strided_convs(critic)
    published = sum(i * o * 16 + o for i, o in convs) + 2048 * 9 + 2048 * 17 * 4
    assert sum(p.numel() for p in critic.parameters()) == published
    assert 44.8e6 < published < 44.9e6


@pytest.mark.parametrize("network, width, layers", [
    ({"size": 64, "conv_dim": 32}, 32, 5),  # the README's small example: 2x2 final map, like the published 128 px
    ({"size": 64, "conv_dim": 8}, 8, 5),
    ({"size": 128, "conv_dim": 16}, 16, 6),
    ({"size": 256}, 64, 6),  # at most the published 6 layers
    ({"size": 192}, 64, 6),
    ({"size": 64, "conv_dim": 32, "d_conv_dim": 16, "d_layers": 6}, 16, 6),  # set explicitly: as set
    ({"size": 128, "d_conv_dim": 24}, 24, 6),
])
@pytest.mark.parametrize("family", ["ganimation", "gannotation"])
def test_critic_width_and_depth_follow_the_generator_and_size_unless_set(network, width, layers, family):
    critic = critic_of(network, family)
    convs = strided_convs(critic)
    assert len(convs) == layers
    assert [o for _, o in convs] == [width * 2 ** k for k in range(layers)]
    size = NetworkSpec(**network).size
    scores, _ = critic(torch.zeros(1, 3, size, size), torch.zeros(1, 66, size, size) if family == "gannotation"
                       else None)
    assert scores.shape[-1] == size // 2 ** layers


def test_resolved_network_spec_fills_in_the_critic():
    spec = NetworkSpec(size=64, conv_dim=32)
    assert (spec.d_conv_dim, spec.d_layers) == (None, None)
    assert spec.resolved().model_dump() == {"size": 64, "conv_dim": 32, "res_blocks": 6, "d_conv_dim": 32,
                                            "d_layers": 5}


def test_gannotation_generators_ganbatch_trains_copy_the_input_where_attention_is_one(tmp_path):
    """GANnotation's input is [0, 1] and its output [-1, 1]: the published blend of the raw input brightens what it
    keeps; the generators ganbatch trains blend the rescaled input, so attention 1 returns the face itself."""
    from ganbatch.models import load_generator, save_generator

    family = get_family("gannotation")
    face = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    heat = torch.zeros(1, 66, 16, 16)
    trained = GANnotationGenerator(conv_dim=4, repeat_num=1, options=family.training_options)
    published = GANnotationGenerator(conv_dim=4, repeat_num=1)
    for generator in (trained, published):
        generator.attention_head = Ones()
    np.testing.assert_array_equal(family.to_pixels(trained(family.face_to_input(face), heat)[0])[0], face)
    assert (family.to_pixels(published(family.face_to_input(face), heat)[0])[0] >= 127).all()
    save_generator(GANnotationGenerator(conv_dim=4, repeat_num=1, options=family.training_options), tmp_path / "g.pt",
                   {"image_size": 16})
    assert load_generator(tmp_path / "g.pt")[0].options.blend_rescaled_input
    assert get_family("ganimation").training_options is None
