"""The destination's JSONL manifest: one row per video and run, appended as items finish.

Each row: `input`, `output`, `status` (ok | failed | skipped), `frames`, `fps`, `seconds` (time spent on the item),
`error` (the reason, for failed rows), `model`, `target`, `model_digest` (the SHA-256 of the model's tensors, None
for foreign checkpoint layouts), `runtime`, and, on ok rows where they apply, `source_aus` (the photo's AUs as
`source_aus: estimate` found them, {AU name: intensity}) and `driving_held_frames` (driving video frames without a
face, which held the nearest earlier frame's motion). A row is written only after its video is in place.

Runs append: the rows earlier runs wrote are kept (lines that are not rows, such as a last row torn by a crash, are
first set aside in a side file: set_aside_unreadable) (read first, for an `s3://` manifest) and the latest row for an
output is its current state. Skipped rows mark videos an earlier run made; they keep that run's `frames` and `fps`
when its manifest listed the video as ok.

For an `s3://` destination the manifest is kept in a local file and uploaded whole as it grows (at most every
`upload_every` seconds) and once more when the run ends, so a reader of the S3 copy may be a few rows behind. An
upload that fails never stops the run: uploads on the way are tried once (with botocore's retries) and again with a
later row; the last one is retried for the storage layer's budget, at least its default (`storage.RETRY_SECONDS`),
and when it fails too, the local copy is kept and `ManifestWriter.problem` says where.
"""
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

from ganbatch.io import storage

FIELDS = ("input", "output", "status", "frames", "fps", "seconds", "error", "model", "target", "model_digest",
          "runtime", "source_aus", "driving_held_frames")
STATUSES = ("ok", "failed", "skipped")

log = logging.getLogger(__name__)


def manifest_row(*, input: str, output: str, status: str, model: str, target: str, frames: Optional[int] = None,
                 fps: Optional[float] = None, seconds: float = 0.0, error: Optional[str] = None,
                 model_digest: Optional[str] = None, runtime: Optional[str] = None,
                 source_aus: Optional[dict] = None, driving_held_frames: Optional[int] = None) -> dict:
    """A manifest row with every field, in FIELDS order."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    return {"input": input, "output": output, "status": status, "frames": frames, "fps": fps,
            "seconds": round(seconds, 3), "error": error, "model": model, "target": target,
            "model_digest": model_digest, "runtime": runtime, "source_aus": source_aus,
            "driving_held_frames": driving_held_frames}


def _row(line: str) -> Optional[dict]:
    """The row a manifest line holds; None for a line that is not one (torn by a crash mid-write, or garbage)."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) and {"input", "output", "status"} <= row.keys() else None


def _split(data: bytes) -> tuple[list[dict], list[str]]:
    """A manifest's rows and its unreadable lines."""
    rows, unreadable = [], []
    for line in data.decode("utf-8", "replace").splitlines():
        if line.strip():
            row = _row(line)
            rows.append(row) if row is not None else unreadable.append(line)
    return rows, unreadable


def read_manifest_rows(uri: str) -> list[dict]:
    """The rows of an existing manifest.jsonl (empty when there is none); lines that are not rows are left out
    (set_aside_unreadable moves them out of the file)."""
    try:
        return _split(storage.read_bytes(uri))[0]
    except storage.StorageError:
        return []


def set_aside_unreadable(uri: str) -> Optional[str]:
    """Move the lines of the manifest at `uri` that are not rows (a last row torn by a crash mid-write, a garbage
    line) to a side file `manifest.jsonl.unreadable-<time>` next to it and rewrite the manifest with its rows only,
    so the run can append to it; returns the one line that says so (None when every line was a row or there is no
    manifest). The item whose row was lost is made again, or skipped by its output's presence, as any other."""
    try:
        data = storage.read_bytes(uri)
    except storage.StorageError:
        return None
    rows, unreadable = _split(data)
    if not unreadable:
        return None
    side = f"{uri}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}"
    storage.write_bytes(side, "".join(line + "\n" for line in unreadable).encode("utf-8"), content_type="text/plain")
    storage.write_bytes(uri, "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8"))
    noun = "line" if len(unreadable) == 1 else "lines"
    return (f"{uri}: {len(unreadable)} unreadable {noun} (a row torn by a crash mid-write, or not a row) set aside "
            f"in {side}; the run goes on with the other {len(rows)}")


class ManifestWriter:
    """Appends rows to the manifest at `uri` (a local path, or an s3:// object kept in a local file and uploaded;
    see the module doc). Raises StorageError at the start when an existing S3 manifest cannot be read."""

    def __init__(self, uri: str, *, upload_every: float = 10.0):
        self.uri = uri
        self.upload_every = upload_every
        self.problem: Optional[str] = None
        self._remote = storage.is_s3(uri)
        if self._remote:
            self._staging = tempfile.mkdtemp(prefix="ganbatch-manifest-")
            self._path = Path(self._staging) / "manifest.jsonl"
            self._path.write_bytes(self._earlier_rows())
        else:
            self._path = Path(uri)
            self._path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self._path, "a", encoding="utf-8")
        if self._file.tell() and not self._path.read_bytes().endswith(b"\n"):
            self._file.write("\n")  # a whole last row that lost its newline: the next row starts a line of its own
        self._uploaded_at = float("-inf")

    def _earlier_rows(self) -> bytes:
        """The S3 manifest's content so far (empty when there is none); a complete last line."""
        if not storage.exists(self.uri):
            return b""
        data = storage.read_bytes(self.uri)
        return data if not data or data.endswith(b"\n") else data + b"\n"

    def __enter__(self) -> "ManifestWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def append(self, row: dict) -> None:
        """Write one row (flushed to disk at once; uploaded when the throttle allows)."""
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        if self._remote and time.monotonic() - self._uploaded_at >= self.upload_every:
            with storage.retry_budget(0):  # a copy on the way: no waiting out an outage, the next row tries again
                self._upload()

    def close(self) -> None:
        """Close the file; for S3, upload the final manifest (see the module doc when that fails)."""
        if self._file.closed:
            return
        self._file.close()
        if self._remote:
            # the record of the run is worth waiting for: at least the default budget, even when items fail faster
            with storage.retry_budget(max(storage.retry_seconds(), storage.RETRY_SECONDS)):
                uploaded = self._upload()
            if uploaded:
                shutil.rmtree(self._staging, ignore_errors=True)
            else:
                self.problem = f"the manifest could not be uploaded to {self.uri}; it is kept at {self._path}"
                log.error(self.problem)

    def _upload(self) -> bool:
        """Upload the manifest; False (logged) when it fails."""
        self._uploaded_at = time.monotonic()
        try:
            storage.upload_file(self._path, self.uri)
        except storage.StorageError as error:
            log.warning("manifest upload failed (the run goes on; tried again with the next row): %s", error)
            return False
        return True
