"""The errors every job runner raises, and the one contract with the command line.

A runner raises a JobError (or a subclass) for anything the user can fix: inputs not found, a model that does not
load, a cluster too small, a run that ended with failed items. The command line prints the message as one line
(never a traceback; `${env:}` values redacted) and exits with the error's `exit_code`; invalid job files and flags
(`jobs.problems.ManifestError`) exit with 2 before any runner starts.
"""


class JobError(Exception):
    """A job that cannot run as given; raised before any work where the runner can tell."""

    exit_code = 1


class JobFailed(JobError):
    """A job that ran but did not finish: some of its items or a pipeline step failed."""


class EvalError(JobError):
    """An evaluation that cannot run: its model, the AU regressor or the inference runtime is missing or broken."""


class ExportError(JobError):
    """An export that cannot be made: a run with no usable checkpoint, a model or option the format cannot take."""


def root_cause(error: BaseException) -> BaseException:
    """The error a person should read, unwrapped from Ray's wrappers: a task or actor error's `cause`, Ray Train's
    `worker_failures` (the lowest rank's) or `controller_failure`. ganbatch's own errors survive that trip intact
    (those with their own __init__ define __reduce__)."""
    seen = set()
    while id(error) not in seen:
        seen.add(id(error))
        failures = getattr(error, "worker_failures", None)
        inner = failures[min(failures)] if isinstance(failures, dict) and failures else \
            getattr(error, "controller_failure", None) or getattr(error, "cause", None)
        if not isinstance(inner, BaseException):
            break
        error = inner
    return error


def one_line(error: BaseException) -> str:
    """`root_cause(error)` as one line: the message of ganbatch's own errors, `Type: message` for others."""
    cause = root_cause(error)
    message = " ".join(str(cause).split())
    if type(cause).__module__.startswith("ganbatch.") and message:
        return message
    return f"{type(cause).__name__}: {message}".rstrip(": ")
