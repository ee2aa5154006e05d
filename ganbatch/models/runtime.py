"""Runtimes: how a generator runs (engine, device, precision), behind one call.

`open_runtime(model_uri, runtime=..., device=..., precision=...)` opens a model for inference and returns a
`Runtime`: `runtime(x, cond) -> (image, color, attention)`, the same contract as `AttentionGenerator.forward` (x in the
family's input range, cond from `family.targets_to_cond`), float32 CPU tensors out, run under torch.inference_mode
with any reduced precision handled inside. The renderer, the animate generate stage, eval and the benchmarks all call
this interface, so every engine is checked by the same parity tests.

This module holds the interface, the torch runtime (eager, or torch.compile'd) and how a model URI becomes a
runtime; the exported-graph engines are in `runtime_engines`, the `auto` choice in `runtime_auto`.
"""
from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ganbatch.io.uris import StorageError, is_s3
from ganbatch.models.checkpoint import GeneratorInfo
from ganbatch.models.export import (
    IR_CONFIG,
    IR_MODEL,
    IR_WEIGHTS,
    ExtraMissingError,
    export_generator,
    exported_kind,
    read_exported_info,
)
from ganbatch.models.locate import ModelNotFoundError, local_model_file, open_model, resolve_model_uri
from ganbatch.models.networks import AttentionGenerator

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
_AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
RUNTIMES = ("auto", "torch", "onnxruntime", "openvino", "tensorrt")
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


class RuntimeUnavailableError(RuntimeError):
    """The asked-for runtime cannot run here: its optional package is missing, or it does not support the
    device / precision / model file. The message names what to install or use instead."""


class Runtime:
    """A model opened for inference. Subclasses set `name` and implement `_run`.

    info: the model's GeneratorInfo; device: where it computes (torch.device); precision: fp32, fp16, bf16 or int8;
    threads: CPU threads it uses (None when not set or not applicable); details: extra words describe() appends.
    """

    name: str = ""
    auto = None  # with runtime="auto": the AutoChoice (machine, probe rows) that picked this runtime

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


@dataclass
class ModelSource:
    """A model opened from its URI, before choosing how to run it: a checkpoint's generator (kind "checkpoint") or
    a local exported file or folder (kind "onnx" / "openvino"), with its info either way."""

    kind: str
    info: GeneratorInfo
    generator: AttentionGenerator | None = None
    path: Path | None = None

    @property
    def exported_precision(self) -> str | None:
        """The precision an exported model was written at (None for a checkpoint)."""
        return self.info.config["export"]["precision"] if self.kind != "checkpoint" else None


def _exported_kind(location: str) -> str | None:
    if location.lower().endswith(".onnx"):
        return "onnx"
    if location.lower().endswith(".xml"):
        return "openvino"
    if location.lower().endswith(_CHECKPOINT_SUFFIXES):
        return None
    if is_s3(location):
        from ganbatch.io import storage  # the cloud stack only for s3:// models, as in locate.local_model_file

        return "openvino" if storage.exists(storage.join(location, IR_MODEL)) else None
    return exported_kind(location.removeprefix("file://"))


@contextlib.contextmanager
def _local_export(location: str, kind: str) -> Iterator[Path]:
    """A local path holding the exported model at location: itself when local, a temporary download for S3."""
    if kind == "onnx" or not is_s3(location):
        with local_model_file(location) as path:
            yield path
        return
    from ganbatch.io import storage

    folder = location.rsplit("/", 1)[0] if location.lower().endswith(".xml") else location
    with tempfile.TemporaryDirectory(prefix="ganbatch-ir-") as tmp:
        for name in (IR_MODEL, IR_WEIGHTS, IR_CONFIG):
            storage.download_file(storage.join(folder, name), Path(tmp) / name)
        yield Path(tmp)


@contextlib.contextmanager
def open_source(model_uri: str, *, trust_pickle: bool = False) -> Iterator[ModelSource]:
    """The model model_uri names (`demo`, a checkpoint, an .onnx file or OpenVINO IR folder; local or s3://), open
    for the duration of the block (S3 downloads are removed after it). Raises the errors of `open_model`, and
    ModelNotFoundError / CheckpointFormatError for missing or unreadable exported models."""
    location = resolve_model_uri(model_uri)
    kind = _exported_kind(location)
    if kind is None:
        generator, info = open_model(model_uri, trust_pickle=trust_pickle)
        yield ModelSource("checkpoint", info, generator=generator)
        return
    try:
        with _local_export(location, kind) as path:
            yield ModelSource(kind, read_exported_info(path, source=location), path=path)
    except StorageError as error:
        raise ModelNotFoundError(f"model {model_uri}: {error.reason}") from error


def model_info(model_uri: str, *, trust_pickle: bool = False) -> GeneratorInfo:
    """The GeneratorInfo of any model URI open_runtime takes (checkpoints and exported models)."""
    with open_source(model_uri, trust_pickle=trust_pickle) as source:
        return source.info


def _run_precision(source: ModelSource, runtime: str, precision: str) -> str:
    """The precision an exported model runs at for the asked precision: its own (fp32, the default, means "as
    exported"), or a compute hint the engine applies to it (OpenVINO bf16, TensorRT fp16 on an fp32 file)."""
    written = source.exported_precision
    if precision in ("fp32", written):
        return written
    if (runtime, precision) in (("openvino", "bf16"), ("tensorrt", "fp16")) and written in ("fp32", "fp16"):
        return precision
    raise ValueError(f"{source.info.source} was exported at {written}; {runtime} runs it at {written} "
                     f"(export the model again with --precision {precision})")


def _engine_file(source: ModelSource, runtime: str, precision: str, folder: Path) -> Path:
    """The exported file the engine reads: the source's own, or the checkpoint exported into folder."""
    if source.kind == "onnx" or (source.kind == "openvino" and runtime == "openvino"):
        return source.path
    if source.kind == "openvino":
        raise RuntimeUnavailableError(f"{source.info.source} is an OpenVINO IR, which only --runtime openvino "
                                      "runs; export an ONNX file for the other runtimes")
    quantised = precision == "int8"
    if precision in ("bf16", "fp16") and runtime == "onnxruntime":
        raise ValueError(f"onnxruntime runs a checkpoint at fp32 or int8; for {precision}, export the model with "
                         f"--precision {precision}, or use --runtime openvino (bf16) / tensorrt (fp16)")
    format = "openvino" if runtime == "openvino" and quantised else "onnx"
    out = folder / ("model" if format == "openvino" else "model.onnx")
    return export_generator(source.generator, source.info, out, format=format,
                            precision="int8" if quantised else "fp32")


def build_runtime(source: ModelSource, runtime: str, *, device: torch.device, precision: str,
                  threads: int | None = None) -> Runtime:
    """A Runtime for an opened model (see open_runtime); `runtime` is a concrete name, not "auto"."""
    if runtime == "torch":
        if source.generator is None:
            raise RuntimeUnavailableError(f"{source.info.source} is an exported {source.kind} model; run it with "
                                          "--runtime onnxruntime, openvino or tensorrt (torch needs a checkpoint)")
        return TorchRuntime(source.generator, source.info, device=device, precision=precision, threads=threads)
    from ganbatch.models import runtime_engines

    engine = {"onnxruntime": runtime_engines.OnnxRuntime, "openvino": runtime_engines.OpenVinoRuntime,
              "tensorrt": runtime_engines.TensorRTRuntime}[runtime]
    if source.kind == "checkpoint":
        check_precision(device, precision)
        run_at = precision
    else:
        run_at = _run_precision(source, runtime, precision)
    with tempfile.TemporaryDirectory(prefix="ganbatch-runtime-") as folder:
        try:
            path = _engine_file(source, runtime, run_at, Path(folder))
        except ExtraMissingError as error:
            raise RuntimeUnavailableError(str(error)) from error
        # every engine reads its file completely (or maps it) while it is built, so the folder can go afterwards
        return engine(path, source.info, device=device, precision=run_at, threads=threads)


def open_runtime(model_uri: str, *, runtime: str = "torch", device="cpu", precision: str = "fp32",
                 threads: int | None = None, trust_pickle: bool = False) -> Runtime:
    """Open the model that model_uri names (`demo`, a checkpoint, an exported .onnx file or OpenVINO IR folder;
    local or s3://) on the given runtime, device and precision; see the module docstring.

    A checkpoint runs on any runtime (it is exported on the fly for the others; int8 is calibrated on synthetic
    faces); an exported model runs at the precision it was written at, on the engines that read it. runtime
    "auto" picks the fastest runtime and precision available here that stays within tolerance of fp32 (then
    precision is ignored; see `ganbatch.models.runtime_auto`). Raises RuntimeUnavailableError when the runtime
    cannot run here (naming the extra to install), ValueError for a bad runtime, precision or device, and the
    errors of `ganbatch.models.locate.open_model`.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    device = torch.device(device)
    with open_source(model_uri, trust_pickle=trust_pickle) as source:
        if runtime == "auto":
            from ganbatch.models.runtime_auto import choose_runtime

            return choose_runtime(source, device=device, threads=threads)
        return build_runtime(source, runtime, device=device, precision=precision, threads=threads)
