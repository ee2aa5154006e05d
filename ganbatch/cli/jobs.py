"""Plumbing shared by the job commands of the CLI: flags and manifests -> one validated job -> plan or run.

A job command declares its options once, from the schema (`cli.options.SchemaOptions`), adds `job_options` (`--job
FILE`, `--set KEY=VALUE`, `--dry-run`) and hands the context to `run_command` with the options' fields (a map from
click parameter names to dotted paths in the job).

Only flags the user actually gave reach the job (click's parameter source is not DEFAULT), so the pydantic models
stay the one source of defaults. A map value may also be `(dotted path, convert)` when a flag's value needs
reshaping. Multiple-value flags replace the whole list. Precedence: the `--job` manifest, then flags, then `--set`.
"""
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, Optional, Union

import click
from click.core import ParameterSource
from pydantic import BaseModel

from ganbatch.jobs.load import LoadedJob, load_job
from ganbatch.errors import JobFailed
from ganbatch.logs import add_redactor, redact
from ganbatch.runner import plan_job, run_job

log = logging.getLogger(__name__)

FlagMap = Mapping[str, Union[str, tuple[str, Callable[[Any], Any]]]]


# `--set` examples that fit each command (None: `ganbatch run`, whose manifest may be of any kind).
SET_EXAMPLES = {
    "animate": "--set execution.workers=4 or --set 'targets[0].expression=happy'",
    "train": "--set objective.lambda_cycle=5 or --set optimizer.decay_start=2000",
    "synth": "--set 'layouts=[ganimation]' or --set test_fraction=0.25",
    "eval": "--set identities=2 or --set runtime=openvino",
    "export": "--set precision=fp16 or --set format=onnx",
    "aus": "--set detector=face-alignment or --set allow_failures=true",
    "aus": "--set detector=face-alignment or --set allow_failures=true",
    None: "--set execution.workers=4, or in a pipeline --set steps.train.steps=200",
}


def override_options(command: Optional[Callable] = None, *, kind: Optional[str] = None) -> Callable:
    """Add `--set KEY=VALUE` (repeatable; parameter `overrides`) and `--dry-run` to a command; `kind` picks the
    example shown in --help. Usable as `@override_options` or `@override_options(kind="train")`."""
    if command is None:
        return lambda decorated: override_options(decorated, kind=kind)
    command = click.option(
        "--dry-run", is_flag=True,
        help="validate, print the resolved job (defaults filled in) and its plan (what it would read, make and "
             "use, with an estimate of the time where one is known); run nothing",
    )(command)
    return click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE",
        help=f"override a job value, e.g. {SET_EXAMPLES[kind]} (the value is YAML); applied last; repeatable",
    )(command)


def job_options(command: Optional[Callable] = None, *, kind: Optional[str] = None) -> Callable:
    """Add `--job FILE` (parameter `manifest`), `--set KEY=VALUE` and `--dry-run` to a command (see
    override_options for `kind`)."""
    if command is None:
        return lambda decorated: job_options(decorated, kind=kind)
    command = override_options(command, kind=kind)
    return click.option(
        "--job", "manifest", type=click.Path(exists=True, dir_okay=False),
        help="YAML job manifest to start from; flags and --set override its values",
    )(command)


# Parameters of every job command, for GroupedCommand sections.
JOB_PARAMS = ["manifest", "overrides", "dry_run"]


def flag_values(ctx: click.Context, flags: FlagMap) -> list[tuple[str, Any, str]]:
    """(dotted path, value, option name) for every flag in `flags` that the user gave."""
    labels = {param.name: param.opts[0] for param in ctx.command.params if param.opts}
    given = []
    for name, target in flags.items():
        value = ctx.params[name]  # a KeyError here is a flag map naming no parameter of the command
        if ctx.get_parameter_source(name) == ParameterSource.DEFAULT:
            continue
        dotted, convert = (target, None) if isinstance(target, str) else target
        value = list(value) if isinstance(value, tuple) else value
        given.append((dotted, convert(value) if convert else value, labels.get(name, name)))
    return given


# Said once when a job uses a bundled demo model (`models.locate`: "demo", "demo-gannotation").
DEMO_NOTE = ("note: the demo model ({name}) was trained on synthetic faces only; on real photos expect artefacts "
             "(train one on your faces: see the README)")


def is_demo_model(uri: str) -> bool:
    """Whether a model URI names a bundled demo model (`demo`, `demo-<family>`; see models.locate)."""
    return uri == "demo" or uri.startswith("demo-")


def _demo_models(job: BaseModel) -> list[str]:
    """The demo model names a job (or its pipeline steps) animates with or evaluates."""
    jobs = list(job.steps.values()) if getattr(job, "kind", None) == "pipeline" else [job]
    return list(dict.fromkeys(step.model for step in jobs if is_demo_model(str(getattr(step, "model", "")))))


def note_demo_model(uri: str) -> None:
    """Log DEMO_NOTE when `uri` names a bundled demo model."""
    if is_demo_model(uri):
        log.info(DEMO_NOTE.format(name=uri))


def execute(loaded: LoadedJob, dry_run: bool) -> None:
    """Print the resolved job and its plan (--dry-run), or run it and print its message and outputs.

    Values taken from `${env:NAME}` are printed as the reference, never as the value. Errors propagate: the command
    group maps them to one line and an exit status (`cli.JobGroup`); a job that ran but failed raises JobFailed.
    """
    add_redactor(loaded.redact)
    for name in _demo_models(loaded.job):
        note_demo_model(name)
    if dry_run:
        plan = plan_job(loaded.job)
        click.echo(loaded.to_yaml(), nl=False)
        click.echo("# plan:")
        for line in redact(plan).splitlines():
            click.echo(f"#   {line}")
        return
    result = run_job(loaded.job, report=log.info)
    message = getattr(result, "message", "")  # optional in the runner protocol (ganbatch.runner)
    if message:
        click.echo(redact(message))
    for key, value in result.outputs.items():
        click.echo(redact(f"{key}: {value}"))
    failed = None if result.ok else f"the {loaded.job.kind} job failed" + (
        f": {redact(result.failure)}" if getattr(result, "failure", "") else "")  # failure: optional, what to do
    if getattr(result, "stream_abandoned", False):
        _exit_now(failed)
    if failed:
        raise JobFailed(failed)


def _exit_now(failed: Optional[str]) -> None:
    """End the process at once, its work done and written: after a stream was given up (a stall), Ray Data's threads
    still wait on it, and the interpreter's teardown with them alive can crash the process (SIGSEGV) after the last
    line, turning exit status 1 into -11. Everything is flushed first; the status is the failure's."""
    if failed:
        click.echo(f"Error: {failed}", err=True)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1 if failed else 0)


def run_command(ctx: click.Context, kind: str, flags: FlagMap) -> None:
    """The body of a job command: its `--job` manifest, flags and `--set` into a `kind` job, then plan or run it."""
    loaded = load_job(ctx.params.get("manifest"), kind=kind, values=flag_values(ctx, flags),
                      overrides=tuple(ctx.params.get("overrides", ())))
    execute(loaded, ctx.params.get("dry_run", False))
