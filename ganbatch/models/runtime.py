"""Runtimes: how a generator runs (engine, device, precision), behind one call.

`open_runtime(model_uri, runtime=..., device=..., precision=...)` opens a model for inference and returns a
`Runtime`: `runtime(x, cond) -> (image, color, attention)`, the same contract as `AttentionGenerator.forward` (x in the
family's input range, cond from `family.targets_to_cond`), float32 CPU tensors out, run under torch.inference_mode
with any reduced precision handled inside. The renderer, the animate generate stage, eval and the benchmarks all call
this interface, so every engine is checked by the same parity tests.

This module holds the interface and the torch runtime (eager, or torch.compile'd).
"""
from __future__ import annotations

import contextlib

import torch

from ganbatch.models.checkpoint import GeneratorInfo
from ganbatch.models.networks import AttentionGenerator

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
_AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
RUNTIMES = ("auto", "torch", "onnxruntime", "openvino", "tensorrt")


class RuntimeUnavailableError(RuntimeError):
    """The asked-for runtime cannot run here: its optional package is missing, or it does not support the
    device / precision / model file. The message names what to install or use instead."""


class Runtime:
    """A model opened for inference. Subclasses set `name` and implement `_run`.

    info: the model's GeneratorInfo; device: where it computes (torch.device); precision: fp32, fp16, bf16 or int8;
    threads: CPU threads it uses (None when not set or not applicable).
    """

    name: str = ""

    def __init__(self, info: GeneratorInfo, device, precision: str, threads: int | None = None):
        self.info = info
        self.device = torch.device(device)
        self.precision = precision
        self.threads = threads
        self.details = ""  # extra words for describe(), e.g. "compiled" or the probe's result

    def describe(self) -> str:
        """One line: engine, precision, device and threads, e.g. "torch fp32 on cpu, 2 threads"."""
        line = f"{self.name} {self.precision} on {self.device}"
        if self.threads:
            line += f", {self.threads} thread{'s' if self.threads != 1 else ''}"
        return line + (f" ({self.details})" if self.details else "")

    def __call__(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image, color, attention) for a batch: x (B,3,H,W) and cond as for the family's generator; float32 CPU
        tensors out."""
        with torch.inference_mode():
            return tuple(out.float().cpu() for out in self._run(x.float(), cond.float()))

    def _run(self, x: torch.Tensor, cond: torch.Tensor):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def check_precision(device: torch.device, precision: str) -> None:
    """ValueError for an unknown precision or fp16 on CPU (torch's CPU fp16 kernels are slow and incomplete)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("precision fp16 needs a CUDA device; use fp32 or bf16 on CPU")


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count when threads is given; returns the count in use."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


class TorchRuntime(Runtime):
    """The generator in PyTorch: eager (or torch.compile'd with compile=True); fp32, or bf16/fp16 through autocast.

    The generator is moved to device and put in eval mode. int8 is not offered (export to OpenVINO for that).
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
        self.generator = generator.to(device).eval()
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


def open_runtime(model_uri: str, *, runtime: str = "torch", device="cpu", precision: str = "fp32",
                 threads: int | None = None, trust_pickle: bool = False) -> Runtime:
    """Open the model that model_uri names (`demo`, a checkpoint path or s3:// URI) on the given runtime, device
    and precision; see the module docstring.

    Raises RuntimeUnavailableError when the runtime cannot run here, ValueError for a bad runtime, precision or
    device, and the errors of `ganbatch.models.hub.open_model`.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime != "torch":
        raise RuntimeUnavailableError(f"runtime {runtime} is not available yet; use --runtime torch")
    from ganbatch.models.hub import open_model

    generator, info = open_model(model_uri, trust_pickle=trust_pickle)
    return TorchRuntime(generator, info, device=device, precision=precision, threads=threads)
