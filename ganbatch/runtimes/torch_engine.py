"""The torch engine: the checkpoint's generator in PyTorch, eager or torch.compile'd; fp32, or bf16/fp16 autocast."""
from __future__ import annotations

import contextlib

import torch

from ganbatch.models.checkpoint import GeneratorInfo
from ganbatch.models.networks import AttentionGenerator
from ganbatch.runtimes.base import Runtime, check_precision, set_threads
from ganbatch.runtimes.registry import Engine

ENGINE = Engine("torch", "TorchRuntime", reads=("checkpoint",), export=None,
                precisions={"cpu": ("fp32", "bf16"), "cuda": ("fp32", "fp16", "bf16")})
_AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class TorchRuntime(Runtime):
    """The generator in PyTorch: eager (or torch.compile'd with compile=True); fp32, or bf16/fp16 through autocast.

    The generator is moved to device (and left in its mode: `open_model` gives eval mode; a generator being trained
    keeps its own). int8 is not offered (export to OpenVINO or ONNX for that).
    """

    name = "torch"

    def __init__(self, generator: AttentionGenerator, info: GeneratorInfo, *, device="cpu", precision: str = "fp32",
                 threads: int | None = None, compile: bool = False):
        device = torch.device(device)
        check_precision(device, precision)
        if precision == "int8":
            raise ValueError("the torch runtime has no int8; export the model with --precision int8 and use "
                             "--runtime openvino or onnxruntime")
        used_threads = set_threads(threads) if device.type == "cpu" else None
        super().__init__(info, device, precision, used_threads)
        self.generator = generator.to(device)
        self._forward = torch.compile(self.generator) if compile else self.generator
        if compile:
            self.details = "compiled"

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_AUTOCAST_DTYPES[self.precision])

    def _run(self, x, cond):
        with self._autocast():
            return self._forward(x.to(self.device), cond.to(self.device))


