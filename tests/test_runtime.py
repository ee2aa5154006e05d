"""Runtimes: the torch runtime's contract, open_runtime on checkpoints, render_clip with a Runtime."""
import numpy as np
import pytest
import torch

from ganbatch.models import GANimationGenerator, describe_generator, save_generator
from ganbatch.models.runtime import Runtime, TorchRuntime, open_runtime
from ganbatch.render import render_clip

SIZE = 32


@pytest.fixture(scope="module")
def ganimation():
    torch.manual_seed(0)
    generator = GANimationGenerator(conv_dim=8, repeat_num=1).eval()
    return generator, describe_generator(generator, image_size=SIZE)


def test_torch_runtime_matches_the_generator_and_returns_float32_cpu(ganimation):
    generator, info = ganimation
    runtime = TorchRuntime(generator, info, threads=1)
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    cond = torch.rand(2, 17)
    with torch.no_grad():
        expected = generator(x, cond)
    outputs = runtime(x, cond)
    for got, want in zip(outputs, expected):
        assert got.dtype == torch.float32 and got.device.type == "cpu"
        torch.testing.assert_close(got, want)
    assert runtime.describe() == "torch fp32 on cpu, 1 thread"
    assert runtime.info is info and runtime.device == torch.device("cpu")


def test_bf16_runtime_runs_under_autocast(ganimation):
    generator, info = ganimation
    runtime = TorchRuntime(generator, info, precision="bf16")
    x, cond = torch.rand(1, 3, SIZE, SIZE), torch.rand(1, 17)
    image = runtime(x, cond)[0]
    assert image.dtype == torch.float32
    with torch.no_grad():
        reference = generator(x, cond)[0]
    assert 0 < (image - reference).abs().max() < 0.1  # reduced precision: close, not bit-equal


@pytest.mark.parametrize("precision,message", [("fp16", "CUDA"), ("int8", "int8"), ("fp8", "precision")])
def test_torch_runtime_rejects_precisions_it_cannot_run(ganimation, precision, message):
    generator, info = ganimation
    with pytest.raises(ValueError, match=message):
        TorchRuntime(generator, info, precision=precision)


def test_open_runtime_loads_a_checkpoint_and_renders_like_the_generator(ganimation, tmp_path):
    generator, info = ganimation
    save_generator(generator, tmp_path / "g.pt", {"image_size": SIZE})
    runtime = open_runtime(str(tmp_path / "g.pt"))
    assert isinstance(runtime, Runtime) and runtime.info.image_size == SIZE
    face = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    aus = np.random.default_rng(1).uniform(0, 5, (3, 17))
    np.testing.assert_array_equal(render_clip(runtime, runtime.info, face, aus).frames,
                                  render_clip(generator, info, face, aus).frames)


def test_open_runtime_rejects_unknown_runtimes():
    with pytest.raises(ValueError, match="runtime must be one of"):
        open_runtime("demo", runtime="tflite")
