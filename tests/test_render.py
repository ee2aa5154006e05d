"""One-clip renderer: batching and chunking equal frame-by-frame generation, input_first, checks."""
import numpy as np
import pytest
import torch

from ganbatch.models import GANimationGenerator, GANnotationGenerator, describe_generator
from ganbatch.render import render_clip
from ganbatch.targets.landmarks import landmark_heatmaps

SIZE = 32
FRAMES = 5


@pytest.fixture(scope="module")
def ganimation():
    torch.manual_seed(0)
    generator = GANimationGenerator(conv_dim=8, repeat_num=1).eval()
    return generator, describe_generator(generator, image_size=SIZE)


@pytest.fixture(scope="module")
def face():
    return np.random.default_rng(0).integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def aus():
    return np.random.default_rng(1).uniform(0, 5, size=(FRAMES, 17))


def one_by_one(generator, x, conds):
    """Reference: each frame through the generator alone, mapped to pixels by 0.5 * (y + 1)."""
    frames, attention = [], []
    with torch.no_grad():
        for cond in conds:
            image, _, att = generator(x, cond[None])
            frames.append(((image[0].permute(1, 2, 0) + 1) * 127.5).clamp(0, 255).round().to(torch.uint8).numpy())
            attention.append(att[0, 0].numpy())
    return np.stack(frames), np.stack(attention)


def assert_frames_match(got, expected):
    # float reductions may differ in the last bit between batch sizes, which can move a pixel across .5
    assert got.shape == expected.shape and got.dtype == np.uint8
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert (got == expected).mean() > 0.999


@pytest.mark.parametrize("chunk_size", [16, 2, 1])
def test_ganimation_clip_equals_frame_by_frame(ganimation, face, aus, chunk_size):
    generator, info = ganimation
    x = torch.from_numpy(face).permute(2, 0, 1)[None].float() / 127.5 - 1
    expected_frames, expected_attention = one_by_one(generator, x, torch.tensor(aus / 5, dtype=torch.float32))

    clip = render_clip(generator, info, face, aus, chunk_size=chunk_size, return_maps=True)
    assert_frames_match(clip.frames, expected_frames)
    assert clip.attention.dtype == np.float32 and clip.attention.shape == (FRAMES, SIZE, SIZE)
    np.testing.assert_allclose(clip.attention, expected_attention, atol=1e-5)
    assert clip.color.dtype == np.uint8 and clip.color.shape == (FRAMES, SIZE, SIZE, 3)


def test_gannotation_clip_uses_unit_input_and_heatmaps(face):
    torch.manual_seed(0)
    generator = GANnotationGenerator(conv_dim=8, repeat_num=1).eval()
    info = describe_generator(generator, image_size=SIZE)
    points = np.random.default_rng(2).uniform(4, SIZE - 4, size=(3, 66, 2)).astype(np.float32)
    x = torch.from_numpy(face).permute(2, 0, 1)[None].float() / 255
    expected, _ = one_by_one(generator, x, torch.from_numpy(landmark_heatmaps(points, size=SIZE)))

    clip = render_clip(generator, info, face, points, chunk_size=2)
    assert_frames_match(clip.frames, expected)
    assert clip.attention is None and clip.color is None


def test_input_first_replaces_frame_0_with_the_untouched_face(ganimation, face, aus):
    generator, info = ganimation
    plain = render_clip(generator, info, face, aus, return_maps=True)
    clip = render_clip(generator, info, face, aus, input_first=True, return_maps=True, chunk_size=2)
    assert clip.frames.shape == (FRAMES, SIZE, SIZE, 3)
    np.testing.assert_array_equal(clip.frames[0], face)
    np.testing.assert_array_equal(clip.frames[1:], plain.frames[1:])
    assert (clip.attention[0] == 1).all()
    np.testing.assert_array_equal(clip.color[0], face)


def test_bf16_on_cpu_is_close_to_fp32(ganimation, face, aus):
    generator, info = ganimation
    reference = render_clip(generator, info, face, aus).frames.astype(int)
    bf16 = render_clip(generator, info, face, aus, precision="bf16").frames.astype(int)
    assert np.abs(bf16 - reference).mean() < 8


@pytest.mark.parametrize("kwargs,message", [
    ({"precision": "fp16"}, "CUDA"),
    ({"precision": "int8"}, "precision"),
    ({"chunk_size": 0}, "chunk_size"),
])
def test_bad_options_are_rejected(ganimation, face, aus, kwargs, message):
    generator, info = ganimation
    with pytest.raises(ValueError, match=message):
        render_clip(generator, info, face, aus, **kwargs)


def test_bad_inputs_are_rejected(ganimation, face, aus):
    generator, info = ganimation
    with pytest.raises(ValueError, match="64x64 but the model takes 32x32"):
        render_clip(generator, info, np.zeros((64, 64, 3), np.uint8), aus)
    with pytest.raises(ValueError, match="uint8"):
        render_clip(generator, info, face.astype(np.float32), aus)
    with pytest.raises(ValueError, match="square"):
        render_clip(generator, info, face[:, :28], aus)
    with pytest.raises(ValueError, match=r"\(T, 17\)"):
        render_clip(generator, info, face, aus[:, :10])
    with pytest.raises(ValueError, match="no frames"):
        render_clip(generator, info, face, aus[:0])


def test_unknown_image_size_accepts_any_square_multiple_of_four(ganimation, face, aus):
    generator, _ = ganimation
    info = describe_generator(generator)  # image_size None, as for published weights
    big = np.tile(face, (2, 2, 1))
    assert render_clip(generator, info, big, aus).frames.shape == (FRAMES, 2 * SIZE, 2 * SIZE, 3)
    with pytest.raises(ValueError, match="multiple of 4"):
        render_clip(generator, info, face[:30, :30], aus)
