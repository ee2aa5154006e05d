"""The runner of `kind: export` jobs (`ganbatch.runner` protocol): an ExportJob through `ganbatch.export`."""
from dataclasses import dataclass, field

from ganbatch.errors import ExportError
from ganbatch.jobs.export import ExportJob


@dataclass
class ExportResult:
    """What was written (`outputs["model"]`) and the line that says so."""

    message: str
    outputs: dict[str, str] = field(default_factory=dict)
    ok: bool = True


def plan_export(job: ExportJob) -> str:
    """What the export would read and write."""
    shown = job.format or "from the name of out"
    precision = "" if job.format == "pt" else f", {job.precision}" + (
        f" calibrated on {job.calibration}" if job.precision == "int8" else "")
    return f"export the generator of {job.source} (a run's latest checkpoint, or the model) to {job.out} " \
           f"(format {shown}{precision})"


def run_export(job: ExportJob) -> ExportResult:
    """Export the generator; an ExportError (one line) for anything the user can fix."""
    from ganbatch.export import export
    from ganbatch.io.storage import StorageError
    from ganbatch.models.checkpoint import CheckpointError
    from ganbatch.models.export import ExtraMissingError

    try:
        exported = export(job.source, job.out, format=job.format, precision=job.precision,
                          calibration=job.calibration, trust_pickle=job.trust_pickle)
    except (CheckpointError, ExtraMissingError, StorageError, ValueError) as error:
        raise ExportError(str(error)) from None
    return ExportResult(message=exported.describe(), outputs={"model": exported.out})
