"""`ganbatch train` (flags and/or a `--job` manifest -> a TrainJob) and `ganbatch export` (a run's generator).

Training modules load only when a command runs, so `ganbatch --help` stays fast.
"""
import click

from ganbatch.cli_help import GroupedCommand
from ganbatch.cli_jobs import JOB_PARAMS, job_options, run_command
from ganbatch.cli_options import Flag, SchemaOptions, leaf_fields
from ganbatch.jobs.train import TrainJob

TRAIN = SchemaOptions(TrainJob, {
    "inputs": ["family", Flag("data", metavar="DIR|s3://...")],
    "output": [Flag("out", metavar="DIR|s3://..."), "name", "checkpoint_every", "log_every", "sample_every",
               "keep_checkpoints"],
    "networks": leaf_fields(TrainJob.model_fields["network"].annotation, "network."),
    "schedule": ["batch_size", "steps", "seed", *leaf_fields(TrainJob.model_fields["augment"].annotation, "augment.")],
    "objective": leaf_fields(TrainJob.model_fields["objective"].annotation, "objective."),
    "optimizer": leaf_fields(TrainJob.model_fields["optimizer"].annotation, "optimizer."),
    "execution": ["execution.address", "execution.workers", "execution.gpus_per_worker", "execution.cpus_per_worker",
                  "execution.threads_per_worker", "execution.precision", "execution.max_failures"],
})


@click.command(cls=GroupedCommand, sections={**TRAIN.sections, "job": JOB_PARAMS})
@TRAIN
@job_options(kind="train")
@click.pass_context
def train(ctx, **_):
    """Train a GANimation or GANnotation model; the run (checkpoints, metrics, samples, model.pt) goes to OUT/NAME/
    and re-running the same OUT/NAME resumes it. Other settings: --job FILE or --set KEY=VALUE."""
    run_command(ctx, "train", TRAIN.fields)


@click.command()
@click.argument("source", metavar="RUN|MODEL")
@click.option("--out", required=True, metavar="PATH|s3://...",
              help="Where to write the generator: a .pt checkpoint, a .onnx file or an OpenVINO IR folder.")
@click.option("--format", "format_", type=click.Choice(["pt", "onnx", "openvino"]),
              help="Output format; default from --out: .onnx -> onnx, .pt/.pth -> pt, otherwise an OpenVINO folder.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32", show_default=True,
              help="Weights of an onnx/openvino export; int8 is post-training quantisation (needs ganbatch[cpu-fast]).")
@click.option("--calibration", default="synth", show_default=True, metavar="synth|DIR",
              help="int8 calibration inputs: synthetic faces, or a folder of face crops.")
@click.option("--trust-pickle", is_flag=True,
              help="Allow checkpoints whose unpickling runs code (only for files you trust).")
def export(source, out, format_, precision, calibration, trust_pickle):
    """Export the generator of a training run (OUT/NAME, local or s3://; its latest checkpoint) or of any model
    --model takes (demo, a checkpoint of ours or a published layout) as a ganbatch checkpoint, an ONNX file or an
    OpenVINO IR folder; each carries the model's config, so `--model` takes the result anywhere."""
    from ganbatch.export import export as export_generator
    from ganbatch.models.checkpoint import CheckpointError
    from ganbatch.models.export import ExtraMissingError
    from ganbatch.io.storage import StorageError
    from ganbatch.train.export import ExportError

    try:
        exported = export_generator(source, out, format=format_, precision=precision, calibration=calibration,
                                    trust_pickle=trust_pickle)
    except (ExportError, CheckpointError, ExtraMissingError, StorageError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(exported.describe())
