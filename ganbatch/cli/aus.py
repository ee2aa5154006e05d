"""`ganbatch aus`: an AusJob from its flags and/or `--job` (photos and videos -> an OpenFace-style AU CSV, see
`ganbatch.aus_job`). The estimator and detector load only when the command runs, so `ganbatch --help` stays fast."""
import click

from ganbatch.cli.help import GroupedCommand
from ganbatch.cli.jobs import JOB_PARAMS, job_options, run_command
from ganbatch.cli.options import Flag, SchemaOptions
from ganbatch.jobs.aus import AusJob

AUS = SchemaOptions(AusJob, {
    "inputs": ["recursive", Flag("detector"), Flag("estimator", metavar="FILE.pt")],
    "output": [Flag("out", metavar="FILE.csv|s3://..."), "allow_failures"],
})


@click.command("aus", cls=GroupedCommand, sections={**AUS.sections, "job": JOB_PARAMS})
@click.argument("inputs", nargs=-1, metavar="INPUT...")
@AUS
@job_options(kind="aus")
@click.pass_context
def aus(ctx, **_):
    """Estimate the 17 OpenFace action units of the face in each photo and each video frame (INPUT: files, folders,
    globs, s3:// prefixes, .txt/.jsonl lists) into an OpenFace-style CSV that --source-aus and --aus-csv read.
    No OpenFace needed: the AUs come from the face's 68 landmarks. Exits 0 only when every input had a face (or
    --allow-failures)."""
    run_command(ctx, "aus", {"inputs": "inputs", **AUS.fields})
