"""`ganbatch export` (flags and/or a `--job` manifest -> an ExportJob: a run's or a model's generator to a file)."""
import click

from ganbatch.cli.help import GroupedCommand
from ganbatch.cli.jobs import JOB_PARAMS, job_options, run_command
from ganbatch.cli.options import Flag, SchemaOptions
from ganbatch.jobs.export import ExportJob


EXPORT = SchemaOptions(ExportJob, {
    "inputs": ["trust_pickle"],
    "output": [Flag("out", metavar="PATH|s3://..."), "format", "precision", Flag("calibration", metavar="synth|DIR")],
})


@click.command(cls=GroupedCommand, sections={**EXPORT.sections, "job": JOB_PARAMS})
@click.argument("source", metavar="RUN|MODEL", required=False)
@EXPORT
@job_options(kind="export")
@click.pass_context
def export(ctx, **_):
    """Export the generator of a training run (OUT/NAME, local or s3://; its latest checkpoint) or of any model
    --model takes (demo, a checkpoint of ours or a published layout) as a ganbatch checkpoint, an ONNX file or an
    OpenVINO IR folder; each carries the model's config, so `--model` takes the result anywhere."""
    run_command(ctx, "export", {"source": "source", **EXPORT.fields})
