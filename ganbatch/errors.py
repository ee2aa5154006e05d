"""The error type shared by the job runners and the command line."""


class JobError(Exception):
    """A job that cannot run as given (inputs not found, a model that does not load, a cluster too small...).

    Runners raise it, before any work where they can; the command line prints its message without a traceback and
    exits with status 1.
    """
