"""`ganbatch eval`: a generator's quality on held-out synthetic identities (see `ganbatch.eval`).

The evaluation modules (torch, scipy, scikit-image) load only when the command runs, so `ganbatch --help` stays
fast; the defaults shown here are the ones passed to `run_eval` (tests/test_cli_fast.py checks they match
`ganbatch.eval.benchmark`'s).
"""
import logging

import click

from ganbatch.cli_help import GroupedCommand
from ganbatch.cli_options import choice, default_text
from ganbatch.cli_jobs import note_demo_model
from ganbatch.jobs import AnimateJob

log = logging.getLogger(__name__)

# Mirrors ganbatch.eval.benchmark's DEFAULT_IDENTITIES, DEFAULT_RANDOM_PAIRS and DEFAULT_PATH_FRAMES, which cannot
# be imported here without loading torch (ganbatch.eval's package imports the AU regressor).
EVAL_DEFAULTS = {"identities": 8, "random_pairs": 4, "path_frames": 16}
EVAL_SECTIONS = {
    "inputs": ["model_uri", "trust_pickle"],
    "benchmark": ["identities", "seed", "random_pairs", "path_frames"],
    "output": ["out", "report_uri"],
    "execution": ["device", "runtime", "chunk_size", "dry_run"],
}


@click.command("eval", cls=GroupedCommand, sections=EVAL_SECTIONS)
@click.option("--model", "model_uri", required=True, metavar="CKPT|s3://...|demo",
              help="generator to evaluate: a checkpoint path, an s3:// URI or 'demo' (the bundled model); required")
@click.option("--identities", type=click.IntRange(min=1), default=EVAL_DEFAULTS["identities"],
              help="number of held-out synthetic identities; " + default_text(EVAL_DEFAULTS["identities"]))
@click.option("--seed", type=click.IntRange(min=0), default=0,
              help="evaluation seed; identities come from seed 10000 + SEED, so they never match a data set "
                   "written with a seed below 10000; default: 0")
@click.option("--random-pairs", type=click.IntRange(min=0), default=EVAL_DEFAULTS["random_pairs"],
              help="random (source, target) expression pairs per identity, besides neutral -> each preset; "
                   + default_text(EVAL_DEFAULTS["random_pairs"]))
@click.option("--path-frames", type=click.IntRange(min=2), default=EVAL_DEFAULTS["path_frames"],
              help="frames of the interpolated clip used for the smoothness metrics; "
                   + default_text(EVAL_DEFAULTS["path_frames"]))
@click.option("--out", metavar="FILE.json|s3://...", help="write the full report as JSON here")
@click.option("--report", "report_uri", metavar="FILE.html|s3://...",
              help="also write an HTML report with plots (per-AU errors, smoothness, sample strips)")
@click.option("--device", default="cpu", help="torch device for the generator (cpu, cuda...); default: cpu")
@click.option("--chunk-size", type=click.IntRange(min=1), default=16, help="frames per generator batch; default: 16")
@click.option("--trust-pickle", is_flag=True,
              help="allow checkpoints whose unpickling runs code (only for files you trust)")
@click.option("--runtime", type=choice(AnimateJob, "execution.runtime"),
              default="torch", help="inference engine (auto: the fastest here within tolerance of fp32; onnxruntime/"
                                    "openvino need ganbatch[cpu-fast]); default: torch")
@click.option("--dry-run", is_flag=True,
              help="read the model's config (not its weights), count pairs and frames, estimate the time; run nothing")
def eval_command(model_uri, identities, seed, random_pairs, path_frames, out, report_uri, device, chunk_size,
                 trust_pickle, dry_run, runtime):
    """Measure a generator on synthetic faces with known ground truth: PSNR/SSIM, AU accuracy, identity and
    background preservation and smoothness, each next to the copy-the-input baseline."""
    from ganbatch.errors import JobError
    from ganbatch.models.checkpoint import CheckpointError
    from ganbatch.models.runtime import RuntimeUnavailableError
    from ganbatch.io.storage import StorageError

    note_demo_model(model_uri)
    try:
        if dry_run:
            from ganbatch.eval.plan import plan_eval

            click.echo(plan_eval(model_uri, identities=identities, random_pairs=random_pairs,
                                 path_frames=path_frames, chunk_size=chunk_size, runtime=runtime, device=device,
                                 trust_pickle=trust_pickle))
            return
        from ganbatch.eval import AURegressorError, format_report, run_eval

        try:
            report = run_eval(model_uri, identities, seed, out, trust_pickle=trust_pickle,
                              random_pairs=random_pairs, path_frames=path_frames, device=device,
                              chunk_size=chunk_size, runtime=runtime)
        except AURegressorError as error:
            raise click.ClickException(str(error)) from error
        click.echo(format_report(report))
        if out:
            log.info(f"report written to {out}")
        if report_uri:
            from ganbatch.eval.html import write_html_report

            write_html_report(report, report_uri, model_uri=model_uri, trust_pickle=trust_pickle, device=device)
            log.info(f"HTML report written to {report_uri}")
    except (CheckpointError, StorageError, JobError, RuntimeUnavailableError) as error:
        raise click.ClickException(str(error)) from error
