"""The runner of `kind: aus` jobs (`ganbatch.runner` protocol): photos and videos -> an OpenFace-style AU CSV.

Each input is read, its faces found (the largest per photo or frame) and their AUs estimated from the landmarks
(`ganbatch.faces.au_estimator`). The CSV (`CSV_COLUMNS`) has one row per photo and one per video frame:

- `name`: the file name; `frame`: the frame number in a video, from 1 (OpenFace FeatureExtraction's), 1 for a photo;
  `face`: 0 (the largest face);
- `confidence` (0-1, see the estimator) and `success` (1 when a face was found);
- `AU01_r` ... `AU45_r`: the 17 intensities, 0-5;
- `error`: why `success` is 0. A video frame without a face holds the AUs of the nearest earlier frame with one (the
  first found, at the start), so the rows still make a path for `--aus-csv`; a photo that has no face or cannot be
  read, or a video that cannot be read or has no face at all, gives one row with zeros. `--source-aus` skips rows
  whose `success` is 0.

Inputs are processed one at a time in this process (no Ray); a failed input never stops the others, and the job is
not ok (exit status 1) when any failed, unless `allow_failures`. The CSV is written whole at the end (atomically).
"""
import csv
import io
import logging
import posixpath
from dataclasses import dataclass, field

import numpy as np

from ganbatch.errors import JobError
from ganbatch.jobs.aus import AusJob

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".webm", ".gif", ".mov", ".avi", ".mkv")
LISTED_FAILURES = 20


class AusError(JobError):
    """An AU estimation job that cannot run: inputs not found, no usable face detector or estimator file."""


class InputFailed(ValueError):
    """One input without AUs: no face, or a file that cannot be read (its row says why)."""


def csv_columns() -> list[str]:
    """The CSV's header (see the module doc)."""
    from ganbatch.targets.aus import AU_IDS

    return ["name", "frame", "face", "confidence", "success", *(f"AU{au:02d}_r" for au in AU_IDS), "error"]


@dataclass
class AusResult:
    """The rows written (dicts of CSV_COLUMNS), the inputs that failed (uri, reason), and the summary."""

    message: str
    rows: list[dict] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    ok: bool = True


def _row(name: str, frame: int, aus, confidence: float, success: bool, error: str = "") -> dict:
    from ganbatch.targets.aus import AU_IDS

    values = {f"AU{au:02d}_r": round(float(value), 4) for au, value in zip(AU_IDS, aus)}
    return {"name": name, "frame": frame, "face": 0, "confidence": round(float(confidence), 4),
            "success": int(success), **values, "error": error}


def _failed_row(name: str, reason: str) -> dict:
    from ganbatch.targets.aus import NUM_AUS

    return _row(name, 1, np.zeros(NUM_AUS), 0.0, False, reason)


def estimate_photo(uri: str, detector, estimator) -> list[dict]:
    """One row for a photo (local or s3://); raises for an unreadable file."""
    from ganbatch.io import storage
    from ganbatch.io.images import decode_image

    name = posixpath.basename(uri.rstrip("/"))
    estimate = estimator.estimate_image(decode_image(storage.read_bytes(uri), uri), detector)
    if not estimate.success:
        raise InputFailed(estimate.reason)
    return [_row(name, 1, estimate.aus, estimate.confidence, True)]


def estimate_video(uri: str, detector, estimator) -> list[dict]:
    """One row per frame of a video (local or s3://), its AUs read as `animate --driving-video` reads them (frames
    without a face hold an earlier frame's; smoothed over time); raises when it cannot be read or has no face."""
    from ganbatch.animate.targets import video_face_landmarks

    name = posixpath.basename(uri.rstrip("/"))
    points, fps = video_face_landmarks(uri, detector)
    read = estimator.read_video(points, fps)
    return [_row(name, index + 1, aus, confidence, bool(found), "" if found else "no face found")
            for index, (aus, confidence, found) in enumerate(zip(read.aus, read.confidence, read.found))]


def _inputs(job: AusJob):
    from ganbatch.animate.plan import PlanError, find_inputs
    from ganbatch.io.images import IMAGE_SUFFIXES

    try:
        return find_inputs(job.inputs, job.recursive, suffixes=IMAGE_SUFFIXES + VIDEO_SUFFIXES)
    except PlanError as error:
        raise AusError(str(error)) from None


def _tools(job: AusJob):
    """The face detector and the estimator; AusError (one line) when either cannot be used."""
    from ganbatch.faces import BackendUnavailable, get_detector
    from ganbatch.faces.au_estimator import AUEstimatorError, load_au_estimator
    from ganbatch.io import storage

    try:
        detector = get_detector(job.detector, "cpu")
        if job.estimator is None:
            return detector, load_au_estimator()
        with storage.local_copy(job.estimator) as path:
            return detector, load_au_estimator(path)
    except (BackendUnavailable, AUEstimatorError, storage.StorageError) as error:
        raise AusError(str(error)) from None


def plan_aus(job: AusJob) -> str:
    """What the job would read and write (inputs listed, nothing decoded)."""
    listing = _inputs(job)
    videos = sum(1 for image in listing if image.uri.lower().endswith(VIDEO_SUFFIXES))
    lines = [f"{len(listing) - videos} photos and {videos} videos -> {job.out} (one row per photo and per video "
             f"frame), faces found by {job.detector}, AUs by "
             f"{job.estimator or 'the bundled landmark AU estimator'}"]
    if listing.skipped:
        lines.append(listing.skipped_summary())
    return "\n".join(lines)


def run_aus(job: AusJob) -> AusResult:
    """Estimate the AUs of every input and write the CSV (see the module doc)."""
    from ganbatch.errors import one_line
    from ganbatch.io import storage

    listing = _inputs(job)
    detector, estimator = _tools(job)
    rows, failures, photos = [], [], 0
    for number, image in enumerate(listing, start=1):
        is_video = image.uri.lower().endswith(VIDEO_SUFFIXES)
        photos += not is_video
        try:
            rows += (estimate_video if is_video else estimate_photo)(image.uri, detector, estimator)
        except Exception as error:  # noqa: BLE001 - one input's failure, whatever it is, must not stop the others
            reason = one_line(error).removeprefix(f"{image.uri}: ")
            failures.append((image.uri, reason))
            rows.append(_failed_row(posixpath.basename(image.uri), reason))
        log.debug("aus: %d/%d %s", number, len(listing), image.uri)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=csv_columns(), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    try:
        storage.write_bytes(job.out, buffer.getvalue().encode("utf-8"), content_type="text/csv")
    except storage.StorageError as error:
        raise AusError(f"cannot write {job.out}: {error.reason}") from None
    frames = sum(1 for row in rows if row["success"])
    lines = [f"aus: {len(listing)} inputs, {len(listing) - len(failures)} ok, {len(failures)} failed; "
             f"{len(rows)} rows ({frames} with a face) in {job.out}"]
    if estimator.unread_aus and photos:
        lines.append(f"  note: in photos the estimator does not read {', '.join(estimator.unread_aus)}: their columns "
                     "say 0 for every photo (videos are read by its video read-out, which reads them; "
                     "docs/au_estimator.md)")
    lines += [f"  failed: {uri}: {reason}" for uri, reason in failures[:LISTED_FAILURES]]
    if len(failures) > LISTED_FAILURES:
        lines.append(f"  ... and {len(failures) - LISTED_FAILURES} more (rows with success 0 in the CSV)")
    return AusResult(message="\n".join(lines), rows=rows, failures=failures, outputs={"out": job.out},
                     ok=not failures or job.allow_failures)
