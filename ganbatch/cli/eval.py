"""`ganbatch eval`: an EvalJob from its flags and/or `--job` (a generator's quality on held-out synthetic
identities, see `ganbatch.eval`). The evaluation modules (torch, scipy, scikit-image) load only when the command
runs, so `ganbatch --help` stays fast."""
import click

from ganbatch.cli.help import GroupedCommand
from ganbatch.cli.jobs import JOB_PARAMS, job_options, run_command
from ganbatch.cli.options import Flag, SchemaOptions
from ganbatch.jobs.eval import EvalJob

EVAL = SchemaOptions(EvalJob, {
    "inputs": [Flag("model", metavar="CKPT|s3://...|demo"), "trust_pickle"],
    "benchmark": ["identities", "seed", "random_pairs", "path_frames"],
    "output": [Flag("out", metavar="FILE.json|s3://..."), Flag("report", metavar="FILE.html|s3://...")],
    "execution": ["device", "runtime", "chunk_size"],
})


@click.command("eval", cls=GroupedCommand, sections={**EVAL.sections, "job": JOB_PARAMS})
@EVAL
@job_options(kind="eval")
@click.pass_context
def eval_command(ctx, **_):
    """Measure a generator on synthetic faces with known ground truth: PSNR/SSIM, AU accuracy, identity and
    background preservation and smoothness, each next to the copy-the-input baseline."""
    run_command(ctx, "eval", EVAL.fields)
