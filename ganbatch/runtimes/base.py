"""The runtime interface: a generator opened for inference on one engine, device and precision.

`Runtime(x, cond) -> (image, color, attention)` has the contract of `AttentionGenerator.forward` (x in the family's
input range, cond from `family.targets_to_cond`): float32 CPU tensors out, run under torch.inference_mode with any
reduced precision handled inside. The engines are modules of this package listed in `ganbatch.runtimes.registry`;
`ganbatch.runtimes.open_runtime` makes one from a model URI.
"""
from __future__ import annotations

import numpy as np
import torch

from ganbatch.models.checkpoint import GeneratorInfo

PRECISIONS = ("fp32", "fp16", "bf16", "int8")


class RuntimeUnavailableError(RuntimeError):
    """The asked-for runtime cannot run here: its optional package is missing, or it does not support the
    device / precision / model file. The message names what to install or use instead."""


class Runtime:
    """A model opened for inference. Subclasses set `name` and implement `_run`.

    info: the model's GeneratorInfo; device: where it computes (torch.device); precision: fp32, fp16, bf16 or int8;
    threads: CPU threads it uses (None when not set or not applicable); details: extra words describe() appends.
    """

    name: str = ""
    auto = None  # with runtime="auto": the AutoDecision (machine, candidates, gate figures) that picked it

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




def import_engine(module: str, extra: str = "cpu-fast"):
    """Import an engine's optional package, or raise RuntimeUnavailableError naming the pip extra that brings it."""
    from ganbatch.models.export import ExtraMissingError, require

    try:
        return require(module, extra)
    except ExtraMissingError as error:
        raise RuntimeUnavailableError(str(error)) from error


def graph_feeds(x: torch.Tensor, cond: torch.Tensor) -> dict[str, np.ndarray]:
    """An exported graph's named inputs for a batch: float32, contiguous."""
    return {"x": np.ascontiguousarray(x.numpy(), np.float32), "cond": np.ascontiguousarray(cond.numpy(), np.float32)}
