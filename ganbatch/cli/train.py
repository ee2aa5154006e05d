"""`ganbatch train` (flags and/or a `--job` manifest -> a TrainJob).

Training modules load only when a command runs, so `ganbatch --help` stays fast.
"""
import click

from ganbatch.cli.help import GroupedCommand
from ganbatch.cli.jobs import JOB_PARAMS, job_options, run_command
from ganbatch.cli.options import Flag, SchemaOptions, leaf_fields
from ganbatch.jobs.train import TrainJob

TRAIN = SchemaOptions(TrainJob, {
    "inputs": ["family", Flag("data", metavar="DIR|s3://...")],
    "output": [Flag("out", metavar="DIR|s3://..."), "name", "checkpoint_every", "log_every", "sample_every",
               "keep_checkpoints"],
    "networks": [*leaf_fields(TrainJob, "network"), Flag("init", metavar="MODEL")],
    "schedule": ["batch_size", "steps", "seed", *leaf_fields(TrainJob, "augment")],
    "objective": leaf_fields(TrainJob, "objective"),
    "optimizer": leaf_fields(TrainJob, "optimizer"),
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
