"""The `ganbatch` command line: a thin click front over the job schema and the runners (`ganbatch.runner`), one
module per command (animate, train, export, synth, eval, run, validate); `jobs` (running a job from flags or a
manifest), `options` (click options made from schema fields) and `help` (grouped --help) are theirs to share.

Importing this module (and `--help` of any command) loads click, pydantic, yaml and the job schema only: torch, Ray,
scipy, scikit-image, boto3 and pyarrow load when a command runs (tests/test_cli_fast.py holds this).
"""

import signal
import threading

import click

from ganbatch import __version__
from ganbatch.errors import JobError
from ganbatch.cli.animate import animate
from ganbatch.cli.aus import aus
from ganbatch.cli.cache import cache_command
from ganbatch.cli.eval import eval_command
from ganbatch.cli.export import export
from ganbatch.cli.run import run
from ganbatch.cli.synth import synth
from ganbatch.cli.train import train
from ganbatch.cli.tune import tune
from ganbatch.cli.validate import validate
from ganbatch.jobs.problems import ManifestError
from ganbatch.logs import LOG_FORMATS, redact, setup_logging, silence_ray_consoles

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
        previous = _on_ctrl_c(_interrupted)
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
        finally:
            _on_ctrl_c(previous)


def _interrupted(signum, frame):
    """Ctrl-C: Ray's consoles go quiet at once (its dying tasks would print tracebacks), then KeyboardInterrupt."""
    silence_ray_consoles()
    raise KeyboardInterrupt


def _on_ctrl_c(handler):
    """Install handler for SIGINT (only the main thread may); the previous one, or None where none was set."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, handler)


@click.group(cls=JobGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ganbatch")
@click.option("-v", "--verbose", count=True,
              help="more output: -v adds debug lines and Ray's own logs (worker output, warnings); repeatable")
@click.option("-q", "--quiet", count=True, help="only warnings and errors")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text",
              help="text: plain lines; json: one JSON object per line (for log collectors); default: text")
def main(verbose, quiet, log_format):
    """Turn folders of face photos into expression videos with GAN face-animation models, and train those models."""
    setup_logging(verbose - quiet, log_format)


for command in (animate, aus, train, export, synth, eval_command, run, validate, tune, cache_command):
    main.add_command(command)
