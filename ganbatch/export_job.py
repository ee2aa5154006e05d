"""The runner of `kind: export` jobs (`ganbatch.runner` protocol), and `export`: SOURCE's generator as a checkpoint,
ONNX or OpenVINO.

SOURCE is a training run (OUT/NAME with checkpoint_<step>/ folders; its latest readable checkpoint is used) or any
model `--model` takes (`demo` and the other bundled names, our checkpoints and the published layouts; local or
s3://). `ganbatch.export.write_generator` writes it (a temporary name, then a rename or a whole upload).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ganbatch.errors import ExportError
from ganbatch.jobs.export import ExportJob


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


@dataclass
class ExportResult:
    """What was written (`outputs["model"]`) and the line that says so."""

    message: str
    outputs: dict[str, str] = field(default_factory=dict)
    ok: bool = True


def _is_model(source: str) -> bool:
    """Whether SOURCE names a model rather than a training run (a folder of checkpoints)."""
    from ganbatch.io import storage
    from ganbatch.models.export import IR_MODEL
    from ganbatch.models.locate import resolve_model_uri

    if resolve_model_uri(source) != source or source.lower().endswith((".onnx", ".xml")):  # a bundled name
        return True
    if storage.is_s3(source):
        return storage.exists(source) or storage.exists(storage.join(source, IR_MODEL))
    path = Path(source.removeprefix("file://"))
    return path.is_file() or (path / IR_MODEL).is_file()


def _open_generator(source: str, trust_pickle: bool):
    """(generator, info, checkpoint step or None) of a training run or a model."""
    if not _is_model(source):
        from ganbatch.train.export import run_generator

        return run_generator(source)
    from ganbatch.runtimes import open_source

    with open_source(source, trust_pickle=trust_pickle) as opened:
        if opened.generator is None:
            raise ValueError(f"{source} is already an exported {opened.kind} model; export from its checkpoint")
        return opened.generator, opened.info, None


def export(source: str, out: str, *, format: str | None = None, precision: str = "fp32",
           calibration: str = "synth", trust_pickle: bool = False) -> Exported:
    """Export SOURCE's generator to out (see the module docstring); format defaults to what out's name implies.

    pt is ganbatch's checkpoint format (fp32 only); onnx and openvino take precision fp32, fp16 or int8 (int8
    calibrated on `calibration`: "synth" faces or a folder of face crops). Raises ExportError (from
    ganbatch.train.export) for runs without checkpoints, ValueError for bad options, CheckpointError for
    unreadable models and ExtraMissingError when onnx/openvino/nncf are not installed.
    """
    from ganbatch.export import check_options, write_generator

    format = check_options(out, format, precision, calibration)
    generator, info, step = _open_generator(source, trust_pickle)
    write_generator(generator, info, out, format=format, precision=precision, calibration=calibration)
    return Exported(out=out, format=format, precision=precision, source=source, step=step)


def plan_export(job: ExportJob) -> str:
    """What the export would read and write."""
    shown = job.format or "from the name of out"
    precision = "" if job.format == "pt" else f", {job.precision}" + (
        f" calibrated on {job.calibration}" if job.precision == "int8" else "")
    return f"export the generator of {job.source} (a run's latest checkpoint, or the model) to {job.out} " \
           f"(format {shown}{precision})"


def run_export(job: ExportJob) -> ExportResult:
    """Export the generator; an ExportError (one line) for anything the user can fix."""
    from ganbatch.io.storage import StorageError
    from ganbatch.models.checkpoint import CheckpointError
    from ganbatch.models.export import ExtraMissingError

    try:
        exported = export(job.source, job.out, format=job.format, precision=job.precision,
                          calibration=job.calibration, trust_pickle=job.trust_pickle)
    except (CheckpointError, ExtraMissingError, StorageError, ValueError) as error:
        raise ExportError(str(error)) from None
    return ExportResult(message=exported.describe(), outputs={"model": exported.out})
