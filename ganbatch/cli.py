"""The `ganbatch` command line: a thin click front over the job schema and the run_* functions."""
import click

from ganbatch import __version__
from ganbatch.cli_animate import animate
from ganbatch.cli_eval import eval_command
from ganbatch.cli_train import export, train
from ganbatch.cli_jobs import execute, field_help, job_options, load_or_exit, override_options, run_command
from ganbatch.jobs import SynthJob
from ganbatch.jobs.load import load_job
from ganbatch.jobs.problems import ManifestError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ganbatch")
def main():
    """Turn folders of face photos into expression videos with GAN face-animation models, and train those models."""


@main.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@override_options
def run(manifest, overrides, dry_run):
    """Run the job in MANIFEST (a YAML file of kind animate, train, synth or pipeline)."""
    execute(load_or_exit(manifest, overrides=overrides), dry_run)


@main.command()
@click.argument("manifests", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def validate(manifests):
    """Check job MANIFESTS without running them; lists every problem of every file, exits 2 if any is invalid."""
    invalid = 0
    for manifest in manifests:
        try:
            job = load_job(manifest).job
        except ManifestError as error:
            invalid += 1
            click.echo(f"{manifest}: invalid", err=True)
            for problem in error.problems:
                click.echo(f"  {problem}", err=True)
            continue
        steps = f": {', '.join(job.steps)}" if job.kind == "pipeline" else ""
        click.echo(f"{manifest}: ok ({job.kind}{steps})")
    if invalid:
        raise SystemExit(2)


SYNTH_FLAGS = {
    "out": "out", "identities": "identities", "per_identity": "per_identity", "size": "size", "seed": "seed",
    "layouts": "layouts", "test_fraction": "test_fraction", "contact_sheet": "contact_sheet",
}


@main.command()
@click.option("--out", metavar="DIR|s3://...", help=field_help(SynthJob, "out"))
@click.option("--identities", type=int, help=field_help(SynthJob, "identities"))
@click.option("--per-identity", type=int, help=field_help(SynthJob, "per_identity"))
@click.option("--size", type=int, help=field_help(SynthJob, "size"))
@click.option("--seed", type=int, help=field_help(SynthJob, "seed"))
@click.option("--layout", "layouts", multiple=True, help=field_help(SynthJob, "layouts") + " Repeatable.")
@click.option("--test-fraction", type=float, help=field_help(SynthJob, "test_fraction"))
@click.option("--contact-sheet/--no-contact-sheet", default=None, help=field_help(SynthJob, "contact_sheet"))
@job_options
@click.pass_context
def synth(ctx, **_):
    """Write a synthetic face data set with exact AU and landmark ground truth (for training and tests)."""
    run_command(ctx, "synth", SYNTH_FLAGS)


main.add_command(animate)
main.add_command(eval_command)
main.add_command(train)
main.add_command(export)


if __name__ == "__main__":
    main()
