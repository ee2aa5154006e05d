"""`ganbatch train` (flags and/or a `--job` manifest -> a TrainJob) and `ganbatch export` (a run's generator).

Training modules load only when a command runs, so `ganbatch --help` stays fast.
"""
import click

from ganbatch.cli_help import GroupedCommand, choice
from ganbatch.cli_jobs import JOB_PARAMS, field_help, job_options, run_command
from ganbatch.jobs.train import TrainJob

TRAIN_FLAGS = {
    "family": "family", "data": "data", "out": "out", "name": "name", "size": "network.size",
    "conv_dim": "network.conv_dim", "res_blocks": "network.res_blocks", "d_conv_dim": "network.d_conv_dim",
    "d_layers": "network.d_layers",
    "adversarial": "objective.adversarial", "critic_steps": "objective.critic_steps", "lr_g": "optimizer.lr_g",
    "lr_d": "optimizer.lr_d", "flip": "augment.flip", "jitter": "augment.jitter", "batch_size": "batch_size",
    "steps": "steps", "checkpoint_every": "checkpoint_every", "log_every": "log_every",
    "sample_every": "sample_every", "keep_checkpoints": "keep_checkpoints", "seed": "seed",
    "address": "execution.address", "workers": "execution.workers", "gpus_per_worker": "execution.gpus_per_worker",
    "cpus_per_worker": "execution.cpus_per_worker", "threads_per_worker": "execution.threads_per_worker",
    "precision": "execution.precision", "max_failures": "execution.max_failures",
}


TRAIN_SECTIONS = {
    "inputs": ["family", "data"],
    "output": ["out", "name", "checkpoint_every", "log_every", "sample_every", "keep_checkpoints"],
    "networks": ["size", "conv_dim", "res_blocks", "d_conv_dim", "d_layers"],
    "objective and schedule": ["adversarial", "critic_steps", "lr_g", "lr_d", "flip", "jitter", "batch_size", "steps",
                               "seed"],
    "execution": ["address", "workers", "gpus_per_worker", "cpus_per_worker", "threads_per_worker", "precision",
                  "max_failures"],
    "job": JOB_PARAMS,
}


def _help(dotted: str) -> str:
    return field_help(TrainJob, dotted)


@click.command(cls=GroupedCommand, sections=TRAIN_SECTIONS)
@click.option("--family", type=choice(TrainJob, "family"), help=_help("family"))
@click.option("--data", metavar="DIR|s3://...", help=_help("data"))
@click.option("--out", metavar="DIR|s3://...", help=_help("out"))
@click.option("--name", help=_help("name"))
@click.option("--size", type=int, help=_help("network.size"))
@click.option("--conv-dim", type=int, help=_help("network.conv_dim"))
@click.option("--res-blocks", type=int, help=_help("network.res_blocks"))
@click.option("--d-conv-dim", type=int, help=_help("network.d_conv_dim"))
@click.option("--d-layers", type=int, help=_help("network.d_layers"))
@click.option("--adversarial", type=choice(TrainJob, "objective.adversarial"), help=_help("objective.adversarial"))
@click.option("--critic-steps", type=int, help=_help("objective.critic_steps"))
@click.option("--lr-g", type=float, help=_help("optimizer.lr_g"))
@click.option("--lr-d", type=float, help=_help("optimizer.lr_d"))
@click.option("--flip/--no-flip", default=None, help=_help("augment.flip"))
@click.option("--jitter", type=float, help=_help("augment.jitter"))
@click.option("--batch-size", type=int, help=_help("batch_size"))
@click.option("--steps", type=int, help=_help("steps"))
@click.option("--checkpoint-every", type=int, help=_help("checkpoint_every"))
@click.option("--log-every", type=int, help=_help("log_every"))
@click.option("--sample-every", type=int, help=_help("sample_every"))
@click.option("--keep-checkpoints", type=int, help=_help("keep_checkpoints"))
@click.option("--seed", type=int, help=_help("seed"))
@click.option("--address", help=_help("execution.address"))
@click.option("--workers", type=int, help=_help("execution.workers"))
@click.option("--gpus-per-worker", type=float, help=_help("execution.gpus_per_worker"))
@click.option("--cpus-per-worker", type=float, help=_help("execution.cpus_per_worker"))
@click.option("--threads-per-worker", type=int, help=_help("execution.threads_per_worker"))
@click.option("--precision", type=choice(TrainJob, "execution.precision"), help=_help("execution.precision"))
@click.option("--max-failures", type=int, help=_help("execution.max_failures"))
@job_options(kind="train")
@click.pass_context
def train(ctx, **_):
    """Train a GANimation or GANnotation model; the run (checkpoints, metrics, samples, model.pt) goes to OUT/NAME/
    and re-running the same OUT/NAME resumes it. Loss weights and other settings: --job FILE or --set KEY=VALUE."""
    run_command(ctx, "train", TRAIN_FLAGS)


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
