"""`ganbatch validate MANIFEST...`: check job files without running them."""
import click

from ganbatch.jobs.load import load_job
from ganbatch.jobs.problems import ManifestError
from ganbatch.jobs.references import unset_env_variable


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


@click.command()
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
