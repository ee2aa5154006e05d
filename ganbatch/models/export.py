"""Exported generators: ONNX files and OpenVINO IR folders that carry ganbatch's checkpoint config.

- ONNX (`model.onnx`): the generator traced with torch.onnx (inputs `x`, `cond`; outputs `image`, `color`,
  `attention`; batch, height and width dynamic), the config JSON in the model's metadata_props under
  `ganbatch_config`. fp16 converts the weights (float32 inputs and outputs kept); int8 is ONNX Runtime's static
  QDQ quantisation (per-channel int8 weights, activations calibrated on representative inputs).
- OpenVINO IR (a folder): `model.xml` + `model.bin` converted from that ONNX graph, and `config.json`. fp16 stores
  fp16 weights; int8 is NNCF post-training quantisation on the calibration inputs.

The config is the same JSON as a ganbatch checkpoint's (family, hparams, trunk options, condition layout, image
size, provenance), plus `variant` (the layout exported from) and `export` (format, precision, calibration), so
`read_exported_info` gives the same GeneratorInfo without loading any engine's weights. Writing is atomic: a temporary
name in the same folder, renamed when complete. Needs the `cpu-fast` extra (onnx, onnxruntime, openvino, nncf).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from ganbatch.families import get_family
from ganbatch.models.checkpoint import CheckpointFormatError, GeneratorInfo, generator_config
from ganbatch.models.networks import AttentionGenerator

FORMATS = ("onnx", "openvino")
EXPORT_PRECISIONS = ("fp32", "fp16", "int8")
CONFIG_KEY = "ganbatch_config"
IR_MODEL, IR_WEIGHTS, IR_CONFIG = "model.xml", "model.bin", "config.json"
INPUTS, OUTPUTS = ("x", "cond"), ("image", "color", "attention")
OPSET = 17
MISSING_ENV = "GANBATCH_RUNTIMES_MISSING"
# OpenVINO op types int8 leaves in float. NNCF's CPU defaults would also put 8-bit quantisers on the inputs of
# instance norm (MVN: a conv's whole output, biases and all, on one per-tensor grid before the norm rescales its
# small per-face variations), on the residual sums, and on the composition A*x + (1-A)*C (the attention, colour and
# input image themselves rounded to 256 levels). None of them is int8 arithmetic, and together they were most of
# int8's error and most of its jitter: on the bundled demo, `ganbatch eval` monotone steps 0.884 -> 0.964 (torch
# fp32 0.977), PSNR 36.64 -> 36.83 dB (fp32 36.88); on the random full-size generator, gate PSNR 36.5 -> 43.0 dB.
FLOAT_OPS = ("MVN", "Multiply", "Subtract", "Add")
# What an export of given inputs holds; raised when that changes (2: int8 quantises the convolutions only; 3: it
# calibrates on 16 synthetic faces, not 32), so that the runtime cache builds its exports again instead of serving
# the old ones.
EXPORT_RECIPE = 3


class ExtraMissingError(ImportError):
    """An optional engine package is not installed; the message names the pip extra that brings it."""


def missing_packages() -> frozenset[str]:
    """Packages to treat as not installed: GANBATCH_RUNTIMES_MISSING, comma-separated (a seam for tests and for
    ruling an engine out on a machine)."""
    return frozenset(name.strip() for name in os.environ.get(MISSING_ENV, "").split(",") if name.strip())


def require(module: str, extra: str = "cpu-fast"):
    """Import an optional package, or raise ExtraMissingError naming the extra (`pip install ganbatch[extra]`)."""
    import importlib

    try:
        if module.split(".")[0] in missing_packages():
            raise ImportError(f"{module} ruled out by {MISSING_ENV}")
        return importlib.import_module(module)
    except ImportError as error:
        raise ExtraMissingError(f"{module} is not installed: pip install 'ganbatch[{extra}]' "
                                f"(or pip install {module.split('.')[0]})") from error


def export_config(generator: AttentionGenerator, info: GeneratorInfo, *, format: str, precision: str,
                  calibration: str | None = None) -> dict:
    """The config an export carries: the checkpoint's (for foreign layouts, rebuilt from the generator) plus the
    layout it came from and how it was exported."""
    return {
        **generator_config(generator, info.config),
        "image_size": info.image_size,
        "variant": info.variant,
        "export": {"format": format, "precision": precision, "calibration": calibration, "source": info.source},
    }


def info_from_config(config: dict, source: str) -> GeneratorInfo:
    """The GeneratorInfo an exported model's config describes; CheckpointFormatError when it is not one."""
    try:
        get_family(config["family"])
        hparams = {key: int(config["hparams"][key]) for key in ("conv_dim", "repeat_num", "cond_channels")}
        image_size = config.get("image_size")
        if image_size is not None and (not isinstance(image_size, int) or image_size <= 0):
            raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
        config["export"]["precision"]
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointFormatError(f"{source}: invalid ganbatch export config ({type(error).__name__}: {error})") \
            from error
    return GeneratorInfo(family=config["family"], variant=config.get("variant", "ganbatch"),
                         hparams={**hparams, "image_size": image_size}, source=source, config=config, read="header")


def exported_kind(path) -> str | None:
    """"onnx" for an .onnx file, "openvino" for an IR folder (or its model.xml), None for anything else."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if path.suffix.lower() == ".xml" or (path.is_dir() and (path / IR_MODEL).is_file()):
        return "openvino"
    return None


def read_exported_info(path, source: str | None = None) -> GeneratorInfo:
    """The GeneratorInfo of a local exported model (.onnx file or OpenVINO IR folder), read from its config only."""
    path = Path(path)
    source = source or str(path)
    kind = exported_kind(path)
    if kind == "onnx":
        onnx = require("onnx")
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as error:
            raise CheckpointFormatError(f"{source}: not a readable ONNX file ({type(error).__name__}: {error})") \
                from error
        props = {prop.key: prop.value for prop in model.metadata_props}
        if CONFIG_KEY not in props:
            raise CheckpointFormatError(f"{source}: this ONNX file has no {CONFIG_KEY} metadata; export it with "
                                        "`ganbatch export MODEL --format onnx`")
        text = props[CONFIG_KEY]
    elif kind == "openvino":
        folder = path.parent if path.suffix.lower() == ".xml" else path
        if not (folder / IR_CONFIG).is_file():
            raise CheckpointFormatError(f"{source}: OpenVINO IR without {IR_CONFIG}; export it with "
                                        "`ganbatch export MODEL --format openvino`")
        text = (folder / IR_CONFIG).read_text()
    else:
        raise CheckpointFormatError(f"{source}: not an exported model (.onnx file or OpenVINO IR folder)")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise CheckpointFormatError(f"{source}: export config is not JSON ({error})") from error
    return info_from_config(config, source)


def _example_inputs(generator: AttentionGenerator, info: GeneratorInfo) -> tuple[torch.Tensor, torch.Tensor]:
    family = get_family(generator.family)
    size = info.image_size or family.default_image_size
    x = torch.zeros(2, 3, size, size)
    cond_shape = (2, generator.cond_channels) if family.condition == "aus" else (2, generator.cond_channels, size, size)
    return x, torch.zeros(cond_shape)


def trace_onnx(generator: AttentionGenerator, info: GeneratorInfo, path) -> None:
    """Write the fp32 ONNX graph of generator to path (no config): batch, height and width are dynamic."""
    axes = {"x": {0: "batch", 2: "height", 3: "width"}, "image": {0: "batch", 2: "height", 3: "width"},
            "color": {0: "batch", 2: "height", 3: "width"}, "attention": {0: "batch", 2: "height", 3: "width"},
            "cond": {0: "batch"} if generator.cond_channels and get_family(generator.family).condition == "aus"
            else {0: "batch", 2: "height", 3: "width"}}
    generator = generator.cpu().eval()
    with warnings.catch_warnings():
        # The TorchScript-based exporter (dynamo=False) traces this plain conv net directly, without onnxscript;
        # its deprecation warning and the tracer's shape-check warnings say nothing about this graph.
        warnings.simplefilter("ignore")
        torch.onnx.export(generator, _example_inputs(generator, info), str(path), input_names=list(INPUTS),
                          output_names=list(OUTPUTS), dynamic_axes=axes, opset_version=OPSET, dynamo=False)


def _with_config(onnx_path: Path, config: dict) -> None:
    onnx = require("onnx")
    model = onnx.load(str(onnx_path))
    entry = model.metadata_props.add()
    entry.key, entry.value = CONFIG_KEY, json.dumps(config)
    onnx.save(model, str(onnx_path))


def _to_fp16(onnx_path: Path, out: Path) -> None:
    onnx = require("onnx")
    float16 = require("onnxruntime.transformers.float16")
    model = float16.convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True)
    onnx.save(model, str(out))


class _Reader:
    """ONNX Runtime's calibration data reader protocol over our named-input batches."""

    def __init__(self, batches):
        from ganbatch.models.calibration import iterate_numpy

        self._feeds = iterate_numpy(batches)

    def get_next(self):
        return next(self._feeds, None)


def _to_int8_onnx(onnx_path: Path, out: Path, batches) -> None:
    quantization = require("onnxruntime.quantization")
    quantization.quantize_static(
        str(onnx_path), str(out), _Reader(batches), quant_format=quantization.QuantFormat.QDQ,
        activation_type=quantization.QuantType.QInt8, weight_type=quantization.QuantType.QInt8, per_channel=True,
        calibrate_method=quantization.CalibrationMethod.MinMax)


def fix_spatial_size(model, size: int | None):
    """The OpenVINO model with its inputs' height and width fixed to size (batch stays dynamic), when size is
    known."""
    if size is None:
        return model
    shapes = {}
    for port in model.inputs:
        shape = port.get_partial_shape()
        if shape.rank.get_length() == 4:
            shape[2], shape[3] = size, size
        shapes[port] = shape
    model.reshape(shapes)
    return model


def _openvino_model(onnx_path: Path, info: GeneratorInfo, precision: str, batches):
    ov = require("openvino")
    model = fix_spatial_size(ov.convert_model(str(onnx_path)), info.image_size)
    if precision == "int8":
        nncf = require("nncf")
        from ganbatch.models.calibration import iterate_numpy

        feeds = list(iterate_numpy(batches))
        nncf.set_log_level(logging.ERROR)  # its notes would interleave with ganbatch's output
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):  # and its progress bars
            model = nncf.quantize(model, nncf.Dataset(feeds, lambda feed: (feed["x"], feed["cond"])),
                                  subset_size=len(feeds), ignored_scope=nncf.IgnoredScope(types=list(FLOAT_OPS)))
    return model


def _check(format: str, precision: str) -> None:
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if precision not in EXPORT_PRECISIONS:
        raise ValueError(f"export precision must be one of {', '.join(EXPORT_PRECISIONS)}, got {precision!r}")


def export_generator(generator: AttentionGenerator, info: GeneratorInfo, out, *, format: str = "onnx",
                     precision: str = "fp32", calibration: str = "synth", calibration_batches=None) -> Path:
    """Write generator as an ONNX file or OpenVINO IR folder at local path out (see the module docstring).

    int8 calibrates on calibration_batches ((x, cond) pairs) when given, else on `calibration` ("synth" faces or
    a folder of face crops). Returns out as a Path. Raises ExtraMissingError when an engine package is missing.
    """
    _check(format, precision)
    out = Path(out)
    batches = None
    if precision == "int8":
        from ganbatch.models.calibration import calibration_batches as make_batches

        batches = calibration_batches if calibration_batches is not None else make_batches(info, calibration)
    config = export_config(generator, info, format=format, precision=precision,
                           calibration=calibration if precision == "int8" else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ganbatch-export-", dir=out.parent) as work:
        work = Path(work)
        traced = work / "fp32.onnx"
        trace_onnx(generator, info, traced)
        if format == "onnx":
            final = work / "model.onnx"
            if precision == "fp16":
                _to_fp16(traced, final)
            elif precision == "int8":
                _to_int8_onnx(traced, final, batches)
            else:
                final = traced
            _with_config(final, config)
        else:
            ov = require("openvino")
            final = work / "ir"
            final.mkdir()
            ov.save_model(_openvino_model(traced, info, precision, batches), str(final / IR_MODEL),
                          compress_to_fp16=precision == "fp16")
            (final / IR_CONFIG).write_text(json.dumps(config, indent=1))
        if out.is_dir() and format == "openvino":
            shutil.rmtree(out)
        final.replace(out)
    return out
