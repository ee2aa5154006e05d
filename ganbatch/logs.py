"""One logging setup for the package, and the options that keep Ray quiet.

`setup_logging(verbosity, fmt)` sends the `ganbatch` logger's records to stderr, as plain lines (`text`) or one
JSON object per line (`json`); verbosity 0 shows ganbatch's progress and summaries (INFO), 1 (`-v`) adds DEBUG
lines and Ray's own output, -1 (`-q`) only warnings and errors. Every record passes through the redactors
registered with `add_redactor` (e.g. a job's `${env:NAME}` values), whatever module logged it.

`quiet_ray_options()` is what `ray.init` gets for the same verbosity: by default Ray's driver logger shows errors
only (no token-auth warning) and worker output is not forwarded to the terminal (no `(RayTrainWorker pid=...)`
lines, no PlacementGroupCleaner chatter); with `-v` both come back, de-duplicated as Ray does by default.

`native_ray_lines_hidden()` keeps the lines Ray's C++ core writes straight to this process's stderr (`[2026-...
E 123 456] core_worker.cc:2465: ...`) off the terminal at default verbosity; they stay in Ray's own log files.
"""
import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator

LOGGER = "ganbatch"
LOG_FORMATS = ("text", "json")

_verbosity = 0
_redactors: list[Callable[[str], str]] = []


class RedactingFilter(logging.Filter):
    """Rewrites each record's message through the registered redactors (values of `${env:NAME}` -> the reference)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _redactors:
            record.msg, record.args = redact(record.getMessage()), None
        return True


class StderrHandler(logging.StreamHandler):
    """A StreamHandler writing to whatever sys.stderr is at the time of each record (click's runner and pytest swap
    it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):
        pass


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def level_for(verbosity: int) -> int:
    """The `ganbatch` logger's level for a verbosity (-v count minus -q count)."""
    if verbosity >= 1:
        return logging.DEBUG
    return logging.INFO if verbosity == 0 else logging.WARNING


def setup_logging(verbosity: int = 0, fmt: str = "text") -> logging.Logger:
    """Configure the `ganbatch` logger (see the module doc); calling it again replaces the previous setup."""
    global _verbosity
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    _verbosity = verbosity
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        if getattr(handler, "_ganbatch", False):
            logger.removeHandler(handler)
    handler = StderrHandler()
    handler._ganbatch = True  # marks the handler this function owns
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.setLevel(level_for(verbosity))
    logger.propagate = False
    return logger


def verbosity() -> int:
    """The verbosity of the last `setup_logging` call (0 when it was never called)."""
    return _verbosity


def add_redactor(redact: Callable[[str], str]) -> None:
    """Pass every later log message through `redact` (text -> text with secrets replaced)."""
    if redact not in _redactors:
        _redactors.append(redact)


def redact(text: str) -> str:
    """`text` passed through every registered redactor: what log records and the CLI's error lines show."""
    for redactor in _redactors:
        text = redactor(text)
    return text


def clear_redactors() -> None:
    """Forget the registered redactors (between jobs, and in tests)."""
    _redactors.clear()


# Environment for Ray processes started from here (workers inherit the driver's environment on a local start).
# RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS: Ray Train's "this API will change" warnings are for library authors.
QUIET_RAY_ENV = {"RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0"}


def quiet_ray_options(level: int | None = None) -> dict:
    """Keyword arguments for `ray.init` that match the verbosity (default: the one `setup_logging` was given):
    Ray's own logger at ERROR (WARNING with -v, DEBUG with -vv) and worker output forwarded only with -v.

    Also sets QUIET_RAY_ENV in os.environ (unless already set), so that a local Ray's processes inherit it.
    """
    level = _verbosity if level is None else level
    for name, value in QUIET_RAY_ENV.items():
        os.environ.setdefault(name, value)
    ray_level = logging.ERROR if level <= 0 else logging.WARNING if level == 1 else logging.DEBUG
    quiet_ray_data(level)
    return {"logging_level": ray_level, "log_to_driver": level >= 1}


def quiet_ray_data(level: int | None = None) -> None:
    """Ray Data's console lines at the verbosity (default: the one `setup_logging` was given): errors only, INFO
    with -v. Call it again once Ray Data is imported, since its import sets up its own handlers."""
    level = _verbosity if level is None else level
    _quiet_ray_data(logging.ERROR if level <= 0 else logging.INFO)


def silence_ray_consoles() -> None:
    """Show nothing more of Ray's and Ray Data's own console logging in this process (their log files keep it): after
    Ctrl-C, the worker processes die with the driver's signal and Ray Data logs each of their tasks as an error with
    a traceback, noise after the command's own last line."""
    logging.getLogger("ray").setLevel(logging.CRITICAL + 1)
    _quiet_ray_data(logging.CRITICAL + 1)


def _quiet_ray_data(level: int) -> None:
    """Set the level of Ray Data's console handlers (not its ray-data.log file), when Ray Data is loaded: its
    "execution finished" and "progress bars disabled" lines are INFO and WARNING records of the `ray.data` logger,
    which Ray Data configures itself on import, apart from ray.init's logging_level."""
    if "ray.data" not in sys.modules:
        return
    for handler in logging.getLogger("ray.data").handlers:
        if not isinstance(handler, logging.FileHandler) and "File" not in type(handler).__name__:
            handler.setLevel(level)


# A line of Ray's C++ logging: `[2026-12-06 23:58:34,463 E 24563 24990] core_worker.cc:2465: ...`
_NATIVE_RAY_LINE = re.compile(rb"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWEF] \d+ \d+\] ")


_DRAINED = b"\x00ganbatch: stderr drained\x00"


def _forward_without_native_lines(source: int, sink: int, drained: threading.Event) -> None:
    """Copy what arrives on `source` to `sink`, less Ray's C++ log lines; partial lines pass at once unless they may
    start one (so a progress line ending in a carriage return still shows). The line _DRAINED is not copied: it sets
    `drained` (all that was written before it has been copied)."""
    pending = b""
    while True:
        try:
            chunk = os.read(source, 65536)
        except OSError:
            return
        if not chunk:
            return
        *lines, pending = (pending + chunk).split(b"\n")
        if _DRAINED in lines:
            drained.set()
        out = b"".join(line + b"\n" for line in lines if not _NATIVE_RAY_LINE.match(line) and line != _DRAINED)
        if pending and not pending.startswith(b"["):
            out, pending = out + pending, b""
        if out:
            os.write(sink, out)


@contextlib.contextmanager
def native_ray_lines_hidden() -> Iterator[None]:
    """Inside the block, at default verbosity, the lines Ray's C++ core (the driver's core worker) writes to file
    descriptor 2 are dropped: fd 2 becomes a pipe read by a thread that forwards everything else to the terminal,
    and Python's sys.stderr, which ganbatch's log lines go through, writes to the terminal directly (its own copy,
    so progress and terminal detection are as before). Ray keeps those lines in its log files
    (python-core-driver-*.log). With -v, when sys.stderr is not the process's own (a test runner's capture), or
    when fd 2 cannot be rearranged, nothing changes."""
    if _verbosity > 0 or sys.stderr is not sys.__stderr__:
        yield
        return
    try:
        sys.stderr.flush()
        terminal, saved = os.dup(2), os.dup(2)
        reader, writer = os.pipe()
    except (OSError, ValueError, AttributeError):
        yield
        return
    python_side = open(terminal, "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
                       errors="backslashreplace", closefd=False)
    previous = sys.stderr
    os.dup2(writer, 2)
    os.close(writer)
    # a daemon: the Ray processes started here inherit fd 2 and may write to it until they are gone
    drained = threading.Event()
    threading.Thread(target=_forward_without_native_lines, args=(reader, terminal, drained), daemon=True,
                     name="ganbatch-stderr").start()
    sys.stderr = python_side
    try:
        yield
    finally:
        sys.stderr = previous
        python_side.flush()
        os.write(2, _DRAINED + b"\n")  # what went through the pipe comes out before what follows the block
        drained.wait(timeout=2.0)
        os.dup2(saved, 2)
        os.close(saved)
