"""`ganbatch eval`: a generator's quality on held-out synthetic identities (see `ganbatch.eval`)."""
import click

from ganbatch.eval import AURegressorError, format_report, run_eval
from ganbatch.eval.benchmark import DEFAULT_IDENTITIES, DEFAULT_PATH_FRAMES, DEFAULT_RANDOM_PAIRS
from ganbatch.models.checkpoint import CheckpointError
from ganbatch.models.runtime import RuntimeUnavailableError
from ganbatch.storage import StorageError


@click.command("eval")
@click.option("--model", "model_uri", required=True, metavar="CKPT|s3://...|demo",
              help="Generator to evaluate: a checkpoint path, an s3:// URI or 'demo' (the bundled model).")
@click.option("--identities", type=click.IntRange(min=1), default=DEFAULT_IDENTITIES, show_default=True,
              help="Number of held-out synthetic identities.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Evaluation seed; identities come from seed 10000 + SEED, so they never match a data set "
                   "written with a seed below 10000.")
@click.option("--random-pairs", type=click.IntRange(min=0), default=DEFAULT_RANDOM_PAIRS, show_default=True,
              help="Random (source, target) expression pairs per identity, besides neutral -> each preset.")
@click.option("--path-frames", type=click.IntRange(min=2), default=DEFAULT_PATH_FRAMES, show_default=True,
              help="Frames of the interpolated clip used for the smoothness metrics.")
@click.option("--out", metavar="FILE.json|s3://...", help="Write the full report as JSON here.")
@click.option("--device", default="cpu", show_default=True, help="Torch device for the generator (cpu, cuda...).")
@click.option("--chunk-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Frames per generator batch.")
@click.option("--trust-pickle", is_flag=True,
              help="Allow checkpoints whose unpickling runs code (only for files you trust).")
@click.option("--runtime", type=click.Choice(["auto", "torch", "onnxruntime", "openvino", "tensorrt"]),
              default="torch", show_default=True, help="Inference engine (auto: the fastest here within tolerance of fp32).")
def eval_command(model_uri, identities, seed, random_pairs, path_frames, out, device, chunk_size, trust_pickle,
                 runtime):
    """Measure a generator on synthetic faces with known ground truth: PSNR/SSIM, AU accuracy, identity and
    background preservation and smoothness, each next to the copy-the-input baseline."""
    try:
        report = run_eval(model_uri, identities, seed, out, trust_pickle=trust_pickle, random_pairs=random_pairs,
                          path_frames=path_frames, device=device, chunk_size=chunk_size, runtime=runtime)
    except (CheckpointError, AURegressorError, StorageError, RuntimeUnavailableError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(format_report(report))
    if out:
        click.echo(f"\nreport written to {out}")
