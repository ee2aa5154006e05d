"""Progress of a batch for people: a tqdm bar on a terminal, a log line every few seconds elsewhere, and the one
line that says what a run is using.

    with Progress(total=len(items), unit="videos", label="animate") as progress:
        for result in results:
            progress.update(frames=result.frames, failed=not result.ok)

On a terminal (stderr is a TTY) the bar shows items, frames/s and the ETA. When stderr is a file or a pipe (a
cluster job, CI), a line such as `animate: 120/1000 videos (12%), 3 failed, 41.5 frames/s, eta 4m10s` goes through
the `ganbatch` logger every `interval` seconds, and once more at the end. Nothing is shown with `-q`.
"""
import logging
import sys
import time
from typing import Optional, TextIO

log = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """`4m10s`, `1h05m`, `12s`."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class Progress:
    """Counts finished items (and their frames) of a batch of `total` and shows it (see the module doc)."""

    def __init__(self, total: int, *, unit: str = "items", label: str = "progress", interval: float = 10.0,
                 stream: Optional[TextIO] = None, bar: Optional[bool] = None, clock=time.monotonic):
        self.total, self.unit, self.label, self.interval = total, unit, label, interval
        self.done = self.failed = self.frames = 0
        self._clock = clock
        self.started = self._last_line = clock()
        self._shown: Optional[str] = None
        stream = stream or sys.stderr
        shown = log.isEnabledFor(logging.INFO)
        use_bar = stream.isatty() if bar is None else bar
        self._bar = None
        if shown and use_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=unit.rstrip("s") or unit, desc=label, file=stream, dynamic_ncols=True)

    def update(self, items: int = 1, *, frames: int = 0, failed: bool = False) -> None:
        """Record `items` finished items holding `frames` frames (`failed`: they failed)."""
        self.done += items
        self.frames += frames
        self.failed += items if failed else 0
        if self._bar is not None:
            self._bar.update(items)
            self._bar.set_postfix_str(self._rates(), refresh=False)
        elif self._clock() - self._last_line >= self.interval:
            self._last_line = self._clock()
            self._show(self.line())

    def _rates(self) -> str:
        elapsed = max(self._clock() - self.started, 1e-9)
        parts = [f"{self.failed} failed"] if self.failed else []
        if self.frames:
            parts.append(f"{self.frames / elapsed:.1f} frames/s")
        return ", ".join(parts)

    def eta(self) -> Optional[float]:
        """Seconds left at the rate so far (None before the first item)."""
        if not self.done:
            return None
        elapsed = self._clock() - self.started
        return elapsed / self.done * max(self.total - self.done, 0)

    def line(self) -> str:
        """The progress line, e.g. `animate: 120/1000 videos (12%), 41.5 frames/s, eta 4m10s`."""
        percent = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        parts = [f"{self.label}: {self.done}/{self.total} {self.unit}{percent}"]
        rates = self._rates()
        if rates:
            parts.append(rates)
        eta = self.eta()
        if eta is not None and self.done < self.total:
            parts.append(f"eta {format_duration(eta)}")
        elif self.done >= self.total:
            parts.append(f"took {format_duration(self._clock() - self.started)}")
        return ", ".join(parts)

    def close(self) -> float:
        """End the bar, or write the final line; returns the seconds since the start."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        line = self.line()
        if line != self._shown:  # the last update may have shown this very line
            self._show(line)
        return self._clock() - self.started

    def _show(self, line: str) -> None:
        self._shown = line
        log.info(line)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def describe_setup(*, cluster: str, workers: int, device: str, precision: str, runtime: Optional[str] = None,
                   detector: Optional[str] = None, gpus: float = 0, threads: Optional[int] = None) -> str:
    """The start-up line: `using: local Ray (2 CPUs), no GPU found, 1 worker, cpu, fp32, torch runtime, 2 threads
    per worker, face detector lbp`. `cluster`: `describe_cluster`'s text; `runtime` and `detector`: the ones
    actually chosen (after resolving `auto`), left out when None."""
    parts = [cluster] + ([] if gpus else ["no GPU found"])
    parts += [f"{workers} worker{'s' if workers != 1 else ''}", device, precision]
    if runtime:
        parts.append(f"{runtime} runtime")
    if threads:
        parts.append(f"{threads} thread{'s' if threads != 1 else ''} per worker")
    if detector:
        parts.append(f"face detector {detector}")
    return "using: " + ", ".join(parts)


def describe_cluster(resources: dict, address: Optional[str], in_process: bool = False) -> str:
    """`local Ray (2 CPUs)`, `Ray cluster at ray://head:10001 (64 CPUs, 8 GPUs)` (from ray.cluster_resources()) or
    `this process, no Ray (2 CPUs)`."""
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    counts = f"{cpus:g} CPU{'s' if cpus != 1 else ''}" + (f", {gpus:g} GPU{'s' if gpus != 1 else ''}" if gpus else "")
    where = "this process, no Ray" if in_process else f"Ray cluster at {address}" if address else "local Ray"
    return f"{where} ({counts})"
