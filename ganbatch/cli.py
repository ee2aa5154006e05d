"""The `ganbatch` command line: a thin click front over the job schema and the run_* functions.

Importing this module (and `--help` of any command) loads click, pydantic, yaml and the job schema only: torch, Ray,
scipy, scikit-image, boto3 and pyarrow load when a command runs (tests/test_cli_fast.py holds this).
"""

import click

from ganbatch import __version__
from ganbatch.errors import JobError
from ganbatch.cli_animate import animate
from ganbatch.cli_aus import aus
from ganbatch.cli_eval import eval_command
from ganbatch.cli_help import GroupedCommand
from ganbatch.cli_jobs import JOB_PARAMS, execute, job_options, override_options, run_command
from ganbatch.cli_options import Flag, SchemaOptions
from ganbatch.cli_train import export, train
from ganbatch.jobs import SynthJob
from ganbatch.jobs.load import load_job
from ganbatch.jobs.problems import ManifestError
from ganbatch.jobs.references import unset_env_variable
from ganbatch.logs import FORMATS, redact, setup_logging

INTERRUPTED = "interrupted: re-run the same command to resume"
INTERRUPTED_EXIT = 130  # 128 + SIGINT, what shells report for a command ended by Ctrl-C


class InvalidJob(click.ClickException):
    """A manifest or flags that do not make a valid job; lists every problem, exits with status 2."""

    exit_code = 2

    def __init__(self, error: ManifestError):
        super().__init__("invalid job:\n" + "\n".join(f"  {problem}" for problem in error.problems))


class JobGroup(click.Group):
    """The one place where errors become exit statuses: an invalid job exits 2 listing every problem, a JobError
    its `exit_code` (1) with its message on one line (`${env:}` values redacted), Ctrl-C 130 with the resume hint
    (click's own handling says "Aborted!" and exits 1)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo(f"\n{INTERRUPTED}", err=True)
            ctx.exit(INTERRUPTED_EXIT)
        except ManifestError as error:
            raise InvalidJob(error) from None
        except JobError as error:
            failure = click.ClickException(redact(str(error)))
            failure.exit_code = error.exit_code
            raise failure from None


@click.group(cls=JobGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ganbatch")
@click.option("-v", "--verbose", count=True,
              help="more output: -v adds debug lines and Ray's own logs (worker output, warnings); repeatable")
@click.option("-q", "--quiet", count=True, help="only warnings and errors")
@click.option("--log-format", type=click.Choice(FORMATS), default="text",
              help="text: plain lines; json: one JSON object per line (for log collectors); default: text")
def main(verbose, quiet, log_format):
    """Turn folders of face photos into expression videos with GAN face-animation models, and train those models."""
    setup_logging(verbose - quiet, log_format)


@main.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@override_options
def run(manifest, overrides, dry_run):
    """Run the job in MANIFEST (a YAML file of kind animate, train, synth, eval, export, aus or pipeline)."""
    execute(load_job(manifest, overrides=tuple(overrides)), dry_run)


def _split_notes(error: ManifestError) -> tuple[list, list[str]]:
    """(problems, names of unset environment variables) of an invalid manifest."""
    problems, unset = [], []
    for problem in error.problems:
        name = unset_env_variable(problem.message)
        if name is None:
            problems.append(problem)
        elif name not in unset:
            unset.append(name)
    return problems, unset


@main.command()
@click.argument("manifests", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--strict", is_flag=True, help="treat an unset ${env:NAME} (without a :-default) as an error")
def validate(manifests, strict):
    """Check job MANIFESTS without running them; lists every problem of every file, exits 2 if any is invalid.
    An unset ${env:NAME} is a note (the job can run where it is set), an error with --strict."""
    invalid = 0
    for manifest in manifests:
        try:
            job = load_job(manifest).job
        except ManifestError as error:
            problems, unset = _split_notes(error)
            if problems or strict:
                invalid += 1
                click.echo(f"{manifest}: invalid", err=True)
                for problem in error.problems if strict else problems:
                    click.echo(f"  {problem}", err=True)
            else:
                one = len(unset) == 1
                click.echo(f"{manifest}: ok, once {', '.join(unset)} {'is' if one else 'are'} set (note: the values "
                           f"that use {'it' if one else 'them'} were not checked)")
            continue
        steps = f": {', '.join(job.steps)}" if job.kind == "pipeline" else ""
        click.echo(f"{manifest}: ok ({job.kind}{steps})")
    if invalid:
        raise SystemExit(2)


SYNTH = SchemaOptions(SynthJob, {
    "output": [Flag("out", metavar="DIR|s3://..."), Flag("layouts", name="--layout"), "contact_sheet"],
    "data set": ["identities", "per_identity", "size", "seed", "test_fraction"],
    "expression mix": ["neutral_weight", "prototype_weight", "sparse_weight"],
})


@main.command(cls=GroupedCommand, sections={**SYNTH.sections, "job": JOB_PARAMS})
@SYNTH
@job_options(kind="synth")
@click.pass_context
def synth(ctx, **_):
    """Write a synthetic face data set with exact AU and landmark ground truth (for training and tests)."""
    run_command(ctx, "synth", SYNTH.fields)


main.add_command(animate)
main.add_command(eval_command)
main.add_command(aus)
main.add_command(train)
main.add_command(export)


if __name__ == "__main__":
    main()
