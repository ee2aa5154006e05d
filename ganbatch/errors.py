"""The error type shared by the job runners and the command line."""


class JobError(Exception):
    """A job that cannot run as given (inputs not found, a model that does not load, a cluster too small...).

    Runners raise it, before any work where they can; the command line prints its message without a traceback and
    exits with status 1.
    """


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
