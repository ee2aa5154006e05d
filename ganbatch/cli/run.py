"""`ganbatch run MANIFEST`: the job in a YAML file, of any kind (a pipeline too)."""
import click

from ganbatch.cli.jobs import execute, override_options
from ganbatch.jobs.load import load_job


@click.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@override_options
def run(manifest, overrides, dry_run):
    """Run the job in MANIFEST (a YAML file of kind animate, train, synth, eval, export, aus or pipeline)."""
    execute(load_job(manifest, overrides=tuple(overrides)), dry_run)
