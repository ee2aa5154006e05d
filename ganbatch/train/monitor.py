"""What a run writes besides its checkpoints (worker 0 only): progress lines, metrics, TensorBoard events,
sample grids and the current model, under OUT/NAME/.

The driver shows progress from `metrics.jsonl` (`start_line`, `progress_line`; see `train.run`), so workers print
nothing of their own.

- `metrics.jsonl`: one JSON object per line: `{"event": "start", "step": N, ...}` each time a worker group starts
  (N = the step it resumed from), and `{"step": N, "time": ..., "images_per_s": ..., "d_total": ..., ...}` every
  log_every steps (loss terms averaged over the steps since the last line and over the workers). On a resume, lines
  past the resumed step (written after the last checkpoint by an attempt that then failed) are dropped.
- `tensorboard/`: the same scalars as event files (torch.utils.tensorboard; a resumed writer purges later steps).
- `samples/step_<N>.png`: sample grids; `model.pt`: the generator in ganbatch's format, rewritten at every checkpoint.

Files are written in a local folder (OUT/NAME itself for local storage, a temporary folder for S3) and uploaded
after each change when the run lives on S3.
"""
import json
import sys
import tempfile
import time
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from ganbatch.io import storage
from ganbatch.progress import format_duration

METRICS_FILE = "metrics.jsonl"
MODEL_FILE = "model.pt"
TENSORBOARD_FOLDER = "tensorboard"
SAMPLES_FOLDER = "samples"


class RunFiles:
    """A run's own files under its URI, written through a local folder (see the module doc)."""

    def __init__(self, run_uri: str):
        self.uri = run_uri
        self.remote = storage.is_s3(run_uri)
        self._staging = tempfile.TemporaryDirectory(prefix="ganbatch-run-") if self.remote else None
        self.local = Path(self._staging.name) if self.remote else Path(run_uri)
        self.local.mkdir(parents=True, exist_ok=True)

    def path(self, relative: str) -> Path:
        """The local path of a run file (its folder created)."""
        target = self.local / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def fetch(self, relative: str) -> Path:
        """The local path of a run file, downloaded first when the run is remote and has it."""
        target = self.path(relative)
        remote = storage.join(self.uri, relative)
        if self.remote and storage.exists(remote):
            storage.download_file(remote, target)
        return target

    def publish(self, relative: str) -> None:
        """Upload a file, or every file of a folder, to the run when it is remote."""
        if not self.remote:
            return
        source = self.local / relative
        for file in ([source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())):
            storage.upload_file(file, storage.join(self.uri, file.relative_to(self.local).as_posix()))

    def close(self) -> None:
        """Remove the local staging folder of a remote run."""
        if self._staging is not None:
            self._staging.cleanup()


def console(line: str) -> None:
    """Write a progress line to stdout (sys.stdout directly: Ray Train's patched print would log it twice)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def start_line(name: str, record: dict, total_steps: int) -> str:
    """The line for a metrics.jsonl `start` event: `[NAME] starting at step 0 of 200 on 1 worker(s) (cpu, fp32)`."""
    setup = ", ".join(str(record[key]) for key in ("device", "precision") if record.get(key))
    return (f"[{name}] {'resuming from step' if record.get('resumed') else 'starting at step'} {record['step']} of "
            f"{total_steps} on {record.get('workers', 1)} worker(s)" + (f" ({setup})" if setup else ""))


def progress_line(name: str, record: dict, total_steps: int, previous: dict | None = None) -> str:
    """The progress line for a metrics.jsonl step record: `[NAME] step 50/200 (25%)  d_total 1.2  g_total 3.4
    26.6 img/s  eta 0m12s`; the ETA is the time per step since `previous` (the record before) times the steps
    left."""
    step = record["step"]
    losses = "  ".join(f"{key} {value:.4g}" for key, value in record.items() if key.endswith("total"))
    line = (f"[{name}] step {step}/{total_steps} ({100 * step / total_steps:.0f}%)  {losses}  "
            f"{record.get('images_per_s', 0):.1f} img/s")
    if previous is not None and step > previous["step"] and step < total_steps:
        per_step = (record["time"] - previous["time"]) / (step - previous["step"])
        line += f"  eta {format_duration((total_steps - step) * per_step)}"
    return line


class RunMonitor:
    """Metrics, TensorBoard and console progress of a run, resumed at `start_step`."""

    def __init__(self, files: RunFiles, name: str, start_step: int, total_steps: int, info: dict):
        self.files = files
        self.name = name
        self.total_steps = total_steps
        self.start_step = start_step
        self.started = time.monotonic()
        self._interval_start = self.started
        metrics = files.fetch(METRICS_FILE)
        kept = []
        if metrics.exists():
            kept = [line for line in metrics.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= start_step]
        metrics.write_text("".join(line + "\n" for line in kept))
        self._append({"event": "start", "step": start_step, "time": time.time(), **info})
        self.writer = SummaryWriter(str(files.path(TENSORBOARD_FOLDER)), purge_step=start_step + 1 if start_step else
                                    None)

    def _append(self, record: dict) -> None:
        with open(self.files.path(METRICS_FILE), "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def log(self, step: int, values: dict[str, float], images: int) -> dict:
        """Record the values at step (`images`: training images consumed since the last call); returns the record."""
        now = time.monotonic()
        since, self._interval_start = self._interval_start, now
        rate = images / max(now - since, 1e-9)
        record = {"step": step, "time": time.time(), "images_per_s": rate, **values}
        self._append(record)
        for key, value in values.items():
            self.writer.add_scalar(key.replace("_", "/", 1), value, step)
        self.writer.add_scalar("speed/images_per_s", rate, step)
        self.writer.flush()
        self.files.publish(METRICS_FILE)
        self.files.publish(TENSORBOARD_FOLDER)
        return record

    def samples(self, step: int, grid) -> None:
        """Write a sample grid (uint8 H x W x 3, `preview.sample_grid`) as samples/step_<N>.png and as a TensorBoard
        image (`samples`, in the images tab)."""
        from ganbatch.io.images import write_image

        relative = f"{SAMPLES_FOLDER}/step_{step:08d}.png"
        write_image(self.files.path(relative), grid)
        self.files.publish(relative)
        self.writer.add_image("samples", grid, step, dataformats="HWC")
        self.writer.flush()
        self.files.publish(TENSORBOARD_FOLDER)

    def close(self) -> None:
        """Flush and close the TensorBoard writer and upload what is left."""
        self.writer.close()
        self.files.publish(TENSORBOARD_FOLDER)
