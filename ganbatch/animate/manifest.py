"""The run's JSONL manifest: one row per video, appended as items finish.

Each row: `input`, `output`, `status` (ok | failed | skipped), `frames`, `fps`, `seconds` (time spent on the item),
`error` (the reason, for failed rows), `model`, `target`. A row is written only after its video is in place.

The manifest describes the latest run: it is rewritten when a run starts. Skipped rows mark videos an earlier run
made; they keep that run's `frames` and `fps` when its manifest listed the video as ok.

For an `s3://` destination the manifest is kept in a local temporary file and uploaded as it grows (at most every
`upload_every` seconds) and once more when the run ends, so a reader of the S3 copy may be a few rows behind.
"""
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Optional

from ganbatch import storage

FIELDS = ("input", "output", "status", "frames", "fps", "seconds", "error", "model", "target")
STATUSES = ("ok", "failed", "skipped")


def manifest_row(*, input: str, output: str, status: str, model: str, target: str, frames: Optional[int] = None,
                 fps: Optional[float] = None, seconds: float = 0.0, error: Optional[str] = None) -> dict:
    """A manifest row with every field, in FIELDS order."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    return {"input": input, "output": output, "status": status, "frames": frames, "fps": fps,
            "seconds": round(seconds, 3), "error": error, "model": model, "target": target}


def read_manifest(uri: str) -> list[dict]:
    """The rows of an existing manifest (empty when there is none)."""
    try:
        text = storage.read_bytes(uri).decode("utf-8")
    except storage.StorageError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class ManifestWriter:
    """Appends rows to `uri` (a local path, or an s3:// object kept in a local file and uploaded; see module doc)."""

    def __init__(self, uri: str, *, upload_every: float = 10.0):
        self.uri = uri
        self.upload_every = upload_every
        self._remote = storage.is_s3(uri)
        if self._remote:
            self._staging = tempfile.TemporaryDirectory(prefix="ganbatch-manifest-")
            self._path = Path(self._staging.name) / "manifest.jsonl"
        else:
            self._path = Path(uri)
            self._path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self._path, "w", encoding="utf-8")
        self._uploaded_at = float("-inf")

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
            self._upload()

    def close(self) -> None:
        """Close the file; for S3, upload the final manifest."""
        if self._file.closed:
            return
        self._file.close()
        if self._remote:
            try:
                self._upload()
            finally:
                self._staging.cleanup()

    def _upload(self) -> None:
        storage.upload_file(self._path, self.uri)
        self._uploaded_at = time.monotonic()
