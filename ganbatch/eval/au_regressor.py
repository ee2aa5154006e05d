"""AU regressor: a small CNN that reads the 17 OpenFace AU intensities off a face crop of the synthetic world.

The evaluator uses it to check whether generated frames show the expression they were asked for. It is trained once
by `scripts/train_au_regressor.py` on synthetic identities that the evaluation never uses, and shipped as
`ganbatch/assets/au_regressor.pt`:

    {"format": "ganbatch-au-regressor", "version": 1, "config": <JSON>, "state_dict": {name: tensor}}

read with `torch.load(weights_only=True)`. The config holds the network's hyper-parameters (`input_size`, `width`),
the AU order, how it was trained and its accuracy on held-out identities (`accuracy`).

Inputs of any square size are resized to `input_size` (64 px: it serves 64 px models directly and 128 px models by
antialiased downsampling, the same resize the training data went through).
"""
import functools
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganbatch.io.assets import load_versioned
from ganbatch.io.atomic import atomic_local_path
from ganbatch.targets.aus import AU_NAMES, AU_SCALE, NUM_AUS

FORMAT = "ganbatch-au-regressor"
VERSION = 1
SHIPPED_REGRESSOR = Path(__file__).resolve().parents[1] / "assets" / "au_regressor.pt"


class AURegressorError(Exception):
    """An AU regressor file that is missing or cannot be read."""


def _conv_block(in_channels: int, out_channels: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True)]


class AURegressor(nn.Module):
    """Conv-BN-ReLU stack (4 stride-2 stages, 64 -> 4 px) and a linear read-out of the flattened 4x4 features.

    Keeping the 4x4 layout (no global pooling) lets the read-out know where on the face a feature is (brows vs
    mouth). `forward` takes float images (N, 3, input_size, input_size) in [0, 1] and returns unclamped AU
    intensities (N, 17); `predict_aus` clamps them to 0-5. `info` holds the loaded file's config (training and
    accuracy), empty for a fresh network.
    """

    def __init__(self, width: int = 32, input_size: int = 64):
        super().__init__()
        if input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {input_size}")
        self.width = width
        self.input_size = input_size
        self.info: dict = {}
        self.features = nn.Sequential(
            *_conv_block(3, width, 2), *_conv_block(width, width, 1),
            *_conv_block(width, 2 * width, 2), *_conv_block(2 * width, 2 * width, 1),
            *_conv_block(2 * width, 4 * width, 2), *_conv_block(4 * width, 4 * width, 2),
        )
        self.readout = nn.Linear(4 * width * (input_size // 16) ** 2, NUM_AUS)

    def hparams(self) -> dict:
        """The constructor arguments, as stored in a saved file's config."""
        return {"width": self.width, "input_size": self.input_size}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.readout(torch.flatten(self.features(images), 1))


def images_to_input(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 images (N, H, W, 3) -> float32 (N, 3, size, size) in [0, 1], antialiased bilinear resize if needed."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be uint8 (N, H, W, 3) square crops, got {images.dtype} {images.shape}")
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
    if images.shape[1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def save_au_regressor(regressor: AURegressor, path, config: dict | None = None) -> None:
    """Write `regressor` to `path` in the format of the module docstring, atomically; `config` adds metadata."""
    path = Path(path)
    content = {
        "format": FORMAT,
        "version": VERSION,
        "config": json.dumps({**(config or {}), **regressor.hparams(), "au_names": list(AU_NAMES)}),
        "state_dict": {key: tensor.detach().cpu() for key, tensor in regressor.state_dict().items()},
    }
    with atomic_local_path(path) as tmp:
        torch.save(content, tmp)


def load_au_regressor(path=None) -> AURegressor:
    """The regressor saved at `path` (default: the shipped one, loaded once per process), in eval mode.

    Raises AURegressorError naming the file when it is missing, not in this format, or its weights do not fit.
    """
    if path is None:
        return _shipped_regressor()
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _shipped_regressor() -> AURegressor:
    return _load(SHIPPED_REGRESSOR)


def _load(path: Path) -> AURegressor:
    state_dict, config = load_versioned(path, format=FORMAT, version=VERSION, what="AU regressor",
                                        error=AURegressorError)
    if config.get("au_names") != list(AU_NAMES):
        raise AURegressorError(f"{path}: config au_names {config.get('au_names')} differ from {list(AU_NAMES)}")
    regressor = AURegressor(width=config["width"], input_size=config["input_size"])
    try:
        regressor.load_state_dict(state_dict)
    except RuntimeError as error:
        raise AURegressorError(f"{path}: weights do not fit the configured network: {error}") from error
    regressor.info = config
    return regressor.eval()


def predict_aus(images: np.ndarray, regressor: AURegressor | None = None, batch_size: int = 256) -> np.ndarray:
    """AU intensities float32 (N, 17), clamped to 0-5, that `regressor` (default: the shipped one) reads off uint8
    square crops (N, H, W, 3) of any size."""
    regressor = load_au_regressor() if regressor is None else regressor
    images = np.asarray(images)
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = images_to_input(images[start:start + batch_size], regressor.input_size)
            outputs.append(regressor(x).clamp(0, AU_SCALE))
    if not outputs:
        return np.zeros((0, NUM_AUS), np.float32)
    return torch.cat(outputs).numpy()
