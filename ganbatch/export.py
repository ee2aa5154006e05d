"""`ganbatch export SOURCE --out PATH`: a training run's or any model's generator as a checkpoint, ONNX or OpenVINO.

SOURCE is a training run (OUT/NAME with checkpoint_<step>/ folders; its latest readable checkpoint is used) or any
model `--model` takes (`demo` and the other bundled names, our checkpoints and the published layouts; local or
s3://). The output is written to a local temporary name and then renamed, or uploaded to S3 whole (an IR folder's
model.xml last, so a folder is only recognised as a model once complete).
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ganbatch.io import storage
from ganbatch.models.checkpoint import GeneratorInfo, save_generator
from ganbatch.models.export import EXPORT_PRECISIONS, IR_CONFIG, IR_MODEL, IR_WEIGHTS, export_generator
from ganbatch.models.locate import resolve_model_uri
from ganbatch.models.networks import AttentionGenerator

FORMATS = ("pt", "onnx", "openvino")


@dataclass(frozen=True)
class Exported:
    """What an export wrote: the output, its format and precision, and where the generator came from."""

    out: str
    format: str
    precision: str
    source: str
    step: int | None = None  # the checkpoint step, when SOURCE is a training run

    def describe(self) -> str:
        """One line for the CLI."""
        origin = f"{self.source} at step {self.step}" if self.step is not None else self.source
        kind = "ganbatch checkpoint" if self.format == "pt" else f"{self.format} {self.precision}"
        return f"exported the generator of {origin} to {self.out} ({kind})"


def guess_format(out: str) -> str:
    """The format an output path implies: .onnx -> onnx, .pt/.pth -> pt, anything else (a folder) -> openvino."""
    suffix = Path(out.rstrip("/")).suffix.lower()
    return {".onnx": "onnx", ".pt": "pt", ".pth": "pt"}.get(suffix, "openvino")


def _is_model(source: str) -> bool:
    """Whether SOURCE names a model rather than a training run (a folder of checkpoints)."""
    if resolve_model_uri(source) != source or source.lower().endswith((".onnx", ".xml")):  # a bundled name
        return True
    if storage.is_s3(source):
        return storage.exists(source) or storage.exists(storage.join(source, IR_MODEL))
    path = Path(source.removeprefix("file://"))
    return path.is_file() or (path / IR_MODEL).is_file()


def _open_generator(source: str, trust_pickle: bool) -> tuple[AttentionGenerator, GeneratorInfo, int | None]:
    if not _is_model(source):
        from ganbatch.train.export import run_generator

        return run_generator(source)
    from ganbatch.runtimes import open_source

    with open_source(source, trust_pickle=trust_pickle) as opened:
        if opened.generator is None:
            raise ValueError(f"{source} is already an exported {opened.kind} model; export from its checkpoint")
        return opened.generator, opened.info, None


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


def export(source: str, out: str, *, format: str | None = None, precision: str = "fp32",
           calibration: str = "synth", trust_pickle: bool = False) -> Exported:
    """Export SOURCE's generator to out (see the module docstring); format defaults to what out's name implies.

    pt is ganbatch's checkpoint format (fp32 only); onnx and openvino take precision fp32, fp16 or int8 (int8
    calibrated on `calibration`: "synth" faces or a folder of face crops). Raises ExportError (from
    ganbatch.train.export) for runs without checkpoints, ValueError for bad options, CheckpointError for
    unreadable models and ExtraMissingError when onnx/openvino/nncf are not installed.
    """
    format = format or guess_format(out)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if precision not in EXPORT_PRECISIONS or (format == "pt" and precision != "fp32"):
        allowed = "fp32" if format == "pt" else ", ".join(EXPORT_PRECISIONS)
        raise ValueError(f"--precision for --format {format} must be {allowed}, got {precision!r}")
    if calibration != "synth" and not Path(calibration).is_dir():
        raise ValueError(f"--calibration must be 'synth' or a folder of face crops; {calibration} is not a folder")
    generator, info, step = _open_generator(source, trust_pickle)
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
    return Exported(out=out, format=format, precision=precision, source=source, step=step)
