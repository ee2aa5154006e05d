"""`preview.gif`: the first videos of a run side by side in one looping GIF (for a quick look, and the README)."""
import tempfile
from pathlib import Path

import numpy as np

from ganbatch.io import storage
from ganbatch.io.video import encode_video, read_video
from ganbatch.layout import compose_frames

PREVIEW_NAME = "preview.gif"


def tile_videos(videos: list[np.ndarray], height: int) -> np.ndarray:
    """Videos scaled to `height` and put side by side; shorter ones hold their last frame."""
    length = max(len(video) for video in videos)
    scaled = [compose_frames(video, size=height) for video in videos]
    held = [np.concatenate([video, np.repeat(video[-1:], length - len(video), axis=0)]) for video in scaled]
    return np.concatenate(held, axis=2)


def write_preview(rows: list[dict], out: str, *, count: int = 4, height: int = 128) -> str | None:
    """Tile the first `count` videos of `rows` (manifest rows with status ok or skipped) into OUT/preview.gif, at
    the first one's fps; returns its URI, or None when there is no video to show."""
    shown = [row for row in rows if row["status"] in ("ok", "skipped")][:count]
    if not shown:
        return None
    preview = tile_videos([read_video(row["output"]) for row in shown], height)
    uri = storage.join(out, PREVIEW_NAME)
    fps = next((row["fps"] for row in shown if row.get("fps")), 25.0)
    with tempfile.TemporaryDirectory(prefix="ganbatch-preview-") as staging:
        local = encode_video(preview, Path(staging) / PREVIEW_NAME, fps=fps, format="gif")
        storage.upload_file(local, uri)
    return uri
