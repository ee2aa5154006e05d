"""A generator written to a destination as a ganbatch checkpoint, ONNX or OpenVINO (`write_generator`): what
`ganbatch export` (ganbatch.export_job) and a finished training run (model.pt) write.

The output is written to a local temporary name and then renamed, or uploaded to S3 whole (an IR folder's model.xml
last, so a folder is only recognised as a model once complete). Where the generator comes from (a training run or a
model) is the caller's business: this module sits below the trainer and imports none of it.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ganbatch.choices import EXPORT_FORMATS, EXPORT_PRECISIONS
from ganbatch.io import storage
from ganbatch.models.checkpoint import GeneratorInfo, save_generator
from ganbatch.models.export import IR_CONFIG, IR_MODEL, IR_WEIGHTS, export_generator
from ganbatch.models.networks import AttentionGenerator


def guess_format(out: str) -> str:
    """The format an output path implies: .onnx -> onnx, .pt/.pth -> pt, anything else (a folder) -> openvino."""
    suffix = Path(out.rstrip("/")).suffix.lower()
    return {".onnx": "onnx", ".pt": "pt", ".pth": "pt"}.get(suffix, "openvino")


def _local_target(out: str) -> Path | None:
    return None if storage.is_s3(out) else Path(out.removeprefix("file://"))


def _publish(local: Path, out: str) -> None:
    """Move the finished export to out: a rename when local (same folder), uploads (model.xml last) for S3."""
    target = _local_target(out)
    if target is not None:
        if local.is_dir() and target.is_dir():
            shutil.rmtree(target)
        local.replace(target)
        return
    if local.is_file():
        storage.upload_file(local, out)
        return
    for name in (IR_WEIGHTS, IR_CONFIG, IR_MODEL):
        storage.upload_file(local / name, storage.join(out, name))


def check_options(out: str, format: str | None, precision: str, calibration: str) -> str:
    """The format to write (format, else what out's name implies); ValueError for options that do not go together.

    pt is ganbatch's checkpoint format (fp32 only); onnx and openvino take precision fp32, fp16 or int8 (int8
    calibrated on `calibration`: "synth" faces or a folder of face crops)."""
    format = format or guess_format(out)
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    if precision not in EXPORT_PRECISIONS or (format == "pt" and precision != "fp32"):
        allowed = "fp32" if format == "pt" else ", ".join(EXPORT_PRECISIONS)
        raise ValueError(f"--precision for --format {format} must be {allowed}, got {precision!r}")
    if calibration != "synth" and not Path(calibration).is_dir():
        raise ValueError(f"--calibration must be 'synth' or a folder of face crops; {calibration} is not a folder")
    return format


def write_generator(generator: AttentionGenerator, info: GeneratorInfo, out: str, *, format: str | None = None,
                    precision: str = "fp32", calibration: str = "synth") -> str:
    """Write generator (described by info) to out in format (see `check_options`); returns the format written.

    Raises ValueError for bad options and ExtraMissingError when onnx/openvino/nncf are not installed."""
    format = check_options(out, format, precision, calibration)
    target = _local_target(out)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ganbatch-export-", dir=target.parent if target else None) as folder:
        local = Path(folder) / ("model.pt" if format == "pt" else "model.onnx" if format == "onnx" else "model")
        if format == "pt":
            save_generator(generator, local, info.config)
        else:
            export_generator(generator, info, local, format=format, precision=precision, calibration=calibration)
        _publish(local, out)
    return format
