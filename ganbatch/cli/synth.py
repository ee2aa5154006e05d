"""`ganbatch synth`: flags and/or a `--job` manifest -> a SynthJob (a synthetic face data set)."""
import click

from ganbatch.cli.help import GroupedCommand
from ganbatch.cli.jobs import JOB_PARAMS, job_options, run_command
from ganbatch.cli.options import Flag, SchemaOptions
from ganbatch.jobs import SynthJob


SYNTH = SchemaOptions(SynthJob, {
    "output": [Flag("out", metavar="DIR|s3://..."), Flag("layouts", name="--layout"), "contact_sheet"],
    "data set": ["identities", "per_identity", "size", "seed", "test_fraction"],
    "expression mix": ["neutral_weight", "prototype_weight", "sparse_weight"],
})


@click.command(cls=GroupedCommand, sections={**SYNTH.sections, "job": JOB_PARAMS})
@SYNTH
@job_options(kind="synth")
@click.pass_context
def synth(ctx, **_):
    """Write a synthetic face data set with exact AU and landmark ground truth (for training and tests)."""
    run_command(ctx, "synth", SYNTH.fields)
